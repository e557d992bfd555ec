"""The language-model bias recipe: score offline models on CrowS-Pairs (per bias type).

from promptft.recipes.bias import crows_pairs
result = crows_pairs("smollm2-135m")          # the shared data's crows_pairs_anonymized.csv
print(result.render_text())
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from promptft.errors import DataError
from promptft.evaluation.crows_pairs import (
    CROWS_FILE,
    CrowsPairsResult,
    read_crows_pairs,
    score_crows_pairs,
)
from promptft.settings import data_dir


def crows_pairs_path(path: str | Path | None = None) -> Path:
    """`path`, else the shared data's CrowS-Pairs file (`$PROMPTFT_DATA`, default ../shared/data)."""
    if path is not None:
        return Path(path)
    root = data_dir()
    if root is None:
        raise DataError(
            "no shared data folder for CrowS-Pairs: pass --data crows_pairs_anonymized.csv or set PROMPTFT_DATA"
        )
    return root / CROWS_FILE


def crows_pairs(
    model: str,
    *,
    data: str | Path | None = None,
    bias_types: Sequence[str] | None = None,
    limit: int | None = None,
    batch_size: int = 16,
    device: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> CrowsPairsResult:
    """Load `model` (alias, folder or hub id) and score it on CrowS-Pairs; `bias_types` keeps only those
    types, `limit` the first N pairs (a quick look; the committed numbers use all)."""
    from promptft.models.loading import load_backbone

    pairs = read_crows_pairs(crows_pairs_path(data))
    if bias_types:
        known = sorted({p.bias_type for p in pairs})
        unknown = sorted(set(bias_types) - set(known))
        if unknown:
            raise DataError(f"unknown bias type(s) {unknown}: choose from {known}")
        pairs = [p for p in pairs if p.bias_type in set(bias_types)]
    if limit is not None:
        pairs = pairs[:limit]
    backbone = load_backbone(model, device=device)
    return score_crows_pairs(
        backbone.model,
        backbone.tokenizer,
        pairs,
        kind=backbone.kind,
        name=model,
        batch_size=batch_size,
        on_progress=on_progress,
    )
