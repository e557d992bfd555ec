"""The few-shot benchmark (LM-BFF protocol) and model selection."""
