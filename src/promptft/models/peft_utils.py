"""LoRA through peft: injected into the backbone's model in place, saved in peft's own format."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from torch import nn

from promptft.errors import ConfigError


@dataclass
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    # "all-linear" = every linear layer but the output head (peft's own rule); or a list of module names.
    target_modules: str | list[str] = "all-linear"
    # Adapt only the top N decoder layers (None = all). The frozen layers below are then computed once
    # per prompt and cached during training (models/prefix_cache.py), which makes steps much cheaper.
    top_layers: int | None = None
    # For a new classification head (baseline): train these modules fully.
    modules_to_save: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def apply_lora(model: nn.Module, settings: LoraSettings):
    """Inject LoRA layers into `model` (in place); returns the PeftModel wrapper used for saving."""
    from peft import LoraConfig, get_peft_model

    layers = None
    if settings.top_layers:
        total = model.config.get_text_config().num_hidden_layers
        if not 1 <= settings.top_layers <= total:
            raise ConfigError(
                f"lora top_layers must be between 1 and {total} for this model, got {settings.top_layers}"
            )
        layers = list(range(total - settings.top_layers, total))
    targets = settings.target_modules
    if layers and targets == "all-linear":
        targets = _linear_names(model)  # peft refuses the "all-linear" shorthand with layers_to_transform
    config = LoraConfig(
        layers_to_transform=layers,
        layers_pattern="layers" if layers else None,
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets,
        modules_to_save=settings.modules_to_save or None,
        bias="none",
    )
    return get_peft_model(model, config)


def load_lora(model: nn.Module, adapter_dir: str | Path):
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)


def _linear_names(model: nn.Module) -> list[str]:
    """Short names of the linear layers inside the decoder blocks (q_proj, up_proj, ...)."""
    output = model.get_output_embeddings()
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and module is not output and ".layers." in f".{name}"
    }
    return sorted(names)
