"""The models recipe: describe the models at hand (offline aliases, converted checkpoints in the cache,
and given folders) without loading them: kind, parameters, size on disk, estimated training memory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from promptft.search.models import ModelInfo, list_models


def models(paths: Sequence[str | Path] = ()) -> list[ModelInfo]:
    return list_models(list(paths))
