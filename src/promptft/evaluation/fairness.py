"""Group fairness of a classifier's predictions with fairlearn's `MetricFrame`: per-group accuracy, selection
rate (share predicted `positive_label`), true- and false-positive rates, and the demographic-parity and
equalized-odds differences (the largest gap between groups; 0 is parity).

    from promptft.evaluation.fairness import group_fairness
    report = group_fairness(gold, predicted, groups, positive_label="positive")
    print(report.render_markdown()); report.flagged
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from promptft.errors import ConfigError, DataError

MAX_DIFFERENCE = 0.1  # a gap above this in selection rate or in TPR/FPR is flagged
SMALL_GROUP = 30  # below this many rows a group's rates are too noisy to read much into


@dataclass
class GroupFairnessReport:
    positive_label: str
    groups: dict[str, dict[str, float]]  # group -> count, accuracy, selection_rate, tpr, fpr
    demographic_parity_difference: float
    equalized_odds_difference: float
    accuracy_difference: float
    threshold: float = MAX_DIFFERENCE

    @property
    def flagged(self) -> bool:
        return (
            self.demographic_parity_difference > self.threshold
            or self.equalized_odds_difference > self.threshold
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "positive_label": self.positive_label,
            "per_group": self.groups,
            "demographic_parity_difference": self.demographic_parity_difference,
            "equalized_odds_difference": self.equalized_odds_difference,
            "accuracy_difference": self.accuracy_difference,
            "threshold": self.threshold,
            "flagged": self.flagged,
        }

    def render_markdown(self) -> str:
        verdict = "FLAGGED" if self.flagged else "not flagged"
        lines = [
            f"Group fairness ({verdict} at {self.threshold:g}): demographic-parity difference "
            f"{self.demographic_parity_difference:.3f}, equalized-odds difference "
            f"{self.equalized_odds_difference:.3f}, accuracy gap {self.accuracy_difference:.3f}",
            "",
            f"| group | n | accuracy | selection rate ({self.positive_label}) | TPR | FPR |",
            "|---|---|---|---|---|---|",
        ]
        for name, g in self.groups.items():
            lines.append(
                f"| {name} | {int(g['count'])} | {g['accuracy']:.3f} | {g['selection_rate']:.3f} | "
                f"{_fmt(g['true_positive_rate'])} | {_fmt(g['false_positive_rate'])} |"
            )
        small = [name for name, g in self.groups.items() if g["count"] < SMALL_GROUP]
        if small:
            lines += ["", f"Groups with fewer than {SMALL_GROUP} rows ({', '.join(small)}): their rates are noisy, so "
                      "read the differences as a prompt to collect more data, not as a finding."]  # fmt: skip
        return "\n".join(lines) + "\n"


def _fmt(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def group_fairness(
    gold: Sequence[str],
    predicted: Sequence[str],
    groups: Sequence[str],
    *,
    positive_label: str,
    threshold: float = MAX_DIFFERENCE,
) -> GroupFairnessReport:
    """Per-group metrics and parity differences; `positive_label` is the outcome whose rate is compared
    (for multi-class data, that label against the rest)."""
    try:
        from fairlearn.metrics import (
            MetricFrame,
            count,
            demographic_parity_difference,
            equalized_odds_difference,
            false_positive_rate,
            selection_rate,
            true_positive_rate,
        )
    except ImportError as exc:  # pragma: no cover - fairlearn is a declared extra
        raise ConfigError("the fairness audit needs fairlearn: pip install 'promptft[fairness]'") from exc
    from sklearn.metrics import accuracy_score

    gold, predicted, groups = [str(x) for x in gold], [str(x) for x in predicted], [str(g) for g in groups]
    if not (len(gold) == len(predicted) == len(groups)):
        raise DataError(
            f"{len(gold)} labels, {len(predicted)} predictions, {len(groups)} groups: one per row"
        )
    if len(set(groups)) < 2:
        raise DataError(
            f"the group column has {len(set(groups))} distinct value(s): group fairness compares 2 or more "
            "groups; check --group-column"
        )
    y_true = np.array([g == positive_label for g in gold], dtype=int)
    y_pred = np.array([p == positive_label for p in predicted], dtype=int)
    correct = np.array([g == p for g, p in zip(gold, predicted, strict=True)], dtype=int)
    import warnings

    with warnings.catch_warnings():  # a group without positives has no TPR: fairlearn warns, we report "-"
        warnings.simplefilter("ignore")
        frame = MetricFrame(
            metrics={
                "count": count,
                "selection_rate": selection_rate,
                "true_positive_rate": true_positive_rate,
                "false_positive_rate": false_positive_rate,
            },
            y_true=y_true,
            y_pred=y_pred,
            sensitive_features=np.array(groups),
        )
        accuracy = MetricFrame(
            metrics=accuracy_score,
            y_true=correct,
            y_pred=np.ones_like(correct),
            sensitive_features=np.array(groups),
        )
        dp = float(demographic_parity_difference(y_true, y_pred, sensitive_features=np.array(groups)))
        eo = float(equalized_odds_difference(y_true, y_pred, sensitive_features=np.array(groups)))
    per_group: dict[str, dict[str, float]] = {}
    table = frame.by_group
    for name in table.index:
        row = table.loc[name]
        per_group[str(name)] = {
            "count": int(row["count"]),
            "accuracy": float(accuracy.by_group.loc[name]),
            "selection_rate": float(row["selection_rate"]),
            "true_positive_rate": _nan_none(row["true_positive_rate"]),
            "false_positive_rate": _nan_none(row["false_positive_rate"]),
        }
    return GroupFairnessReport(
        positive_label=positive_label,
        groups=per_group,
        demographic_parity_difference=dp,
        equalized_odds_difference=0.0 if np.isnan(eo) else eo,
        accuracy_difference=float(accuracy.difference()),
        threshold=threshold,
    )


def _nan_none(x: Any) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x
