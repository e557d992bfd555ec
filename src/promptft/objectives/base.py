"""The Objective interface the trainer relies on (no torch at import: configs read `metrics`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from promptft.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from promptft.data import Example


class Objective(ABC):
    """A task type: targets, loss, decoding and metrics over a classifier's label logits `[batch, n_labels]`.

    Shapes are the objective's business: single-label targets are class indices `[n]`, multi-label ones
    would be 0/1 rows `[n, n_labels]`, soft labels probability rows, regression values `[n]`. The trainer
    only indexes rows of `targets(...)` and sums `loss(...)`, so all of these fit without changing it.
    """

    name: ClassVar[str]
    metrics: ClassVar[dict[str, bool]]  # metric name -> higher is better; the first is the default
    loss_name: ClassVar[str]  # for logs: "cross-entropy", "bce", "mse", "kl"
    # Whether decoding has settings fitted on dev (multi-label thresholds): the trainer then calls `tune`
    # before each dev evaluation, and once more for the weights it keeps.
    tunes_on_dev: ClassVar[bool] = False

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = [str(label) for label in labels]

    # ----- decoding fitted on dev, and what a saved classifier keeps -----
    def tune(self, logits: torch.Tensor, examples: Sequence[Example]) -> None:  # noqa: B027
        """Fit decoding settings on labelled dev logits (nothing to fit for most objectives)."""

    def options(self) -> dict[str, Any]:
        """Constructor options beyond the labels (JSON-able), saved with a classifier and read back by
        `objective_from_dict`: thresholds, a value range, ..."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "labels": list(self.labels), **self.options()}

    @abstractmethod
    def targets(self, examples: Sequence[Example]) -> torch.Tensor:
        """One row per example, read from `Example.label`; DataError for missing or unknown labels."""

    @abstractmethod
    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-example loss `[batch]` (not reduced): the trainer weights examples across micro-batches
        and processes so that every step averages over its whole global batch."""

    @abstractmethod
    def decode(self, logits: torch.Tensor) -> list[Any]:
        """Predictions, one per row: a label name here, a list of names or a number for other tasks."""

    @abstractmethod
    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """What a user sees as scores: probabilities for classification, values for regression."""

    @abstractmethod
    def evaluate(self, examples: Sequence[Example], predictions: Sequence[Any]) -> dict[str, float]:
        """Metrics of `predictions` against the examples' labels (every key of `metrics`, plus `n`)."""

    # ----- metric selection -----
    @property
    def default_metric(self) -> str:
        return next(iter(self.metrics))

    def check_metric(self, metric: str) -> str:
        """`metric` if this objective reports it. `accuracy`, the training config's default (the
        single-label metric), means this objective's default metric when it reports no accuracy."""
        if metric == "accuracy" and metric not in self.metrics:
            return self.default_metric
        if metric not in self.metrics:
            raise ConfigError(
                f"metric {metric!r} is not reported by the {self.name} objective: "
                f"choose one of {list(self.metrics)}"
            )
        return metric

    def is_better(self, metric: str, new: float, best: float | None) -> bool:
        """Strictly better than the best so far (ties keep the earlier, e.g. the untrained, model)."""
        if best is None:
            return True
        return new > best if self.metrics[metric] else new < best
