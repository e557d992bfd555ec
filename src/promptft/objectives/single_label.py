"""Single-label classification: one label per example, softmax cross-entropy, argmax decoding.

Optionally temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks"): the
probabilities a user sees are `softmax(logits / T)`, with T fitted on labelled dev logits by minimising
their negative log-likelihood. Argmax decoding, and so accuracy, does not change; only how confident the
probabilities are. A prompted LM zero-shot is often under-confident (T < 1 sharpens it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from promptft.errors import ConfigError, DataError
from promptft.objectives.base import Objective

if TYPE_CHECKING:
    import torch

    from promptft.data import Example


class SingleLabel(Objective):
    """Targets are class indices in `labels` order; metrics are those of
    `classification_metrics` below (accuracy, macro-F1 over all labels)."""

    name: ClassVar[str] = "single_label"
    metrics: ClassVar[dict[str, bool]] = {"accuracy": True, "macro_f1": True}
    loss_name: ClassVar[str] = "cross-entropy"

    def __init__(
        self, labels: Sequence[str], calibration_temperature: float = 1.0, tune_temperature: bool = False
    ) -> None:
        """`calibration_temperature`: T in `softmax(logits / T)` for the scores (1: none).
        `tune_temperature`: fit T on dev whenever the classifier tunes its decoding (`fit` does on its dev
        split; `BaseClassifier.tune(dev)` after training or zero-shot)."""
        super().__init__(labels)
        if len(self.labels) < 2:
            raise ConfigError(
                f"a single-label task needs at least 2 labels, got {self.labels}: give label words for every "
                "class (with one label, every prediction is that label)"
            )
        check_temperature(calibration_temperature)
        self.calibration_temperature = float(calibration_temperature)
        self.tune_temperature = bool(tune_temperature)

    @property
    def tunes_on_dev(self) -> bool:  # type: ignore[override]
        return self.tune_temperature

    def options(self) -> dict[str, Any]:
        # Only what differs from the defaults, so classifiers saved without calibration read as before.
        out: dict[str, Any] = {}
        if self.calibration_temperature != 1.0:
            out["calibration_temperature"] = self.calibration_temperature
        if self.tune_temperature:
            out["tune_temperature"] = True
        return out

    def tune(self, logits: torch.Tensor, examples: Sequence[Example]) -> None:
        """The temperature with the lowest negative log-likelihood of these (dev) examples' labels."""
        if not self.tune_temperature or not len(examples):
            return
        self.calibration_temperature = fit_temperature(logits, self.targets(examples))

    def targets(self, examples: Sequence[Example]) -> torch.Tensor:
        import torch

        index = {label: i for i, label in enumerate(self.labels)}
        out = []
        for ex in examples:
            if ex.label is None:
                raise DataError("an example has no label: training and evaluation need labelled data")
            if ex.label not in index:
                raise DataError(
                    f"unknown label {ex.label!r}: this classifier knows {self.labels}; "
                    "fix the label map or add label words for it"
                )
            out.append(index[ex.label])
        return torch.tensor(out, dtype=torch.long)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        # Logits are log-space scores; cross-entropy renormalises them over the labels. fp32 so that
        # mixed precision does not round the loss.
        return F.cross_entropy(logits.float(), targets.to(logits.device), reduction="none")

    def decode(self, logits: torch.Tensor) -> list[Any]:
        return [self.labels[i] for i in logits.float().argmax(-1).tolist()]

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        return (logits.float() / self.calibration_temperature).softmax(-1)

    def evaluate(self, examples: Sequence[Example], predictions: Sequence[Any]) -> dict[str, float]:
        return classification_metrics([ex.label for ex in examples], list(predictions), self.labels)


def classification_metrics(
    gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> dict[str, float]:
    """Accuracy and macro-F1 over all `labels` (a label never predicted nor seen counts as F1 0), computed
    by scikit-learn so they match what users compute elsewhere. Re-exported by `promptft.evaluation`."""
    from sklearn.metrics import accuracy_score, f1_score

    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    return {
        "accuracy": float(accuracy_score(gold, predicted)),
        "macro_f1": float(f1_score(gold, predicted, labels=list(labels), average="macro", zero_division=0)),
        "n": len(gold),
    }


TEMPERATURE_BOUNDS = (0.05, 20.0)  # beyond these a distribution is all but one-hot, or all but uniform


def check_temperature(value: float, name: str = "calibration_temperature", example: str = "1.0") -> None:
    """ConfigError unless `value` is a finite positive number (a softmax temperature)."""
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a positive number, got {value!r}: e.g. {example}")


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The T in `TEMPERATURE_BOUNDS` minimising the mean cross-entropy of `softmax(logits / T)` against
    class indices `targets`. One parameter: a bounded 1-d search over log T (scipy's Brent method) is exact
    enough and cannot diverge the way a gradient step on few examples can."""
    import torch.nn.functional as F
    from scipy.optimize import minimize_scalar

    logits = logits.detach().float().cpu()
    targets = targets.cpu()
    if logits.shape[0] == 0:
        raise DataError("temperature scaling needs labelled dev examples: the split is empty")

    def nll(log_t: float) -> float:
        return F.cross_entropy(logits / math.exp(log_t), targets).item()

    low, high = (math.log(b) for b in TEMPERATURE_BOUNDS)
    return float(math.exp(minimize_scalar(nll, bounds=(low, high), method="bounded").x))
