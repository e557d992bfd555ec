"""PNG plots for diagnostics: learning curves, reliability diagrams, confusion matrices.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot): no display is needed and the caller's
own pyplot backend and state are left alone. Each function writes the PNG and returns its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _figure(width: float = 6.4, height: float = 4.0) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def plot_learning_curves(
    history: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    metrics: Sequence[str] = ("accuracy", "macro_f1"),
    chance: float | None = None,
    best_step: int | None = None,
    title: str | None = None,
) -> Path:
    """Train loss (left axis) and dev metrics (right axis) against the step; chance and the best step
    drawn as dashed lines when given."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    train = [(r["step"], r["train_loss"]) for r in history if r.get("train_loss") is not None]
    if train:
        ax.plot(*zip(*train, strict=True), "o-", color="tab:red", label="train loss")
    dev_loss = [(r["step"], r["dev_loss"]) for r in history if r.get("dev_loss") is not None]
    if dev_loss:
        ax.plot(*zip(*dev_loss, strict=True), "s--", color="tab:orange", label="dev loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    right = ax.twinx()
    for i, name in enumerate(metrics):
        for prefix, style in (("dev", "o-"), ("train", "^:")):
            pts = [
                (r["step"], r[f"{prefix}_{name}"]) for r in history if r.get(f"{prefix}_{name}") is not None
            ]
            if pts:
                right.plot(*zip(*pts, strict=True), style, color=f"C{i}", label=f"{prefix} {name}")
    if chance is not None:
        right.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
    if best_step is not None:
        ax.axvline(best_step, color="green", linestyle=":", linewidth=1, label="best step")
    right.set_ylim(0, 1.02)
    right.set_ylabel("dev metric")
    handles = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    right.legend(handles[0] + more[0], handles[1] + more[1], loc="center right", fontsize=8)
    ax.set_title(title or "learning curves")
    return _save(fig, path)


def plot_reliability(
    bins: Sequence[Mapping[str, Any]], ece: float, path: str | Path, *, title: str | None = None
) -> Path:
    """A reliability diagram: accuracy per confidence bin against the diagonal, bin sizes below."""
    fig = _figure(5.0, 5.5)
    top = fig.add_axes((0.14, 0.36, 0.8, 0.56))
    bottom = fig.add_axes((0.14, 0.08, 0.8, 0.2), sharex=top)
    lo = np.array([b["lower"] for b in bins])
    width = np.array([b["upper"] - b["lower"] for b in bins])
    acc = np.array([b["accuracy"] if b["count"] else 0.0 for b in bins])
    conf = np.array([b["confidence"] if b["count"] else 0.0 for b in bins])
    counts = np.array([b["count"] for b in bins])
    top.bar(lo, acc, width=width, align="edge", edgecolor="black", color="tab:blue", label="accuracy")
    top.bar(lo, conf - acc, bottom=acc, width=width, align="edge", color="tab:red", alpha=0.3, label="gap")
    top.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.legend(loc="upper left", fontsize=8)
    top.set_title(f"{title or 'reliability'} (ECE {ece:.3f})")
    bottom.bar(lo, counts, width=width, align="edge", edgecolor="black", color="grey")
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("rows")
    bottom.set_xlim(0, 1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")  # fixed axes: no tight_layout
    return path


def plot_confusion(
    matrix: np.ndarray, labels: Sequence[str], path: str | Path, *, title: str | None = None
) -> Path:
    """A confusion matrix (rows: gold, columns: predicted) with its counts written in the cells."""
    n = len(labels)
    fig = _figure(max(4.0, 0.6 * n + 2.5), max(3.5, 0.6 * n + 2.0))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ax.set_xticks(range(n), labels=list(labels), rotation=45, ha="right")
    ax.set_yticks(range(n), labels=list(labels))
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    high = matrix.max() / 2 if matrix.size else 0
    for i in range(n):
        for j in range(n):
            colour = "white" if matrix[i, j] > high else "black"
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", color=colour, fontsize=8)
    ax.set_title(title or "confusion matrix")
    return _save(fig, path)


def plot_k_curve(
    cells: Sequence[Mapping[str, Any]],
    summary: Sequence[Mapping[str, Any]],
    metric: str,
    path: str | Path,
    *,
    chance: float | None = None,
    title: str | None = None,
) -> Path:
    """A learning curve over the training-set size: the metric against K (examples per class, log2 axis),
    each seed a dot, the mean a line with a band of ±1 standard deviation and the min-max range."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    ks = np.array([row["k"] for row in summary], dtype=float)
    mean = np.array([row["mean"] for row in summary])
    std = np.array([row["std"] for row in summary])
    ax.fill_between(ks, mean - std, mean + std, color="tab:blue", alpha=0.2, label="±1 std over seeds")
    ax.plot(ks, mean, "o-", color="tab:blue", label=f"mean {metric}")
    lo = np.array([row["min"] for row in summary])
    hi = np.array([row["max"] for row in summary])
    ax.vlines(ks, lo, hi, color="tab:blue", linewidth=1, alpha=0.6)
    seeds = sorted({c["seed"] for c in cells})
    for i, seed in enumerate(seeds):
        pts = sorted((c["k"], c["eval"][metric]) for c in cells if c["seed"] == seed)
        jitter = 1 + 0.03 * (i - (len(seeds) - 1) / 2)
        ax.scatter([k * jitter for k, _ in pts], [v for _, v in pts], s=14, color="grey", zorder=3,
                   label="one seed" if i == 0 else None)  # fmt: skip
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, labels=[str(int(k)) for k in ks])
    ax.set_xlabel("K (training examples per class)")
    ax.set_ylabel(metric)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title or f"learning curve ({len(seeds)} seeds)")
    return _save(fig, path)
