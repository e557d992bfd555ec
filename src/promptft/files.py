"""Writing folders that matter (a saved classifier, a checkpoint, a run's best model) without losing the
previous copy: one mechanism for all of them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path


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
