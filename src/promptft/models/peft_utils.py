"""LoRA through peft: injected into the backbone's model in place, saved in peft's own format."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from torch import nn


@dataclass
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    # "all-linear" = every linear layer but the output head (peft's own rule); or a list of module names.
    target_modules: str | list[str] = "all-linear"
    # For a new classification head (baseline): train these modules fully.
    modules_to_save: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def apply_lora(model: nn.Module, settings: LoraSettings):
    """Inject LoRA layers into `model` (in place); returns the PeftModel wrapper used for saving."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        modules_to_save=settings.modules_to_save or None,
        bias="none",
    )
    return get_peft_model(model, config)


def load_lora(model: nn.Module, adapter_dir: str | Path):
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
