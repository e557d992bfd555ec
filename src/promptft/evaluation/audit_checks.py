"""The audit's checks of each split on its own: texts, duplicates and conflicts, balance, labels.

Each check adds findings to a `Ctx`; `promptft.evaluation.audit.audit` runs them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from promptft.evaluation.audit_report import Finding, RowRef, Severity, make_finding

E, W, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO
_ROLES = (("train", "train"), ("dev", "dev"), ("valid", "dev"), ("val", "dev"), ("test", "test"))


def split_role(name: str) -> str:
    """train / dev / test from a split's name (its last path component), else "other"."""
    base = re.split(r"[\\/]", name.strip().lower())[-1]
    return next((role for prefix, role in _ROLES if base.startswith(prefix)), "other")


@dataclass(frozen=True)
class Row:
    ref: RowRef
    exact: tuple[str, ...]  # the field values as they are
    norm: str  # normalised text of all fields
    text: str  # all fields joined, for lengths and similarity
    labels: tuple[str, ...]


class Ctx:
    def __init__(self, max_rows: int):
        self.max_rows = max_rows
        self.findings: list[Finding] = []

    def add(self, code: str, severity: Severity, message: str, fix: str, **kw: Any) -> None:
        self.findings.append(make_finding(code, severity, message, fix, max_rows=self.max_rows, **kw))


def check_texts(ctx: Ctx, name: str, rows: list[Row], min_words: int, max_words: int) -> None:
    empty = [r.ref for r in rows if not r.text.replace("\n", "").strip()]
    if empty:
        ctx.add(
            "empty_text", E, f"{len(empty)} row(s) have no text (empty or only spaces)",
            "drop these rows or fill in their text", splits=(name,), rows=empty,
        )  # fmt: skip
    blank = {r.ref for r in rows if not r.norm.replace("\x1f", "").strip()}
    marks = sorted(blank - set(empty))
    if marks:
        ctx.add(
            "punctuation_only", INFO, f"{len(marks)} row(s) hold only punctuation (e.g. an emoticon such as ':(')",
            "fine if the marks carry the label (emoticons); otherwise drop or fix these rows",
            splits=(name,), rows=marks,
        )  # fmt: skip
    short = [r.ref for r in rows if r.ref not in blank and len(r.text.split()) < min_words]
    if short:
        ctx.add(
            "short_text", INFO, f"{len(short)} row(s) have fewer than {min_words} words",
            "check they carry enough signal to label (fine for phrase-level data such as SST)",
            splits=(name,), rows=short,
        )  # fmt: skip
    long = [r.ref for r in rows if len(r.text.split()) > max_words]
    if long:
        ctx.add(
            "long_text", INFO, f"{len(long)} row(s) have more than {max_words} words",
            "pass template=, tokenizer= and max_length= to see which rows the prompt will truncate",
            splits=(name,), rows=long,
        )  # fmt: skip
    unlabelled = [r.ref for r in rows if not r.labels]
    if unlabelled:
        ctx.add(
            "missing_label", W, f"{len(unlabelled)} row(s) have no label",
            "label them or drop them; unlabelled rows cannot be trained or scored on",
            splits=(name,), rows=unlabelled,
        )  # fmt: skip


def check_duplicates(ctx: Ctx, name: str, rows: list[Row]) -> None:
    by_norm: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        if r.norm.replace("\x1f", "").strip():
            by_norm[r.norm].append(r)
    exact, normalised, conflicts = [], [], []
    for group in by_norm.values():
        if len(group) < 2:
            continue
        refs = [r.ref for r in group]
        if len({r.labels for r in group}) > 1:
            conflicts.append(refs)
        elif len({r.exact for r in group}) == 1:
            exact.append(refs)
        else:
            normalised.append(refs)
    role = split_role(name)
    if conflicts:
        ctx.add(
            "conflicting_labels", E, f"{len(conflicts)} text(s) occur more than once with different labels",
            "decide the right label for each text and keep one copy (or drop the text)",
            splits=(name,), groups=conflicts,
        )  # fmt: skip
    why = "over-weights these rows in training" if role == "train" else "counts these rows more than once"
    for code, groups, how in (
        ("duplicate", exact, "identical"),
        ("normalised_duplicate", normalised, "identical after normalising case, spaces and punctuation"),
    ):
        if groups:
            n_extra = sum(len(g) - 1 for g in groups)
            ctx.add(
                code, W, f"{len(groups)} text(s) appear more than once ({how}); {n_extra} extra copies: "
                f"that {why}", "keep one copy of each (e.g. pandas drop_duplicates on the text column)",
                splits=(name,), groups=groups,
            )  # fmt: skip


def check_balance(ctx: Ctx, name: str, st: dict[str, Any], k: int | None, ratio: float) -> None:
    counts: dict[str, int] = st["label_counts"]
    role = split_role(name)
    if k is not None and role == "train":
        off = {label: c for label, c in counts.items() if c != k}
        if off:
            ctx.add(
                "unbalanced_sample", W, f"a {k}-shot sample should hold {k} rows per label; these differ: "
                f"{off}", f"resample with promptft.data's k-shot sampler (k={k} per label)",
                splits=(name,), details={"k": k, "label_counts": counts},
            )  # fmt: skip
    elif role == "train" and counts and max(counts.values()) <= 64 and not st["balanced"]:
        ctx.add(
            "unbalanced_sample", W, f"this looks like a few-shot sample but its labels are not balanced: "
            f"{counts}", "sample the same number of rows per label (k-shot) unless the imbalance is intended",
            splits=(name,), details={"label_counts": counts},
        )  # fmt: skip
    if len(counts) >= 2 and min(counts.values()) > 0 and max(counts.values()) / min(counts.values()) > ratio:
        lo, hi = min(counts, key=counts.__getitem__), max(counts, key=counts.__getitem__)
        severity = W if role == "train" else INFO
        fix = (
            "rebalance (sample per label) or weight the loss by label"
            if role == "train"
            else "report macro-F1 beside accuracy: accuracy rewards predicting the majority label"
        )
        ctx.add(
            "class_imbalance", severity, f"label {hi!r} has {counts[hi]} rows, {counts[hi] / counts[lo]:.1f}x "
            f"label {lo!r} ({counts[lo]})", fix, splits=(name,), details={"label_counts": counts},
        )  # fmt: skip


def check_labels(
    ctx: Ctx,
    rows: dict[str, list[Row]],
    stats: dict[str, dict[str, Any]],
    words: Mapping[str, Any] | None,
    min_count: int,
    min_share: float,
) -> None:
    train = [n for n in rows if split_role(n) == "train"]
    seen_train = {label for n in train for label in stats[n]["label_counts"]}
    all_labels = {label for st in stats.values() for label in st["label_counts"]}
    for name in rows:
        if split_role(name) == "train" or not train:
            continue
        have = set(stats[name]["label_counts"])
        unseen = sorted(have - seen_train)
        if unseen:
            refs = [r.ref for r in rows[name] if set(r.labels) & set(unseen)]
            ctx.add(
                "unseen_label", E, f"label(s) {unseen} occur here but never in training",
                "add training examples for them, or fix the label map", splits=(name,), rows=refs,
            )  # fmt: skip
        absent = sorted(seen_train - have)
        if absent and rows[name]:
            ctx.add(
                "label_absent", W, f"training label(s) {absent} never occur here",
                "scores on this split say nothing about those labels: add examples of them",
                splits=(name,),
            )  # fmt: skip
    for name in train or list(rows):
        counts = stats[name]["label_counts"]
        top = max(counts.values(), default=0)
        rare = {label: c for label, c in counts.items() if c < min_count or c < min_share * top}
        if rare:
            refs = [r.ref for r in rows[name] if set(r.labels) & set(rare)]
            ctx.add(
                "rare_label", W, f"label(s) with fewer than {min_count} examples or under {min_share:.0%} "
                f"of the most common label's {top}: {rare}",
                "collect more examples of them, merge them into a related label, or drop them",
                splits=(name,), rows=refs, details={"counts": rare},
            )  # fmt: skip
    if words is None:
        return
    blank = sorted(label for label, w in words.items() if not _has_word(w))
    no_word = sorted((all_labels - set(words)) | (set(blank) & all_labels))
    if no_word:
        refs = [r.ref for rs in rows.values() for r in rs if set(r.labels) & set(no_word)]
        ctx.add(
            "label_without_word", E, f"label(s) {no_word} have no label word, so the prompt cannot score them",
            f"add a word for each, e.g. label_words={{{no_word[0]!r}: '...'}}, or fix the label map",
            rows=refs, details={"labels": no_word},
        )  # fmt: skip
    unused = sorted(set(words) - all_labels)
    if unused:
        ctx.add(
            "word_without_label", INFO, f"label word(s) for {unused} match no label in the data",
            "check the label map turns raw labels into these names (a typo leaves a label unscored)",
            details={"labels": unused},
        )  # fmt: skip


def _has_word(value: Any) -> bool:
    items = [value] if isinstance(value, str) else list(value or [])
    return any(isinstance(w, str) and w.strip() for w in items)
