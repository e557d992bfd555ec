"""Soft labels (knowledge distillation): the target of an example is a teacher's probability row.

The loss is Hinton et al.'s temperature-scaled KL divergence, `T^2 * KL(p_teacher^T || softmax(z / T))`,
where `p_teacher^T` is the teacher's distribution at temperature T (computed when the pool was labelled,
see `promptft.deploy.distill`) and `z` the student's label logits. The T^2 keeps the gradients' scale
independent of T. Decoding, scores and metrics are single-label's (argmax, softmax at T = 1), so a
student trained on soft labels is an ordinary single-label classifier.

An example's label is either a probability row in `labels` order (a tuple of floats summing to 1, what a
teacher gives) or a label name (a one-hot row: a gold-labelled dev set works unchanged). Metrics compare
the argmax of a soft row (agreement with the teacher) or the gold name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from promptft.errors import DataError
from promptft.objectives.single_label import SingleLabel, check_temperature, classification_metrics

if TYPE_CHECKING:
    import torch

    from promptft.data import Example


class SoftLabel(SingleLabel):
    """Single-label distillation: `temperature` softens both distributions (1 = plain KL)."""

    name: ClassVar[str] = "soft_label"
    loss_name: ClassVar[str] = "kl"

    def __init__(self, labels: Sequence[str], temperature: float = 1.0) -> None:
        super().__init__(labels)
        check_temperature(temperature, "temperature", "2.0")
        self.temperature = float(temperature)

    def options(self) -> dict[str, Any]:
        return {"temperature": self.temperature}

    def soft_row(self, label: Any, i: int = 0) -> list[float]:
        """An example's target as a probability row (a label name becomes one-hot)."""
        n = len(self.labels)
        if isinstance(label, str):
            if label not in self.labels:
                raise DataError(
                    f"unknown label {label!r}: this classifier knows {self.labels}; fix the label map"
                )
            return [1.0 if name == label else 0.0 for name in self.labels]
        if label is None:
            raise DataError("an example has no label: distillation needs the teacher's soft labels")
        try:
            row = [float(p) for p in label]
        except (TypeError, ValueError):
            raise DataError(
                f"example {i} has label {label!r}: a soft label is a row of {n} probabilities "
                f"in the order {self.labels}, or a label name"
            ) from None
        if len(row) != n or any(not math.isfinite(p) or p < 0 for p in row) or abs(sum(row) - 1) > 1e-3:
            raise DataError(
                f"example {i} has soft label {row}: it must be {n} non-negative probabilities summing "
                f"to 1, in the order {self.labels}"
            )
        return row

    def targets(self, examples: Sequence[Example]) -> torch.Tensor:
        """Probability rows `[n, n_labels]`."""
        import torch

        return torch.tensor(
            [self.soft_row(ex.label, i) for i, ex in enumerate(examples)], dtype=torch.float32
        )

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        import torch

        t = self.temperature
        target = targets.to(logits.device, torch.float32)
        log_q = torch.log_softmax(logits.float() / t, dim=-1)
        # KL(target || student) = sum p log p - p log q; xlogy makes 0 log 0 = 0 (one-hot rows).
        return (torch.xlogy(target, target) - target * log_q).sum(-1) * (t * t)

    def gold(self, example: Example, i: int = 0) -> str:
        """The label an example stands for: its name, or the argmax of its soft row."""
        if isinstance(example.label, str):
            return example.label
        row = self.soft_row(example.label, i)
        return self.labels[max(range(len(row)), key=row.__getitem__)]

    def evaluate(self, examples: Sequence[Example], predictions: Sequence[Any]) -> dict[str, float]:
        gold = [self.gold(ex, i) for i, ex in enumerate(examples)]
        return classification_metrics(gold, list(predictions), self.labels)
