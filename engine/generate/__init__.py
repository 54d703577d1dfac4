"""Teacher generation and LLM judging over OpenAI-compatible APIs (layer 4: writes sources, api ingests)."""
