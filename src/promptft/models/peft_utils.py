"""Kept for imports written before adapters/ existed: LoRA now lives in `promptft.adapters.lora`."""

from promptft.adapters.lora import LoraSettings, apply_lora, linear_names

__all__ = ["LoraSettings", "apply_lora", "linear_names"]
