"""Audit labelled data before training on it: balance, duplicates, conflicts, leakage, lengths, labels.

`audit({"train": train, "dev": dev, "test": test}, label_words=..., template=..., tokenizer=...)` returns
an `AuditReport`. A split's *role* comes from its name (train*, dev*/val*, test*, else "other"): overlap
between training data and a test set is an error (the test score is inflated), between train and dev a
warning (model selection saw the training rows), and with an "other" split (a pool the sample was drawn
from) a fact. `reference=` splits are only compared against (leakage, provenance), never audited inside:
pass the large pool a k-shot sample came from there.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

from promptft.data import Example, label_names
from promptft.errors import DataError
from promptft.evaluation.audit_checks import (
    Ctx,
    Row,
    check_balance,
    check_duplicates,
    check_labels,
    check_texts,
)
from promptft.evaluation.audit_cross import check_near, check_overlap, check_template
from promptft.evaluation.audit_report import AuditReport, RowRef
from promptft.evaluation.similarity import normalise
from promptft.prompts import Template, Verbalizer


def audit(
    splits: Mapping[str, Sequence[Example]],
    *,
    template: str | Template | None = None,
    label_words: Mapping[str, str | Sequence[str]] | Verbalizer | None = None,
    tokenizer: Any = None,
    max_length: int | None = None,
    reference: Mapping[str, Sequence[Example]] | None = None,
    k: int | None = None,
    multi_label: bool = False,
    label_sep: str = ",",
    near_duplicate_threshold: float | None = 0.9,
    max_near_rows: int = 20_000,
    min_words: int = 2,
    max_words: int = 256,
    imbalance_ratio: float = 3.0,
    min_label_count: int = 3,
    min_label_share: float = 0.02,
    max_rows: int = 20,
) -> AuditReport:
    """Audit `splits` (name -> examples) and return every finding with its rows and a suggested fix.

    `k`: the intended examples per label of a few-shot training sample (train splits are checked).
    A label is too rare to learn with fewer than `min_label_count` training rows, or fewer than
    `min_label_share` times the most common label's (the long tail of multi-label data).
    `multi_label`: labels are `label_sep`-joined lists ("2,7"). `near_duplicate_threshold`: the character
    n-gram TF-IDF cosine from which two texts count as near duplicates (None: skip). `template` with
    `tokenizer` and `max_length`: report the rows the prompt encoder would truncate.
    """
    if not splits:
        raise DataError('audit() needs at least one split, e.g. audit({"train": examples})')
    reference = dict(reference or {})
    clash = set(splits) & set(reference)
    if clash:
        raise DataError(f"split names {sorted(clash)} are both audited and reference splits: rename one")
    tmpl = Template(template) if isinstance(template, str) else template
    words = label_words.label_words if isinstance(label_words, Verbalizer) else label_words
    rows = {name: _rows(name, exs, multi_label, label_sep) for name, exs in splits.items()}
    ref_rows = {name: _rows(name, exs, multi_label, label_sep) for name, exs in reference.items()}
    ctx = Ctx(max_rows)

    stats = {name: _stats(rs) for name, rs in rows.items()}
    for name, rs in rows.items():
        check_texts(ctx, name, rs, min_words, max_words)
        check_duplicates(ctx, name, rs)
        check_balance(ctx, name, stats[name], k, imbalance_ratio)
    check_labels(ctx, rows, stats, words, min_label_count, min_label_share)
    everything = {**rows, **ref_rows}
    for a, b in combinations(everything, 2):
        if a in rows or b in rows:  # reference splits are compared with audited ones, not each other
            check_overlap(ctx, everything[a], everything[b], a, b)
    if near_duplicate_threshold is not None:
        check_near(ctx, rows, near_duplicate_threshold, max_near_rows)
    if tmpl is not None:
        check_template(ctx, splits, tmpl, tokenizer, max_length)
    settings = {
        "k": k,
        "multi_label": multi_label,
        "near_duplicate_threshold": near_duplicate_threshold,
        "min_words": min_words,
        "max_words": max_words,
        "imbalance_ratio": imbalance_ratio,
        "min_label_count": min_label_count,
        "min_label_share": min_label_share,
        "max_length": max_length,
        "template": tmpl.text if tmpl else None,
        "reference": {name: len(rs) for name, rs in ref_rows.items()},
    }
    return AuditReport(ctx.findings, stats, settings)


def _labels_of(ex: Example, multi_label: bool, sep: str) -> tuple[str, ...]:
    if ex.label is None:
        return ()
    if multi_label:
        return tuple(sorted({p.strip() for p in str(ex.label).split(sep) if p.strip()}))
    return (str(ex.label),)


def _rows(name: str, examples: Sequence[Example], multi_label: bool, sep: str) -> list[Row]:
    out = []
    for i, ex in enumerate(examples):
        values = tuple(str(v) for v in ex.fields.values())
        text = " \n ".join(values)
        out.append(
            Row(
                RowRef(name, i + 1),
                values,
                "\x1f".join(normalise(v) for v in values),
                text,
                _labels_of(ex, multi_label, sep),
            )
        )
    return out


def _stats(rows: list[Row]) -> dict[str, Any]:
    counts = Counter(label for r in rows for label in r.labels)
    order = label_names(Example({}, label) for label in counts)
    words = [len(r.text.split()) for r in rows] or [0]
    return {
        "n": len(rows),
        "label_counts": {label: counts[label] for label in order},
        "balanced": len(set(counts.values())) <= 1,
        "words": {"min": min(words), "median": statistics.median(words), "max": max(words)},
        "unlabelled": sum(1 for r in rows if not r.labels),
    }
