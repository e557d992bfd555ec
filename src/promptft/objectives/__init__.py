"""Objectives: what a task type means for training and evaluation, one module per task type.

An objective encodes the targets of examples, turns label logits into a per-example loss, decodes
logits into predictions and scores those predictions. The trainer only talks to this interface, so a
new task type (multi-label, regression, soft labels for distillation) is a new module here, not an edit
of the training loop. Importing this package does not import torch (configs validate metric names).
"""

from __future__ import annotations

from collections.abc import Sequence

from promptft.errors import ConfigError
from promptft.objectives.base import Objective
from promptft.objectives.single_label import SingleLabel

OBJECTIVES: dict[str, type[Objective]] = {SingleLabel.name: SingleLabel}

__all__ = ["OBJECTIVES", "Objective", "SingleLabel", "get_objective", "known_metrics"]


def get_objective(name: str, labels: Sequence[str]) -> Objective:
    """The objective registered under `name`, for a classifier with these labels."""
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective {name!r}: choose one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[name](labels)


def known_metrics() -> dict[str, bool]:
    """Every metric name any objective reports -> whether higher is better."""
    out: dict[str, bool] = {}
    for objective in OBJECTIVES.values():
        out.update(objective.metrics)
    return out
