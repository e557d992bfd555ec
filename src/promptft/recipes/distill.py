"""The distill recipe: label an unlabelled pool with a trained prompt model (or an ensemble of runs) and
train a small student on the soft labels (`promptft distill`).

The output folder holds:

* `soft_labels.jsonl`: a header line (teachers, pool, seed) then one line per pool example with the
  teachers' averaged log-probabilities. Written as it goes: an interrupted labelling resumes where it
  stopped, and a second student (other temperature, steps, encoder) reuses the labels.
* `student/`: the student's training run (the Trainer's run folder: `best/` is the student, a normal
  single-label or regression `HeadClassifier`; `promptft eval|predict OUTPUT/student` work on it).
* `distill.json`: what was done and the student's dev (and, with `test`, test) metrics.

Dev: a gold-labelled file (`dev=`), or else a held-out share of the pool (`dev_fraction`), scored as
agreement with the teachers. Never the test file.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from promptft.config import DataConfig, TrainConfig
from promptft.data import Example
from promptft.data.splits import read_split_rows
from promptft.errors import DataError, PromptFTError, RunDirError
from promptft.recipes.evaluate import check_known_labels, prepare, require_file
from promptft.recipes.run_dir import check_writable, write_json
from promptft.training.trainer import FINAL

log = logging.getLogger(__name__)

LABELS_FILE = "soft_labels.jsonl"
STUDENT_DIR = "student"
SUMMARY_FILE = "distill.json"
_CHUNK = 256  # examples labelled between two appends to the labels file


def read_pool(path: str | Path, spec: DataConfig, limit: int | None = None, seed: int = 42) -> list[Example]:
    """The unlabelled pool: non-empty, de-duplicated texts (a label column, if any, is ignored), and a
    random sample of `limit` of them (fixed by `seed`) when given."""
    require_file(path)
    rows = read_split_rows(path, spec.reader_options(), labelled=False)
    seen: set[tuple] = set()
    pool = []
    for row in rows:
        fields = row.example.fields
        key = tuple(sorted(fields.items()))
        if key in seen or not any(str(v).strip() for v in fields.values()):
            continue
        seen.add(key)
        pool.append(Example(dict(fields)))
    if not pool:
        raise DataError(f"{path}: the unlabelled pool has no non-empty texts: check the file and --field")
    if limit is not None and limit < len(pool):
        pool = random.Random(seed).sample(pool, limit)
    return pool


def _header(teachers: Sequence[str], pool: Sequence[Example], pool_path: str | Path, seed: int) -> dict:
    return {
        "teachers": [str(Path(t).resolve()) for t in teachers],
        "pool": str(Path(pool_path).resolve()),
        "n": len(pool),
        "seed": seed,
    }


def label_pool(
    teachers: Sequence[Any],
    pool: Sequence[Example],
    labels_path: Path,
    header: Mapping[str, Any],
    batch_size: int = 32,
    progress: bool = False,
) -> list[list[float]]:
    """The teachers' averaged rows for every pool example (see `deploy.distill.teacher_logits`), read
    from `labels_path` where an earlier attempt wrote them and appended there as they are computed."""
    from promptft.deploy.distill import teacher_logits

    done: list[list[float]] = []
    if labels_path.exists():
        lines = labels_path.read_text().splitlines()
        if not lines or json.loads(lines[0]) != dict(header):
            raise RunDirError(
                f"{labels_path} holds soft labels of other teachers or another pool: choose another "
                "--output, or delete that file to label again"
            )
        for line in lines[1:]:
            try:
                done.append(json.loads(line)["logits"])
            except (ValueError, KeyError):
                break  # a line cut by an interruption: label from there again
        if len(done) < len(pool):
            log.info("resuming the labelling: %d of %d pool examples already labelled", len(done), len(pool))
    labels_path.parent.mkdir(parents=True, exist_ok=True)
    # rewrite what is complete (drops a cut last line), then append chunk by chunk
    with labels_path.open("w") as f:
        f.write(json.dumps(dict(header)) + "\n")
        for ex, row in zip(pool, done, strict=False):
            f.write(json.dumps({"fields": ex.fields, "logits": row}) + "\n")
    start = time.perf_counter()
    todo = len(pool) - len(done)
    for i in range(len(done), len(pool), _CHUNK):
        chunk = list(pool[i : i + _CHUNK])
        rows = teacher_logits(teachers, chunk, batch_size, progress).tolist()
        with labels_path.open("a") as f:
            for ex, row in zip(chunk, rows, strict=True):
                f.write(json.dumps({"fields": ex.fields, "logits": row}) + "\n")
        done.extend(rows)
        rate = (len(done) - (len(pool) - todo)) / max(time.perf_counter() - start, 1e-9)
        log.info("labelled %d / %d pool examples (%.1f/s)", len(done), len(pool), rate)
    return done[: len(pool)]


def distill(
    run_dirs: str | Path | Sequence[str | Path],
    unlabeled: str | Path,
    output: str | Path,
    *,
    student: str = "minilm-l6",
    temperature: float = 2.0,
    train: TrainConfig | None = None,
    columns: Mapping[str, Any] | None = None,
    dev: str | Path | None = None,
    dev_fraction: float = 0.1,
    test: str | Path | None = None,
    limit: int | None = None,
    max_length: int = 128,
    batch_size: int = 32,
    device: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Distil the classifier(s) in `run_dirs` (run folders or saved classifiers; several = an ensemble)
    into a `student` trained on `unlabeled` with the teachers' soft labels. `columns` changes the column
    spec (default: the first teacher's job). `train`: the student's training settings (default 300 steps
    of batch 32 at lr 1e-4). Returns (and writes to OUTPUT/distill.json) the summary."""
    from promptft.classifiers import load_classifier
    from promptft.deploy.distill import build_student, soft_examples, student_objective, teacher_task
    from promptft.training import Trainer

    if isinstance(run_dirs, str | Path):
        run_dirs = [run_dirs]
    if not run_dirs:
        raise PromptFTError("give at least one teacher run folder")
    if not 0 <= dev_fraction < 1:
        raise PromptFTError(f"dev_fraction must be in [0, 1), got {dev_fraction}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise PromptFTError(f"temperature must be a positive number, got {temperature}: e.g. 2")
    output = Path(output)
    if (output / STUDENT_DIR / FINAL).exists():
        raise RunDirError(
            f"{output} already holds a finished distillation: promptft never overwrites one; choose another "
            f"--output (its soft labels can be reused by copying {output / LABELS_FILE} there)"
        )
    check_writable(output, "the output folder")
    cfg = train or TrainConfig(learning_rate=1e-4, batch_size=32, max_steps=300, eval_every=50)
    # Everything that can be checked before a model loads: folders, files, columns.
    prepared = [prepare(run_dir, device, **dict(columns or {})) for run_dir in run_dirs]
    folders = [p[0] for p in prepared]
    saved, spec = prepared[0][1], prepared[0][2]
    pool = read_pool(unlabeled, spec, limit, cfg.seed)
    dev_gold = None
    if dev is not None:
        require_file(dev)
        rows = read_split_rows(dev, {**spec.reader_options(), "task": saved["task"].reader_task()})
        check_known_labels(rows, saved["labels"], dev)
        dev_gold = [row.example for row in rows]

    teachers = [load_classifier(folder, device=device) for folder in folders]
    objective = teacher_task(teachers)
    started = time.perf_counter()
    header = _header([str(f) for f in folders], pool, unlabeled, cfg.seed)
    logits = label_pool(teachers, pool, output / LABELS_FILE, header, batch_size, progress)
    label_s = time.perf_counter() - started
    fields = teachers[0].fields
    del teachers  # free their memory before the student trains

    import torch

    labelled = soft_examples(pool, torch.tensor(logits), objective, temperature)
    if dev_gold is not None:
        train_set, dev_set = labelled, dev_gold
    else:
        shuffled = random.Random(cfg.seed).sample(labelled, len(labelled))
        n_dev = int(round(dev_fraction * len(shuffled)))
        train_set, dev_set = shuffled[n_dev:], shuffled[:n_dev]
    if not train_set:
        raise DataError("the pool is too small to hold out a dev share: give more texts or --dev-fraction 0")

    clf = build_student(objective, fields, student, max_length=max_length, device=device, seed=cfg.seed)
    trains_on, _ = student_objective(objective, temperature)
    result = Trainer(clf, cfg, run_dir=output / STUDENT_DIR, objective=trains_on).train(train_set, dev_set)
    summary: dict[str, Any] = {
        "teachers": [str(f) for f in folders],
        "unlabeled": str(unlabeled),
        "pool_size": len(pool),
        "train_size": len(train_set),
        "dev": str(dev) if dev is not None else f"held-out pool share ({len(dev_set)} examples, soft labels)",
        "student": student,
        "student_dir": str(output / STUDENT_DIR / "best"),
        "task": objective.name,
        "temperature": temperature if objective.name != "regression" else None,
        "labelling_s": round(label_s, 1),
        "train": cfg.to_dict(),
        "best_step": result.best_step,
        "best_dev": result.best_dev,
        "train_time_s": result.train_time_s,
    }
    if test is not None:
        from promptft.recipes.evaluate import evaluate

        summary["test"] = evaluate(output / STUDENT_DIR, test, columns=spec.to_dict(), device=device)
    write_json(output / SUMMARY_FILE, summary)
    return summary
