"""Training: the loop, its config, seeds."""

from promptft.training.config import TrainConfig
from promptft.training.trainer import Trainer, TrainResult, batch_schedule, set_seed

__all__ = ["TrainConfig", "Trainer", "TrainResult", "batch_schedule", "set_seed"]
