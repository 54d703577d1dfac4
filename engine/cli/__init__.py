"""The `distill` command line: a typer app, one module per verb, over `engine.api`."""
