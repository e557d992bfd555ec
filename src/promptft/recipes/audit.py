"""The audit recipe: read labelled files with a column spec and audit them before any training.

    from promptft.recipes.audit import audit_files
    report = audit_files("train.tsv", dev="dev.tsv", test="test.tsv", label_words={...})
    print(report.render_text()); raise SystemExit(report.exit_code)

Without a model only the data is checked; with one (`model=`, an alias or folder) its tokenizer also
checks which texts the template would truncate at `max_length`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from promptft.config import DataConfig
from promptft.data.splits import read_split
from promptft.errors import DataError
from promptft.evaluation.audit import audit
from promptft.evaluation.audit_report import AuditReport


def audit_files(
    train: str | Path,
    *,
    dev: str | Path | None = None,
    test: str | Path | None = None,
    reference: str | Path | None = None,
    columns: Mapping[str, Any] | None = None,
    template: str | None = None,
    label_words: Mapping[str, str | Sequence[str]] | None = None,
    model: str | None = None,
    max_length: int = 256,
    k: int | None = None,
) -> AuditReport:
    """Audit `train` (and `dev`, `test`) read with `columns` (a job's `data.*` keys); `reference` is a pool
    the sample was drawn from, compared against but not audited."""
    spec = DataConfig(**dict(columns or {})).reader_options()
    paths = {name: path for name, path in (("train", train), ("dev", dev), ("test", test)) if path}
    splits = {name: read_split(path, spec) for name, path in paths.items()}
    for name, examples in splits.items():
        if not examples:
            raise DataError(f"{paths[name]} ({name}) holds no rows: check the file and its label column")
    tokenizer = None
    if model is not None:
        tokenizer = _tokenizer(model)
    return audit(
        splits,
        template=template,
        label_words=label_words,
        tokenizer=tokenizer,
        max_length=max_length if tokenizer is not None else None,
        reference={"reference": read_split(reference, spec)} if reference else None,
        k=k,
    )


def _tokenizer(model: str):
    from transformers import AutoTokenizer

    from promptft.models.registry import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model(model))
