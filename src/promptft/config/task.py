"""The `task:` section of a job: single-label, multi-label or regression, and how labels are read.

    task:
      type: multi_label            # single_label (default) | multi_label | regression
      label_separator: ","         # multi-label: "6,9,27"; a cell starting with [ is a JSON list
      label_columns: null          # multi-label: one 0/1 column per label instead of a label column
      threshold: 0.5               # multi-label: the starting threshold, tuned per label on dev
    task:
      type: regression
      value_range: [0, 5]          # required: targets outside it are errors; predictions stay inside

A prompt for regression has two label words, lower pole first (`low: "no"`, `high: "yes"`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Self

from pydantic import model_validator

from promptft.config.base import Section
from promptft.data.targets import TaskSpec
from promptft.objectives import MultiLabel, Objective, Regression, SingleLabel


class TaskConfig(Section):
    """The task type and its options."""

    type: Literal["single_label", "multi_label", "regression"] = "single_label"
    """single_label (one label per example), multi_label (a set of labels), regression (a number)."""
    label_separator: str = ","
    """multi_label: what separates labels in a label cell ("6,9,27"); a cell starting with [ is a JSON list."""
    label_columns: list[str | int] | None = None
    """multi_label: one 0/1 column per label (names or indices) instead of one label column."""
    allow_empty: bool = False
    """multi_label: accept rows with no label (else they are errors)."""
    threshold: float = 0.5
    """multi_label: the starting probability threshold of every label (tuned per label on dev)."""
    tune_thresholds: bool = True
    """multi_label: tune each label's threshold on dev (the F1-best cut)."""
    value_range: tuple[float, float] | None = None
    """regression: [low, high] of the targets (required), e.g. [0, 5] for STS-B."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.type == "regression":
            if self.value_range is None:
                raise ValueError("value_range is required for regression: e.g. value_range: [0, 5]")
            if self.value_range[0] >= self.value_range[1]:
                raise ValueError(
                    f"value_range must be [low, high] with low < high, got {list(self.value_range)}"
                )
        elif self.value_range is not None:
            raise ValueError(f"value_range is for regression only (task.type is {self.type})")
        if self.type != "multi_label":
            if self.label_columns is not None:
                raise ValueError(f"label_columns is for multi_label only (task.type is {self.type})")
        elif not self.label_separator:
            raise ValueError('label_separator is empty: e.g. ","')
        if not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        return self

    def reader_task(self) -> TaskSpec | None:
        """How the readers parse labels (None: single-label, the readers' default)."""
        if self.type == "single_label":
            return None
        return TaskSpec(
            self.type,
            separator=self.label_separator,
            label_columns=tuple(self.label_columns) if self.label_columns is not None else None,
            allow_empty=self.allow_empty,
            value_range=self.value_range,
        )

    def objective(self, labels: Sequence[str]) -> Objective:
        """The objective of a classifier with these labels (a prompt's poles, or a head's outputs)."""
        if self.type == "multi_label":
            return MultiLabel(labels, self.threshold, self.tune_thresholds)
        if self.type == "regression":
            assert self.value_range is not None
            return Regression(labels, self.value_range)
        return SingleLabel(labels)

    @classmethod
    def from_objective(cls, saved: Mapping[str, Any] | None) -> TaskConfig:
        """The task a saved classifier's objective implies (to read new data for it without its job)."""
        if not saved or saved.get("name") in (None, "single_label", "soft_label"):
            return cls()  # soft labels (distillation) read gold data as single-label names
        if saved["name"] == "regression":
            return cls(type="regression", value_range=tuple(saved["value_range"]))
        return cls(type=saved["name"])
