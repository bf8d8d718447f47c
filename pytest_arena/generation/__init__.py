"""Answer generation: backends (transformers, vLLM, OpenAI-compatible servers), their settings, and the answer cache."""
