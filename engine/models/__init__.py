"""Base models and tokenizers from a profile: hub ids, local folders, GGUF files de-quantised once, the tiny test
model."""
