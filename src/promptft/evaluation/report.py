"""Evaluation report pieces: per-class precision/recall/F1, confusion matrix, calibration (ECE and a
reliability diagram) and the most confident mistakes.

Inputs are plain arrays, so the report works for any classifier: gold labels, predictions (or None: the
argmax of the probabilities) and probabilities `[n, n_labels]` whose columns follow `labels` (the order
of `PromptClassifier.predict_proba`). Metrics come from scikit-learn so they match what users compute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from promptft.data import Example
from promptft.errors import DataError


@dataclass
class EvaluationReport:
    labels: list[str]
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]  # label -> precision, recall, f1, support
    confusion: np.ndarray  # [gold, predicted] counts in `labels` order
    ece: float | None
    calibration_bins: list[dict[str, float]]
    confident_mistakes: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "per_class": self.per_class,
            "confusion": {"rows": "gold", "columns": "predicted", "matrix": self.confusion.tolist()},
            "ece": self.ece,
            "calibration_bins": self.calibration_bins,
            "confident_mistakes": self.confident_mistakes,
        }

    def render_markdown(self) -> str:
        lines = [f"Accuracy {self.accuracy:.3f}, macro-F1 {self.macro_f1:.3f}", ""]
        lines += ["| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        for label, m in self.per_class.items():
            lines.append(
                f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {int(m['support'])} |"
            )
        lines += ["", "Confusion matrix (rows gold, columns predicted):", ""]
        lines.append("| gold \\ predicted | " + " | ".join(self.labels) + " |")
        lines.append("|---" * (len(self.labels) + 1) + "|")
        for label, row in zip(self.labels, self.confusion, strict=True):
            lines.append(f"| {label} | " + " | ".join(str(int(v)) for v in row) + " |")
        if self.ece is not None:
            lines += ["", f"Expected calibration error: {self.ece:.3f} ({len(self.calibration_bins)} bins)"]
        if self.confident_mistakes:
            lines += ["", "Most confident mistakes:", "", "| row | gold | predicted | confidence | text |"]
            lines.append("|---|---|---|---|---|")
            for m in self.confident_mistakes:
                text = str(m.get("text", "")).replace("|", "\\|").replace("\n", " ")[:120]
                lines.append(
                    f"| {m['row']} | {m['gold']} | {m['predicted']} | {m['confidence']:.3f} | {text} |"
                )
        return "\n".join(lines) + "\n"

    def save_plots(self, folder: str | Path, prefix: str = "") -> dict[str, Path]:
        """Write `reliability.png` and `confusion.png` into `folder`; returns their paths."""
        from promptft.evaluation.plots import plot_confusion, plot_reliability

        folder = Path(folder)
        out = {"confusion": plot_confusion(self.confusion, self.labels, folder / f"{prefix}confusion.png")}
        if self.ece is not None:
            out["reliability"] = plot_reliability(
                self.calibration_bins, self.ece, folder / f"{prefix}reliability.png"
            )
        return out


def expected_calibration_error(
    confidence: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, n_bins: int = 10
) -> tuple[float, list[dict[str, float]]]:
    """ECE over `n_bins` equal-width confidence bins: sum over bins of (rows in bin / n) x |accuracy -
    mean confidence|. A bin covers (lower, upper]; the first also holds 0. Returns (ece, bins)."""
    conf = np.asarray(confidence, dtype=float)
    hit = np.asarray(correct, dtype=float)
    if conf.shape != hit.shape or conf.ndim != 1:
        raise DataError(f"confidence {conf.shape} and correct {hit.shape} must be 1-d arrays of one length")
    if n_bins < 1:
        raise DataError(f"n_bins must be at least 1, got {n_bins}")
    if conf.size and (conf.min() < 0 or conf.max() > 1):
        raise DataError("confidences must lie in [0, 1]: pass probabilities, not logits (softmax them first)")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        mask = which == b
        count = int(mask.sum())
        acc = float(hit[mask].mean()) if count else 0.0
        mean_conf = float(conf[mask].mean()) if count else 0.0
        if count:
            ece += count / conf.size * abs(acc - mean_conf)
        bins.append(
            {"lower": float(edges[b]), "upper": float(edges[b + 1]), "count": count, "accuracy": acc,
             "confidence": mean_conf}
        )  # fmt: skip
    return float(ece), bins


def evaluation_report(
    gold: Sequence[str],
    probabilities: np.ndarray | None,
    labels: Sequence[str],
    *,
    predictions: Sequence[str] | None = None,
    examples: Sequence[Example] | None = None,
    n_bins: int = 10,
    top_mistakes: int = 10,
) -> EvaluationReport:
    """The report for gold labels and predicted probabilities (columns in `labels` order).

    `predictions` default to the argmax of `probabilities`; without probabilities there is no
    calibration and mistakes are listed in row order. `examples` (same rows) add the text to mistakes.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = [str(x) for x in labels]
    gold = [str(g) for g in gold]
    n = len(gold)
    probs = None if probabilities is None else np.asarray(probabilities, dtype=float)
    if probs is not None and probs.shape != (n, len(labels)):
        raise DataError(
            f"probabilities have shape {probs.shape}, expected ({n}, {len(labels)}) = (rows, labels): pass one "
            "row per gold label and one column per label, in the order of `labels`"
        )
    if predictions is None:
        if probs is None:
            raise DataError("give predictions= or probabilities (their argmax is the prediction)")
        predictions = [labels[i] for i in probs.argmax(axis=1)]
    predictions = [str(p) for p in predictions]
    if len(predictions) != n or (examples is not None and len(examples) != n):
        raise DataError(f"{n} gold labels but {len(predictions)} predictions: they must be the same rows")
    unknown = sorted((set(gold) | set(predictions)) - set(labels))
    if unknown:
        raise DataError(f"labels {unknown} are not in labels={labels}: add them or fix the label map")
    p, r, f, s = precision_recall_fscore_support(gold, predictions, labels=labels, zero_division=0)
    per_class = {
        label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, label in enumerate(labels)
    }
    correct = np.array([g == q for g, q in zip(gold, predictions, strict=True)], dtype=bool)
    ece, bins = None, []
    confidence = np.ones(n)
    if probs is not None:
        index = {label: i for i, label in enumerate(labels)}
        confidence = probs[np.arange(n), [index[q] for q in predictions]]
        ece, bins = expected_calibration_error(confidence, correct, n_bins)
    order = sorted(np.flatnonzero(~correct), key=lambda i: (-confidence[i], i))[:top_mistakes]
    mistakes = []
    for i in order:
        m: dict[str, Any] = {"row": int(i) + 1, "gold": gold[i], "predicted": predictions[i]}
        m["confidence"] = float(confidence[i])
        if probs is not None:
            m["p_gold"] = float(probs[i, labels.index(gold[i])])
        if examples is not None:
            m["text"] = " | ".join(str(v) for v in examples[i].fields.values())
        mistakes.append(m)
    return EvaluationReport(
        labels=labels,
        accuracy=float(correct.mean()) if n else 0.0,
        macro_f1=float(np.mean(f)) if len(f) else 0.0,
        per_class=per_class,
        confusion=confusion_matrix(gold, predictions, labels=labels),
        ece=ece,
        calibration_bins=bins,
        confident_mistakes=mistakes,
    )
