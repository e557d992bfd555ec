"""promptft: prompt-based fine-tuning of language models.

The public names below are imported on first use (PEP 562), so `import promptft` and `promptft --help` do not
pay for loading torch and transformers (~3 s) until a model is actually needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from promptft.version import __version__ as __version__  # re-exported: promptft.__version__

_EXPORTS = {
    "ChannelClassifier": "promptft.classifiers",
    "DemonstrationSettings": "promptft.prompts",
    "EnsembleClassifier": "promptft.classifiers",
    "Example": "promptft.data",
    "HeadClassifier": "promptft.classifiers",
    "LoraSettings": "promptft.adapters",
    "MultiLabel": "promptft.objectives",
    "PetConfig": "promptft.config",
    "PromptClassifier": "promptft.classifiers",
    "PromptFTError": "promptft.errors",
    "Regression": "promptft.objectives",
    "TaskSpec": "promptft.data",
    "Template": "promptft.prompts",
    "TrainConfig": "promptft.training",
    "Trainer": "promptft.training",
    "Verbalizer": "promptft.prompts",
    "load_backbone": "promptft.models",
    "load_classifier": "promptft.classifiers",
    "pet": "promptft.recipes.pet",
    "read_examples": "promptft.data",
    "sample_k_shot": "promptft.data",
    "sample_multi_label": "promptft.data",
}

# A literal list (not `list(_EXPORTS)`): linters and IDEs read __all__ without running the module.
# tests/test_package.py checks the three lists of names stay the same.
__all__ = [
    "ChannelClassifier",
    "DemonstrationSettings",
    "EnsembleClassifier",
    "Example",
    "HeadClassifier",
    "LoraSettings",
    "MultiLabel",
    "PetConfig",
    "PromptClassifier",
    "PromptFTError",
    "Regression",
    "TaskSpec",
    "Template",
    "TrainConfig",
    "Trainer",
    "Verbalizer",
    "load_backbone",
    "load_classifier",
    "pet",
    "read_examples",
    "sample_k_shot",
    "sample_multi_label",
]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'promptft' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)


if TYPE_CHECKING:  # static analysers and IDEs see the real names
    from promptft.adapters import LoraSettings
    from promptft.classifiers import (
        ChannelClassifier,
        EnsembleClassifier,
        HeadClassifier,
        PromptClassifier,
        load_classifier,
    )
    from promptft.config import PetConfig
    from promptft.data import Example, TaskSpec, read_examples, sample_k_shot, sample_multi_label
    from promptft.errors import PromptFTError
    from promptft.models import load_backbone
    from promptft.objectives import MultiLabel, Regression
    from promptft.prompts import DemonstrationSettings, Template, Verbalizer
    from promptft.recipes.pet import pet
    from promptft.training import TrainConfig, Trainer
