"""promptft: prompt-based fine-tuning of language models."""

from promptft.classifier import HeadClassifier, PromptClassifier, load_classifier
from promptft.data import Example, read_examples, sample_k_shot
from promptft.errors import PromptFTError
from promptft.models import load_backbone
from promptft.models.peft_utils import LoraSettings
from promptft.prompts import Template, Verbalizer
from promptft.training import TrainConfig, Trainer

__version__ = "0.1.0"

__all__ = [
    "Example",
    "HeadClassifier",
    "LoraSettings",
    "PromptClassifier",
    "PromptFTError",
    "Template",
    "TrainConfig",
    "Trainer",
    "Verbalizer",
    "load_backbone",
    "load_classifier",
    "read_examples",
    "sample_k_shot",
]
