"""Frozen: nothing trains (zero-shot prompting); a save holds only the prompt and the base model's name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from promptft.adapters.base import AdapterSettings


@dataclass
class FrozenSettings(AdapterSettings):
    name: ClassVar[str] = "none"
    uses_peft: ClassVar[bool] = False

    def apply(self, model, kind, label_token_ids=None):
        for p in model.parameters():
            p.requires_grad_(False)
        return None
