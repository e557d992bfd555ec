"""Full fine-tuning: every weight trains; saved as a whole model (safetensors), not as a peft adapter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from promptft.adapters.base import AdapterSettings


@dataclass
class FullSettings(AdapterSettings):
    name: ClassVar[str] = "full"
    uses_peft: ClassVar[bool] = False
    default_learning_rate: ClassVar[float] = 1e-5

    def apply(self, model, kind, label_token_ids=None):
        for p in model.parameters():
            p.requires_grad_(True)
        return None
