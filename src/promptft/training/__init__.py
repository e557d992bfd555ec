"""Training: TrainConfig (the schema of `promptft.config.train`, cheap to import) and the Trainer (loads
torch on first use)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from promptft.training.config import TrainConfig

_TRAINER_NAMES = {"Trainer", "TrainResult", "batch_schedule", "set_seed"}

__all__ = ["TrainConfig", "TrainResult", "Trainer", "batch_schedule", "set_seed"]


def __getattr__(name: str):
    # Lazy so that reading a config (the CLI, `promptft bench --help`) does not load torch.
    if name in _TRAINER_NAMES:
        value = getattr(importlib.import_module("promptft.training.trainer"), name)
        globals()[name] = value  # later lookups skip __getattr__
        return value
    raise AttributeError(f"module 'promptft.training' has no attribute {name!r}")


if TYPE_CHECKING:
    from promptft.training.trainer import Trainer, TrainResult, batch_schedule, set_seed
