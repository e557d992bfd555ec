"""The learning-curve recipe: train one job at K = 4, 8, 16, 32 examples per class over several seeds and plot
the evaluation metric against K, with the spread over seeds.

    from promptft.config import load_job
    from promptft.recipes.learning_curve import learning_curve
    curve = learning_curve(load_job("examples/sst2_prompt_lora.yaml"), pool="../shared/data/SST-2/train.tsv",
                           output="runs/sst2-curve")

Each (K, seed) cell samples K train and K dev examples per class from `pool` (LM-BFF's protocol: disjoint,
`sample_k_shot` with that seed), trains the job with that seed, picks the best step on the dev sample and
scores the held-out evaluation file. A finished cell is written to `<output>/cells/k<K>-seed<S>.json` at once,
so an interrupted curve resumes where it stopped (finished cells are never retrained).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptft.config import JobConfig
from promptft.data import label_names, sample_k_shot
from promptft.data.splits import read_split
from promptft.errors import ConfigError, DataError
from promptft.recipes.run_dir import check_writable

CURVE_FILE = "learning_curve.json"
PLOT_FILE = "learning_curve.png"
DEFAULT_KS = (4, 8, 16, 32)
DEFAULT_SEEDS = (13, 21, 42)


@dataclass
class LearningCurve:
    metric: str
    ks: list[int]
    seeds: list[int]
    cells: list[dict[str, Any]]
    summary: list[dict[str, Any]]  # per K: mean, std, min, max, n
    output: str
    plot: str | None = None
    command: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "metric": self.metric,
            "ks": self.ks,
            "seeds": self.seeds,
            "summary": self.summary,
            "cells": self.cells,
            "plot": self.plot,
        }

    def render_text(self) -> str:
        lines = [f"Learning curve ({self.metric} on the evaluation file; spread over seeds)",
                 f"{'K':>4}{'seeds':>7}{'mean':>9}{'std':>8}{'min':>8}{'max':>8}"]  # fmt: skip
        for row in self.summary:
            lines.append(
                f"{row['k']:>4}{row['n']:>7}{row['mean']:>9.4f}{row['std']:>8.4f}{row['min']:>8.4f}{row['max']:>8.4f}"
            )
        return "\n".join(lines)


def cell_path(output: Path, k: int, seed: int) -> Path:
    return output / "cells" / f"k{k}-seed{seed}.json"


def summarise(cells: Sequence[dict[str, Any]], metric: str, ks: Sequence[int]) -> list[dict[str, Any]]:
    out = []
    for k in ks:
        values = [c["eval"][metric] for c in cells if c["k"] == k]
        if not values:
            continue
        out.append(
            {"k": k, "n": len(values), "mean": statistics.fmean(values),
             "std": statistics.stdev(values) if len(values) > 1 else 0.0, "min": min(values), "max": max(values)}
        )  # fmt: skip
    return out


def learning_curve(
    job: JobConfig,
    *,
    output: str | Path,
    pool: str | Path | None = None,
    eval_data: str | Path | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    dev_k: int | None = None,
    metric: str | None = None,
    on_cell: Callable[[dict[str, Any], bool], None] | None = None,
    command: str | None = None,
) -> LearningCurve:
    """Train `job` for every K in `ks` and seed in `seeds` (see the module doc); returns the curve and writes
    `<output>/learning_curve.json` and `.png`. `pool` defaults to the job's train file, `eval_data` to its
    test file, else its dev file; `dev_k` (default K) dev examples per class are sampled for selection."""
    from promptft.evaluation.plots import plot_k_curve

    ks = sorted({int(k) for k in ks})
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    if not ks or min(ks) < 1 or not seeds:
        raise ConfigError(
            f"learning curve: give K values >= 1 (--k 4,8,16,32) and seeds (--seeds 13,21,42); got {ks}, {seeds}"
        )
    pool = pool or job.data.train
    eval_data = eval_data or job.data.test or job.data.dev
    if pool is None:
        raise ConfigError(
            "learning curve: no pool to sample from: give --pool FILE (or data.train in the config)"
        )
    if eval_data is None:
        raise ConfigError("learning curve: no evaluation file: give --eval FILE (or data.test in the config)")
    if job.model.finetune == "none":
        raise ConfigError(
            "learning curve: --finetune none trains nothing, so K cannot matter: choose lora, full, ..."
        )
    output = Path(output)
    check_writable(output, "learning-curve folder")
    spec = job.reader_options()
    pool_examples = read_split(pool, spec)
    eval_examples = read_split(eval_data, spec)
    if not pool_examples or not eval_examples:
        raise DataError(f"learning curve: {pool if not pool_examples else eval_data} holds no labelled rows")
    overlap = {(tuple(e.fields.items())) for e in pool_examples} & {
        tuple(e.fields.items()) for e in eval_examples
    }
    if overlap:
        raise DataError(
            f"learning curve: {len(overlap)} evaluation text(s) are also in the pool {pool}: a sampled training "
            "example could be tested on; evaluate on a held-out file (--eval)"
        )
    labels = label_names(pool_examples)
    cells = []
    for k in ks:
        for seed in seeds:
            path = cell_path(output, k, seed)
            if path.is_file():
                cell = json.loads(path.read_text())
                cells.append(cell)
                if on_cell:
                    on_cell(cell, True)
                continue
            cell = _train_cell(job, pool_examples, eval_examples, labels, k, seed, dev_k)
            cell["pool"], cell["eval_data"], cell["command"] = str(pool), str(eval_data), command
            _write_json(path, cell)
            cells.append(cell)
            if on_cell:
                on_cell(cell, False)
    metric = metric or next(iter(m for m in cells[0]["eval"] if m != "n"))
    if any(metric not in c["eval"] for c in cells):
        raise ConfigError(f"learning curve: metric {metric!r} is not among {sorted(cells[0]['eval'])}")
    summary = summarise(cells, metric, ks)
    plot = plot_k_curve(
        cells, summary, metric, output / PLOT_FILE, chance=1 / len(labels) if labels else None
    )
    curve = LearningCurve(metric, ks, seeds, cells, summary, str(output), str(plot), command)
    _write_json(output / CURVE_FILE, curve.to_dict())
    return curve


def _train_cell(job, pool, evaluation, labels, k: int, seed: int, dev_k: int | None) -> dict[str, Any]:
    from promptft.config import apply_overrides
    from promptft.recipes.train import build_classifier
    from promptft.training.trainer import Trainer

    try:
        train, dev = sample_k_shot(pool, k, seed, dev_k=dev_k)
    except DataError as err:
        raise DataError(f"learning curve at K={k}: {err}") from None
    cell_job = apply_overrides(job, {"train.seed": seed})
    clf = build_classifier(cell_job, labels)
    start = time.perf_counter()
    result = Trainer(clf, cell_job.train).train(train, dev or None)
    train_s = time.perf_counter() - start
    scores = clf.evaluate(evaluation, cell_job.train.eval_batch_size, cell_job.train.progress)
    return {
        "k": k,
        "seed": seed,
        "n_train": len(train),
        "n_dev": len(dev),
        "best_step": result.best_step,
        "best_dev": result.best_dev,
        "eval": scores,
        "train_time_s": round(train_s, 2),
    }


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
