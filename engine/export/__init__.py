"""Trainer handoff formats: a dataset or selection dir -> Parquet, JSONL, alpaca, ShareGPT, OpenAI, LLaMA-Factory, mlx-lm."""
