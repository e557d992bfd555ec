"""`TrainConfig` lives with the other config schemas (`promptft.config.train`); the Trainer imports it here."""

from promptft.config.train import TrainConfig

__all__ = ["TrainConfig"]
