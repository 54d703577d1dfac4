"""Models: load and run embedding and language models offline; arrays in, arrays out (no Polars, no datasets)."""
