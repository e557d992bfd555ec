"""Where the benchmark's cells live and what each is scored on: cell paths, atomic cell writes, the test
set of each task (its file, a `--test` override, or the dev split) and the fixed `--max-test` subset."""

from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptft.bench.tasks import DEV, TaskSpec, TaskTable, safe_name, split_path
from promptft.data import Example
from promptft.errors import ConfigError, DataError

FEWSHOT_DIR = "fewshot"
TEST_SUBSET_SEED = 0  # --max-test draws the same subset for every method and seed


@dataclass
class TestSet:
    label: str  # what the report shows: a file (relative to the data folder, or as given) or "dev"
    path: Path | None  # None: the seed's dev split
    overridden: bool = False


def model_label(name: str) -> str:
    """The results folder name of a model: the alias, or a local folder's name, or the hub id made safe."""
    path = Path(name).expanduser()
    if path.exists():
        return safe_name(path.resolve().name)
    return safe_name(name)


def cell_path(results_dir: str | Path, model: str, task: str, method: str, seed: int) -> Path:
    return Path(results_dir) / FEWSHOT_DIR / model / task / method / f"seed{seed}.json"


def read_cell(path: Path) -> dict[str, Any] | None:
    """A finished cell's record, or None when the file is missing or unreadable (then it is redone)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and ("accuracy" in data or "score" in data) else None


def cell_score(cell: dict[str, Any]) -> float:
    """A cell's headline number: its task's metric (`score`; accuracy in cells written before issue 10)."""
    return cell["score"] if "score" in cell else cell["accuracy"]


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def subset(examples: list[Example], n: int | None) -> list[Example]:
    """The first-come `n` of a fixed random sample (seed 0), in file order: the same for every cell."""
    if n is None or n >= len(examples):
        return examples
    keep = sorted(random.Random(TEST_SUBSET_SEED).sample(range(len(examples)), n))
    return [examples[i] for i in keep]


def resolve_test_sets(
    table: TaskTable,
    tasks: Sequence[TaskSpec],
    overrides: dict[str, str],
    data_dir: Path,
    model: str,
) -> dict[str, TestSet]:
    chosen = {t.key for t in tasks}
    resolved_overrides: dict[str, str] = {}
    for name, value in overrides.items():
        task = table.find(name)
        if task.key not in chosen:
            raise ConfigError(
                f"--test names task {name!r}, which this run does not include: add it to --tasks or drop --test"
            )
        resolved_overrides[task.key] = value
    out: dict[str, TestSet] = {}
    for task in tasks:
        if task.key in resolved_overrides:
            given = resolved_overrides[task.key]
            path = Path(given).expanduser()
            if not path.is_absolute() and not path.exists() and (data_dir / path).exists():
                path = data_dir / path
            if not path.is_file():
                raise DataError(
                    f"--test {task.key}={given}: file not found (looked in the current folder and in {data_dir})"
                )
            out[task.key] = TestSet(given, path.resolve(), overridden=True)
        elif task.test is None or model in task.dev_only_for or model_label(model) in task.dev_only_for:
            out[task.key] = TestSet(DEV, None)
        else:
            path = data_dir / task.test
            if not path.is_file():
                raise DataError(
                    f"test file of {task.name} not found: {path}. Check the data folder (PROMPTFT_DATA), "
                    f"or score another copy with --test {task.key}=PATH"
                )
            out[task.key] = TestSet(task.test, path)
    return out


def _check_split_files(tasks: Sequence[TaskSpec], seeds: Sequence[int], k: int, data_dir: Path) -> None:
    missing = [
        str(split_path(t, split, s, k, data_dir))
        for t in tasks
        for s in seeds
        for split in ("train", "dev")
        if not split_path(t, split, s, k, data_dir).is_file()
    ]
    if missing:
        raise DataError(
            f"{len(missing)} few-shot split file(s) missing, e.g. {missing[0]}: check the data folder "
            f"({data_dir}; set PROMPTFT_DATA) and the seeds (--seeds)"
        )
