"""The prune recipe: structured pruning of a trained classifier to a target sparsity, importance measured
on dev, then a short recovery fine-tune (`promptft prune`).

The output folder is a training run (the Trainer's files; `best/` is the pruned, recovered classifier,
saved as a whole smaller model) plus `prune.json` (sizes before and after, the recovery's dev scores and,
with `test`, the test scores). Recovery data: a labelled training file (`train=`), or the soft labels of
a distillation (`soft_labels=`, a `promptft distill` folder's soft_labels.jsonl: the unpruned teacher's
own labels, so recovery is distillation from the model before pruning). `recover=False` saves the
pruned model as it is.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from promptft.config import TrainConfig
from promptft.data import Example
from promptft.data.splits import read_split_rows
from promptft.errors import DataError, PromptFTError, RunDirError
from promptft.recipes.evaluate import check_known_labels, prepare, refuse_ensemble, require_file
from promptft.recipes.run_dir import check_writable, write_json
from promptft.training.trainer import BEST, FINAL

log = logging.getLogger(__name__)

SUMMARY_FILE = "prune.json"


def read_soft_labels(path: str | Path, temperature: float, limit: int | None = None) -> list[Example]:
    """Examples labelled with a distillation's soft labels (soft_labels.jsonl) at `temperature`."""
    import torch

    path = Path(path)
    if path.is_dir():
        path = path / "soft_labels.jsonl"
    require_file(path)
    lines = path.read_text().splitlines()[1:]
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except ValueError:
            break  # a cut last line (an interrupted labelling)
    if not rows:
        raise DataError(f"{path} holds no soft labels: run `promptft distill` to write them")
    rows = rows[:limit] if limit else rows
    probs = torch.softmax(torch.tensor([r["logits"] for r in rows]) / temperature, dim=-1).tolist()
    return [Example(r["fields"], tuple(p)) for r, p in zip(rows, probs, strict=True)]


def default_recovery(**changes: Any) -> TrainConfig:
    """Full fine-tuning of the pruned model, 40 steps of 8 at 2e-5. A checkpoint of a whole model (weights
    and AdamW state) is ~12 bytes per parameter, so only one, at the end (a short run restarts instead)."""
    values = {"learning_rate": 2e-5, "batch_size": 8, "max_steps": 40, "eval_every": 10, **changes}
    values.setdefault("checkpoint_every", values["max_steps"])
    return TrainConfig.parse(values, "recovery")


def _labelled(path: str | Path, saved: Mapping[str, Any], spec) -> list[Example]:
    require_file(path)
    rows = read_split_rows(path, {**spec.reader_options(), "task": saved["task"].reader_task()})
    check_known_labels(rows, saved["labels"], path)
    return [row.example for row in rows]


def prune(
    run_dir: str | Path,
    output: str | Path,
    *,
    dev: str | Path,
    sparsity: float = 0.3,
    head_sparsity: float | None = None,
    train: str | Path | None = None,
    soft_labels: str | Path | None = None,
    temperature: float = 2.0,
    soft_limit: int | None = None,
    recovery: TrainConfig | None = None,
    recover: bool = True,
    test: str | Path | None = None,
    columns: Mapping[str, Any] | None = None,
    batch_size: int = 8,
    multiple_of: int = 8,
    device: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Prune the classifier in `run_dir` (importance on the labelled `dev` file), fine-tune it briefly on
    `train` or `soft_labels` (dev picks the best step; the untrained pruned model competes), save it in
    OUTPUT/best and return (and write to OUTPUT/prune.json) the summary."""
    from promptft.classifiers import load_classifier
    from promptft.deploy.prune import prune_classifier
    from promptft.objectives import SoftLabel
    from promptft.training import Trainer

    output = Path(output)
    if (output / FINAL).exists() or (output / SUMMARY_FILE).exists():
        raise RunDirError(
            f"{output} already holds a pruned model: promptft never overwrites one; choose another --output"
        )
    if recover and train is None and soft_labels is None:
        raise PromptFTError(
            "the recovery fine-tune needs data: give --train (labelled) or --soft-labels (a distill folder), "
            "or --no-recover to keep the pruned model as it is"
        )
    if train is not None and soft_labels is not None:
        raise PromptFTError("give either --train or --soft-labels for the recovery, not both")
    check_writable(output, "the output folder")
    folder, saved, spec = prepare(run_dir, device, **dict(columns or {}))
    dev_set = _labelled(dev, saved, spec)
    train_set = None
    if recover:
        train_set = (
            _labelled(train, saved, spec)
            if train is not None
            else read_soft_labels(soft_labels, temperature, soft_limit)  # type: ignore[arg-type]
        )
    refuse_ensemble(folder, "pruning")
    clf = load_classifier(folder, device=device)
    started = time.perf_counter()
    report = prune_classifier(
        clf, dev_set, sparsity, head_sparsity=head_sparsity, batch_size=batch_size, multiple_of=multiple_of
    )
    prune_s = time.perf_counter() - started
    pruned_dev = clf.evaluate(dev_set, batch_size=32)
    summary: dict[str, Any] = {
        "model": str(folder),
        "sparsity": sparsity,
        "head_sparsity": report.head_sparsity,
        "prune": report.to_dict(),
        "prune_s": round(prune_s, 1),
        "dev": str(dev),
        "dev_after_pruning": pruned_dev,
    }
    if recover:
        cfg = recovery or default_recovery()
        objective = SoftLabel(clf.labels, temperature) if train is None else None
        result = Trainer(clf, cfg, run_dir=output, objective=objective).train(train_set, dev_set)
        summary.update(
            recovery={
                "data": str(train if train is not None else soft_labels),
                "examples": len(train_set or []),
                "train": cfg.to_dict(),
                "best_step": result.best_step,
                "best_dev": result.best_dev,
                "train_time_s": result.train_time_s,
            }
        )
    else:
        clf.save_pretrained(output / BEST)
    summary["model_dir"] = str(output / BEST)
    if test is not None:
        summary["test"] = _labelled_metrics(clf, test, saved, spec)
    write_json(output / SUMMARY_FILE, summary)
    return summary


def _labelled_metrics(clf, path, saved, spec) -> dict[str, float]:
    return clf.evaluate(_labelled(path, saved, spec), batch_size=32)
