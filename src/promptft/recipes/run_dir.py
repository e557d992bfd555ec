"""The run folder of a `train` job: what it holds, the lock while a run uses it, resume checks, writes.

A fresh run folder starts empty; the Trainer fills it (train_config.json, metrics.jsonl, checkpoint/,
best/, final_metrics.json) and the train recipe adds job.yaml and test_metrics.json.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from promptft.config import JobConfig
from promptft.errors import ModelError, PromptFTError, RunDirError
from promptft.training.checkpoint import CHECKPOINT, has_checkpoint
from promptft.training.trainer import FINAL

JOB_FILE = "job.yaml"
TEST_FILE = "test_metrics.json"
BEST_DIR = "best"


def check_writable(path: str | Path | None, what: str) -> None:
    """Fail before any work when `path` (a file or folder to create, or to write into) cannot be written:
    the nearest existing folder on its way must be a writable folder, and an existing `path` writable."""
    path = Path(str(path))
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() and existing != path:
        raise PromptFTError(f"cannot create {what} {path}: {existing} is a file, not a folder")
    mode = os.W_OK | os.X_OK if existing.is_dir() else os.W_OK
    if not os.access(existing, mode):
        raise PromptFTError(
            f"cannot write {what} {path}: {existing} is read-only (permission denied); choose a place you "
            "can write to"
        )


def check_new_file(path: str | Path, what: str, overwrite: bool = False, option: str = "--output") -> None:
    """Fail before any work when writing `what` to `path` would replace a file the user already has (unless
    `overwrite`), or could not be done at all."""
    path = Path(path)
    if path.is_dir():
        raise PromptFTError(f"{option} {path} is a folder: give a file name for {what}")
    if path.exists() and not overwrite:
        raise PromptFTError(
            f"{path} already exists: choose another {option}, or pass --overwrite to replace it"
        )
    check_writable(path, what)


# Files a run folder may hold before its first checkpoint (an attempt interrupted early): safe to start over.
_FRESH_FILES = {"train_config.json", "metrics.jsonl", "run.json", JOB_FILE}


def run_dir_state(run_dir: str | Path) -> str:
    """What `run_job` finds in a run folder: "new" (absent, empty, or an attempt stopped before its first
    checkpoint) or "resume" (a checkpoint); RunDirError for a finished run or a folder of other files."""
    run_dir = Path(run_dir)
    if (run_dir / FINAL).exists():
        raise RunDirError(
            f"{run_dir} already holds a finished run ({FINAL}); promptft never overwrites one: choose "
            f"another --output. To score it on a test file: promptft eval {run_dir / BEST_DIR} --data TEST"
        )
    if has_checkpoint(run_dir):
        return "resume"
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"--output {run_dir} is a file: give a folder for the run")
    if run_dir.exists():
        others = sorted(p.name for p in run_dir.iterdir() if p.name not in _FRESH_FILES)
        if others:
            raise RunDirError(
                f"{run_dir} is not empty and holds no promptft run to resume ({', '.join(others[:3])}): "
                "choose an empty or new --output folder"
            )
    return "new"


def lock_path(run_dir: str | Path) -> Path:
    """The lock file of a run folder: beside it (`runs/.my-run.lock`), since a fresh run folder must start
    empty."""
    run_dir = Path(run_dir)
    return run_dir.parent / f".{run_dir.name}.lock"


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on a run folder while one `train` uses it; a second one gets RunDirError.

    `fcntl.flock` is released by the kernel when its process dies, so a lock file left by a killed run
    (with a dead pid in it) does not block. Where fcntl is missing (Windows) runs are not locked.
    """
    from promptft.training.distributed import is_main_process

    if not is_main_process():  # under `accelerate launch`, one lock for the whole job: the main process's
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux/macOS
        yield
        return
    path = lock_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "?"
            handle.close()
            raise RunDirError(
                f"{run_dir} is in use by another `promptft train` (pid {pid}): wait for it to finish, or "
                "choose another --output"
            ) from None
        if _same_file(handle, path):
            break
        handle.close()  # the holder removed the file while we opened it: lock the new one
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)  # before unlocking, so nobody locks a file that is going away
        handle.close()


def _same_file(handle: Any, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
    except FileNotFoundError:
        return False


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _diff(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in dict.fromkeys([*a, *b]) for d in _diff(a.get(k), b.get(k), _join(where, str(k)))]
    return [] if a == b else [where]


def _comparable(job: JobConfig) -> dict[str, Any]:
    d = job.to_dict()
    d.pop("output")
    d["train"].pop("progress")  # display only
    if d["model"]["finetune"] != "lora":
        d["model"].pop("lora")  # not used, and not written to job.yaml
    return d


def check_resume(job: JobConfig, run_dir: str | Path) -> None:
    """Refuse to resume a run whose saved job differs from `job` (except the output path and progress)."""
    saved_path = Path(run_dir) / JOB_FILE
    if not saved_path.exists():
        return
    saved = JobConfig.from_yaml(saved_path)
    changed = _diff(_comparable(saved), _comparable(job))
    if changed:
        raise RunDirError(
            f"{run_dir} holds an unfinished run with other settings ({', '.join(changed)}): resume it "
            f"unchanged with `promptft train --config {saved_path}`, or choose another --output"
        )


def write_job(job: JobConfig) -> None:
    path = Path(str(job.output)) / JOB_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        job.to_yaml(path)


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def run_of(path: Path) -> Path:
    """The run folder of `path`: its parent when `path` is a run's best/ folder, else `path` itself."""
    return path.parent if path.name == BEST_DIR else path


def classifier_dir(path: str | Path) -> Path:
    """A classifier folder, accepting a run folder for its best/ model; errors for a missing folder and for
    a run that has not finished (it has no best/ yet)."""
    from promptft.classifiers import CONFIG_FILE

    path = Path(path)
    if (path / CONFIG_FILE).exists():
        return path
    if (path / BEST_DIR / CONFIG_FILE).exists():
        return path / BEST_DIR
    run = run_of(path)
    if any((run / name).exists() for name in (JOB_FILE, CHECKPOINT, "train_config.json")):
        return_to = f"promptft train --config {run / JOB_FILE}" if (run / JOB_FILE).exists() else "train"
        raise RunDirError(
            f"the run in {run} has not finished, so it has no model yet: rerun `{return_to}` to resume it; "
            f"once it finishes, its model is {run / BEST_DIR}"
        )
    if not path.exists():
        raise ModelError(f"no such folder: {path} (looked at {path.resolve()}): point at a run or its best/")
    return path
