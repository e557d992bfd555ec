"""Objectives: what a task type means for training and evaluation, one module per task type.

An objective encodes the targets of examples, turns label logits into a per-example loss, decodes
logits into predictions and scores those predictions. The trainer only talks to this interface, so a
new task type (multi-label, regression, soft labels for distillation) is a new module here, not an edit
of the training loop. Importing this package does not import torch (configs validate metric names).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from promptft.errors import ConfigError
from promptft.objectives.base import Objective
from promptft.objectives.multi_label import MultiLabel
from promptft.objectives.regression import Regression
from promptft.objectives.single_label import SingleLabel
from promptft.objectives.soft_label import SoftLabel

OBJECTIVES: dict[str, type[Objective]] = {
    cls.name: cls for cls in (SingleLabel, MultiLabel, Regression, SoftLabel)
}

__all__ = [
    "OBJECTIVES",
    "MultiLabel",
    "Objective",
    "Regression",
    "SingleLabel",
    "SoftLabel",
    "get_objective",
    "known_metrics",
    "objective_from_dict",
]


def get_objective(name: str, labels: Sequence[str], **options: Any) -> Objective:
    """The objective registered under `name`, for a classifier with these labels (and its options, e.g.
    `value_range=(0, 5)` for regression, `thresholds=0.5` for multi-label)."""
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective {name!r}: choose one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[name](labels, **options)


def objective_from_dict(data: Mapping[str, Any] | None, labels: Sequence[str]) -> Objective:
    """The objective a saved classifier wrote (`Objective.to_dict`); None (older folders): single-label."""
    if not data:
        return SingleLabel(labels)
    options = {k: v for k, v in data.items() if k not in ("name", "labels")}
    return get_objective(data["name"], data.get("labels", labels), **options)


def known_metrics() -> dict[str, bool]:
    """Every metric name any objective reports -> whether higher is better."""
    out: dict[str, bool] = {}
    for objective in OBJECTIVES.values():
        out.update(objective.metrics)
    return out
