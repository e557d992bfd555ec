"""Single-label classification: one label per example, softmax cross-entropy, argmax decoding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from promptft.errors import DataError
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
        return logits.float().softmax(-1)

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
