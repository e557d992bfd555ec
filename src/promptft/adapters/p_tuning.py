"""P-tuning: virtual tokens produced by a small trainable encoder (an MLP or LSTM; Liu et al., 2021)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from promptft.adapters.base import PEFT_TASK_TYPES, AdapterSettings, positive, raise_problems


@dataclass
class PTuningSettings(AdapterSettings):
    name: ClassVar[str] = "p_tuning"
    prompt_learning: ClassVar[bool] = True
    default_learning_rate: ClassVar[float] = 3e-3

    num_virtual_tokens: int = 20
    encoder: Literal["MLP", "LSTM"] = "MLP"
    encoder_hidden_size: int = 128

    def validate(self) -> None:
        problems = positive(self, "num_virtual_tokens", "encoder_hidden_size")
        if self.encoder not in ("MLP", "LSTM"):
            problems.append(f"p_tuning encoder must be 'MLP' or 'LSTM', got {self.encoder!r}")
        raise_problems(problems)

    def peft_config(self, model, kind, label_token_ids=()):
        from peft import PromptEncoderConfig

        return PromptEncoderConfig(
            task_type=PEFT_TASK_TYPES[kind],
            num_virtual_tokens=self.num_virtual_tokens,
            encoder_reparameterization_type=self.encoder,
            encoder_hidden_size=self.encoder_hidden_size,
        )
