"""Multi-label classification: any number of labels per example, one sigmoid per label.

The classifier gives one score per label (`[batch, n_labels]`, log-odds); each passes through a sigmoid
and is trained with binary cross-entropy. A label is predicted when its probability reaches the label's
threshold; thresholds are tuned on dev (the F1-best cut per label) and saved with the classifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from promptft.errors import ConfigError, DataError
from promptft.objectives.base import Objective

if TYPE_CHECKING:
    import numpy as np
    import torch

    from promptft.data import Example


class MultiLabel(Objective):
    """Targets are 0/1 rows `[n, n_labels]`; predictions sorted tuples of label names. Metrics: macro-F1,
    micro-F1, subset accuracy (all labels right), and `f1_<label>` per label."""

    name: ClassVar[str] = "multi_label"
    metrics: ClassVar[dict[str, bool]] = {"macro_f1": True, "micro_f1": True, "subset_accuracy": True}
    loss_name: ClassVar[str] = "bce"
    tunes_on_dev: ClassVar[bool] = True

    def __init__(
        self,
        labels: Sequence[str],
        thresholds: Sequence[float] | float = 0.5,
        tune_thresholds: bool = True,
    ) -> None:
        super().__init__(labels)
        if isinstance(thresholds, int | float):
            thresholds = [float(thresholds)] * len(self.labels)
        if len(thresholds) != len(self.labels) or not all(0 <= t <= 1 for t in thresholds):
            raise ConfigError(
                f"thresholds must be one number in [0, 1] or one per label ({len(self.labels)}), got {thresholds!r}"
            )
        self.thresholds = [float(t) for t in thresholds]
        self.tune_thresholds = tune_thresholds

    def options(self) -> dict[str, Any]:
        return {"thresholds": list(self.thresholds), "tune_thresholds": self.tune_thresholds}

    def targets(self, examples: Sequence[Example]) -> torch.Tensor:
        import torch

        index = {label: i for i, label in enumerate(self.labels)}
        out = torch.zeros((len(examples), len(self.labels)), dtype=torch.float32)
        for i, ex in enumerate(examples):
            if not isinstance(ex.label, tuple):
                raise DataError(
                    f"example {i} has label {ex.label!r}, not a set of labels: read multi-label data with "
                    "task multi_label (e.g. a comma-separated label column)"
                )
            for label in ex.label:
                if label not in index:
                    raise DataError(
                        f"unknown label {label!r}: this classifier knows {self.labels}; fix the label map "
                        "or add label words for it"
                    )
                out[i, index[label]] = 1.0
        return out

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per example, the mean BCE over its labels. A NaN logit is a label not asked this step (a yes/no
        classifier's `train_negatives`): it carries no loss and no gradient, and the mean is over the rest."""
        import torch.nn.functional as F

        logits, targets = logits.float(), targets.to(logits.device).float()
        asked = ~logits.isnan()
        if bool(asked.all()):
            per_label = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
            return per_label.mean(
                -1
            )  # the mean over labels: the loss scale does not grow with the label count
        per_label = F.binary_cross_entropy_with_logits(
            logits.masked_fill(~asked, 0.0), targets, reduction="none"
        )
        return (per_label * asked).sum(-1) / asked.sum(-1).clamp(min=1)

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float().sigmoid()

    def decode(self, logits: torch.Tensor) -> list[Any]:
        import torch

        on = self.scores(logits) >= torch.tensor(self.thresholds)
        return [tuple(sorted(self.labels[j] for j in row.nonzero().flatten().tolist())) for row in on]

    def tune(self, logits: torch.Tensor, examples: Sequence[Example]) -> None:
        """Per label, the threshold with the best F1 on these (dev) examples; a label without a positive
        example here keeps its threshold."""
        if not self.tune_thresholds or not len(examples):
            return
        probs = self.scores(logits).numpy()
        gold = self.targets(examples).numpy()
        self.thresholds = [
            best_threshold(probs[:, j], gold[:, j], self.thresholds[j]) for j in range(len(self.labels))
        ]

    def evaluate(self, examples: Sequence[Example], predictions: Sequence[Any]) -> dict[str, float]:
        return multi_label_metrics([ex.label for ex in examples], list(predictions), self.labels)  # type: ignore[misc]


def best_threshold(probs: np.ndarray, gold: np.ndarray, current: float) -> float:
    """The F1-best threshold for one label: cuts lie midway between consecutive distinct scores (so
    `p >= t` separates them); ties in F1 go to the cut closest to 0.5."""
    import numpy as np

    positives = float(gold.sum())
    if positives == 0:
        return current
    order = np.argsort(-probs, kind="stable")
    p, y = probs[order], gold[order]
    tp = np.cumsum(y)
    f1 = 2 * tp / (np.arange(1, len(p) + 1) + positives)
    below = np.r_[p[1:], 0.0]
    cut_ok = np.r_[p[:-1] > p[1:], True]  # only cut where the next score is strictly lower
    cuts = (p + below) / 2
    best = f1[cut_ok].max()
    candidates = cuts[cut_ok & (f1 >= best - 1e-12)]
    return float(candidates[np.argmin(np.abs(candidates - 0.5))])


def multi_label_metrics(
    gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], labels: Sequence[str]
) -> dict[str, float]:
    """Macro-F1 and micro-F1 over `labels` (scikit-learn; a label never predicted nor present scores 0),
    subset accuracy (the predicted set is exactly the gold set), `f1_<label>` per label, and n."""
    import numpy as np
    from sklearn.metrics import f1_score

    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold label sets but {len(predicted)} predictions")
    index = {label: j for j, label in enumerate(labels)}

    def binary(sets: Sequence[Sequence[str]]) -> np.ndarray:
        out = np.zeros((len(sets), len(labels)), dtype=int)
        for i, names in enumerate(sets):
            for name in names:
                if name in index:
                    out[i, index[name]] = 1
        return out

    g, p = binary(gold), binary(predicted)
    per_label = f1_score(g, p, average=None, zero_division=0) if len(g) else np.zeros(len(labels))
    out = {
        "macro_f1": float(np.mean(per_label)) if len(labels) else 0.0,
        "micro_f1": float(f1_score(g, p, average="micro", zero_division=0)) if len(g) else 0.0,
        "subset_accuracy": float(np.mean([set(a) == set(b) for a, b in zip(gold, predicted, strict=True)]))
        if len(g)
        else 0.0,
    }
    out.update({f"f1_{label}": float(v) for label, v in zip(labels, per_label, strict=True)})
    out["n"] = len(gold)
    return out
