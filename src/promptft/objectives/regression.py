"""Regression through a prompt (LM-BFF style) or a one-output head: a number inside a declared range.

Prompt: two pole words at the slot (e.g. no/yes); the prediction is `low + (high - low) * p(upper pole)`,
with p a softmax over the two poles only, and the loss is the KL divergence from the target's position in
the range, `[1 - y, y]`, to that two-pole distribution (LM-BFF's STS-B recipe). Head baseline: one output
read as the position in the range, trained with MSE. Which one is told by the number of labels: two
poles, or one value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from promptft.data.targets import check_range
from promptft.errors import ConfigError, DataError
from promptft.objectives.base import Objective

if TYPE_CHECKING:
    import torch

    from promptft.data import Example

VALUE_LABEL = "value"  # the one output of a regression head


class Regression(Objective):
    """`labels`: the two poles, lower first (`["low", "high"]`, each with its label word), or one name for
    a head's single output. `value_range`: (low, high) of the targets; predictions stay inside it."""

    name: ClassVar[str] = "regression"
    metrics: ClassVar[dict[str, bool]] = {"pearson": True, "spearman": True, "mse": False}
    loss_name: ClassVar[str] = "kl"

    def __init__(self, labels: Sequence[str] = (VALUE_LABEL,), value_range: Sequence[float] = (0.0, 1.0)):
        super().__init__(labels)
        if len(self.labels) not in (1, 2):
            raise ConfigError(
                f"regression takes two pole labels (lower first, e.g. low=no, high=yes) or one output, got "
                f"{len(self.labels)} labels {self.labels}: give exactly two label words"
            )
        try:
            self.value_range = check_range(value_range)
        except DataError as err:
            raise ConfigError(str(err)) from None
        self.loss_name = "kl" if self.poles else "mse"  # type: ignore[misc]

    @property
    def poles(self) -> bool:
        return len(self.labels) == 2

    def options(self) -> dict[str, Any]:
        return {"value_range": list(self.value_range)}

    def targets(self, examples: Sequence[Example]) -> torch.Tensor:
        """Each target's position in the range, in [0, 1]."""
        import torch

        low, high = self.value_range
        out = []
        for i, ex in enumerate(examples):
            if isinstance(ex.label, bool) or not isinstance(ex.label, int | float):
                raise DataError(
                    f"example {i} has label {ex.label!r}, not a number: regression needs numeric targets "
                    "(read the data with task regression and a value range)"
                )
            if not low <= ex.label <= high:
                raise DataError(
                    f"example {i} has target {ex.label:g}, outside the range [{low:g}, {high:g}]: fix the "
                    "data or the value range"
                )
            out.append((float(ex.label) - low) / (high - low))
        return torch.tensor(out, dtype=torch.float32)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        import torch

        y = targets.to(logits.device, torch.float32)
        if not self.poles:
            return (logits.float()[:, 0] - y) ** 2
        log_p = torch.log_softmax(logits.float(), dim=-1)  # the two poles only
        target = torch.stack([1 - y, y], dim=-1)
        # KL(target || model) = sum t log t - t log p; xlogy makes 0 log 0 = 0 (targets at the range ends).
        return (torch.xlogy(target, target) - target * log_p).sum(-1)

    def positions(self, logits: torch.Tensor) -> torch.Tensor:
        """Where each prediction lies in the range, in [0, 1]."""
        if self.poles:
            return logits.float().softmax(-1)[:, 1]
        return logits.float()[:, 0].clamp(0, 1)

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """The predicted values `[n]`."""
        low, high = self.value_range
        return low + (high - low) * self.positions(logits)

    def decode(self, logits: torch.Tensor) -> list[Any]:
        return [float(v) for v in self.scores(logits).tolist()]

    def evaluate(self, examples: Sequence[Example], predictions: Sequence[Any]) -> dict[str, float]:
        return regression_metrics([float(ex.label) for ex in examples], list(predictions))  # type: ignore[arg-type]


def regression_metrics(gold: Sequence[float], predicted: Sequence[float]) -> dict[str, float]:
    """Pearson and Spearman correlations (scipy) and the mean squared error. A constant prediction has no
    correlation: it scores 0 rather than NaN, so it never wins model selection."""
    import warnings

    import numpy as np
    from scipy.stats import pearsonr, spearmanr

    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold values but {len(predicted)} predictions")
    g, p = np.asarray(gold, dtype=float), np.asarray(predicted, dtype=float)
    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on constant input; it is reported as 0 below
        for name, fn in (("pearson", pearsonr), ("spearman", spearmanr)):
            value = float(fn(g, p)[0]) if len(g) > 1 else float("nan")
            out[name] = 0.0 if np.isnan(value) else value
    out["mse"] = float(np.mean((g - p) ** 2)) if len(g) else 0.0
    out["n"] = len(g)
    return out
