"""Classifiers: a backbone + prompt (PromptClassifier; YesNoClassifier asks a yes/no question per label)
or + a new head (HeadClassifier), or several trained ones combined (EnsembleClassifier), with one API:
fit, predict, predict_proba, evaluate, save_pretrained, from_pretrained."""

from __future__ import annotations

import json
from pathlib import Path

from promptft.classifiers.base import BaseClassifier
from promptft.classifiers.channel import ChannelClassifier, channel_template
from promptft.classifiers.ensemble import ENSEMBLE_TYPE, EnsembleClassifier
from promptft.classifiers.head import HeadClassifier
from promptft.classifiers.prompt import PromptClassifier, PromptScorer
from promptft.classifiers.saving import CONFIG_FILE
from promptft.classifiers.yes_no import YesNoClassifier
from promptft.data.inputs import as_examples
from promptft.errors import ModelError

__all__ = [
    "CONFIG_FILE",
    "BaseClassifier",
    "ChannelClassifier",
    "EnsembleClassifier",
    "HeadClassifier",
    "PromptClassifier",
    "PromptScorer",
    "YesNoClassifier",
    "as_examples",
    "channel_template",
    "load_classifier",
]


def load_classifier(directory: str | Path, **kwargs) -> BaseClassifier:
    """Load whichever classifier type a folder holds."""
    path = Path(directory) / CONFIG_FILE
    if not path.exists():
        raise ModelError(f"{directory} holds no {CONFIG_FILE}: point at a folder written by save_pretrained")
    kind = json.loads(path.read_text()).get("type")
    cls = {
        "prompt": PromptClassifier,
        "head": HeadClassifier,
        "yes_no": YesNoClassifier,
        "channel": ChannelClassifier,
        ENSEMBLE_TYPE: EnsembleClassifier,
    }.get(kind)
    if cls is None:
        raise ModelError(f"{path} has unknown classifier type {kind!r}")
    return cls.from_pretrained(directory, **kwargs)
