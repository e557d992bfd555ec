"""(IA)3: learned vectors that rescale keys, values and feed-forward activations (Liu et al., 2022)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from promptft.adapters.base import PEFT_TASK_TYPES, AdapterSettings
from promptft.errors import ConfigError


@dataclass
class IA3Settings(AdapterSettings):
    name: ClassVar[str] = "ia3"
    default_learning_rate: ClassVar[float] = 1e-2  # scaling vectors start at 1: short runs need big steps

    # None: peft's defaults for the model type (e.g. llama: k_proj, v_proj, down_proj).
    target_modules: list[str] | None = None
    feedforward_modules: list[str] | None = None

    def validate(self) -> None:
        if (self.target_modules is None) != (self.feedforward_modules is None):
            raise ConfigError(
                "ia3: give both target_modules and feedforward_modules (a subset of the targets), or neither"
            )

    def peft_config(self, model, kind, label_token_ids=()):
        from peft import IA3Config
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as DEFAULTS

        model_type = model.config.model_type
        if self.target_modules is None and model_type not in DEFAULTS:
            raise ConfigError(
                f"ia3 has no default target modules for model type {model_type!r}: set target_modules and "
                "feedforward_modules, e.g. [k_proj, v_proj, down_proj] and [down_proj]"
            )
        return IA3Config(
            task_type=PEFT_TASK_TYPES[kind],
            target_modules=self.target_modules,
            feedforward_modules=self.feedforward_modules,
        )
