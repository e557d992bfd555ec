"""LoRA (and DoRA): low-rank updates on linear layers, through peft."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from promptft.adapters.base import PEFT_TASK_TYPES, AdapterSettings, positive, raise_problems, wrap
from promptft.errors import ConfigError

if TYPE_CHECKING:  # torch loads when an adapter is applied, not when a config is read
    from torch import nn


@dataclass
class LoraSettings(AdapterSettings):
    name: ClassVar[str] = "lora"

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    # "all-linear" = every linear layer but the output head (peft's own rule); or a list of module names.
    target_modules: str | list[str] = "all-linear"
    # Adapt only the top N decoder layers (None = all). The frozen layers below are then computed once
    # per prompt and cached during training (models/prefix_cache.py), which makes steps much cheaper.
    top_layers: int | None = None
    use_dora: bool = False  # weight-decomposed LoRA (DoRA): often a little better, ~2x slower steps
    # Also train the label words' embedding rows (peft's trainable tokens, tied to the output head where
    # the model ties them): DART's trainable label words, beside LoRA. Only a PromptClassifier has them.
    label_embeddings: bool = False
    # For a new classification head (baseline): train these modules fully.
    modules_to_save: list[str] = field(default_factory=list)

    def validate(self) -> None:
        problems = positive(self, "r")
        if self.alpha <= 0:
            problems.append(f"lora alpha must be > 0, got {self.alpha}")
        if not 0 <= self.dropout < 1:
            problems.append(f"lora dropout must be in [0, 1), got {self.dropout}")
        if self.top_layers is not None and self.top_layers < 1:
            problems.append(f"lora top_layers must be >= 1 (or unset for all layers), got {self.top_layers}")
        if self.label_embeddings and self.top_layers is not None:
            # the rows are input embeddings too (a demonstration's label word), below the cached layers
            problems.append("lora label_embeddings trains input embeddings: it cannot go with top_layers")
        raise_problems(problems)

    def peft_config(self, model: nn.Module, kind: str | None, label_token_ids=()):
        from peft import LoraConfig

        layers = None
        if self.top_layers:
            total = model.config.get_text_config().num_hidden_layers
            if not 1 <= self.top_layers <= total:
                raise ConfigError(
                    f"lora top_layers must be between 1 and {total} for this model, got {self.top_layers}"
                )
            layers = list(range(total - self.top_layers, total))
        targets = self.target_modules
        if layers and targets == "all-linear":
            targets = linear_names(model)  # peft refuses the "all-linear" shorthand with layers_to_transform
        if self.label_embeddings and not label_token_ids:
            raise ConfigError(
                "lora label_embeddings trains the label words' embedding rows: use it on a prompt "
                "classifier (the head baseline has no label words)"
            )
        return LoraConfig(
            task_type=PEFT_TASK_TYPES.get(kind) if kind else None,
            layers_to_transform=layers,
            layers_pattern="layers" if layers else None,
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=targets,
            use_dora=self.use_dora,
            modules_to_save=self.modules_to_save or None,
            trainable_token_indices=sorted(set(label_token_ids)) if self.label_embeddings else None,
            bias="none",
        )


def apply_lora(model: nn.Module, settings: LoraSettings, kind: str | None = None):
    """Inject LoRA layers into `model` (in place); returns the PeftModel wrapper. Used by the head baseline,
    whose model is a sequence classifier rather than a prompt backbone."""
    return wrap(model, settings.peft_config(model, kind))


def linear_names(model: nn.Module) -> list[str]:
    """Short names of the linear layers inside the decoder blocks (q_proj, up_proj, ...)."""
    from torch import nn

    output = model.get_output_embeddings()
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and module is not output and ".layers." in f".{name}"
    }
    return sorted(names)
