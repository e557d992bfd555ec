"""Where promptft finds shared data and keeps its model cache (both overridable by env vars)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def data_dir() -> Path | None:
    """The benchmark data folder: `$PROMPTFT_DATA`, else `../shared/data` if it exists, else None."""
    env = os.environ.get("PROMPTFT_DATA")
    if env:
        return Path(env).expanduser()
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):  # cwd, then the repo root
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def cache_dir() -> Path:
    """Where converted model checkpoints live: `$PROMPTFT_CACHE`, else the user's cache dir."""
    env = os.environ.get("PROMPTFT_CACHE")
    path = Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("promptft"))
    path.mkdir(parents=True, exist_ok=True)
    return path
