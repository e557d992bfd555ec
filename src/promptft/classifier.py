"""Moved to `promptft.classifiers`; this module re-exports its names for code written against 0.1."""

from promptft.classifiers import (  # noqa: F401
    CONFIG_FILE,
    BaseClassifier,
    HeadClassifier,
    PromptClassifier,
    PromptScorer,
    as_examples,
    load_classifier,
)
from promptft.classifiers.head import EncodedInput  # noqa: F401
