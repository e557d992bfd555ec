"""Writing folders that matter (a saved classifier, a checkpoint, a run's best model) without losing the
previous copy: one mechanism for all of them; and reading the small JSON files a run leaves."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_dir_atomically(target: Path, build: Callable[[Path], None]) -> None:
    """`build(tmp)` fills `<target>.tmp`, which then replaces `target`; the old `target` (moved to
    `<target>.old` meanwhile) is removed only once the new one is in place. A crash inside `build` leaves
    `target` untouched and no temporary folder; a crash between the two renames leaves `<target>.old`,
    which readers such as `training.checkpoint.checkpoint_dir` fall back to."""
    target = Path(target)
    tmp = target.with_name(target.name + ".tmp")
    old = target.with_name(target.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        build(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object file's contents; {} when it is missing, unreadable or not an object (for optional
    notes a run folder may hold, such as its final metrics)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
