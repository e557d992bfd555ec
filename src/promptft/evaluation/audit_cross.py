"""The audit's checks across splits (overlap, leakage, near duplicates) and of the prompt (truncation)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from promptft.data import Example
from promptft.errors import TemplateError
from promptft.evaluation.audit_checks import INFO, Ctx, E, Row, W, split_role
from promptft.evaluation.audit_report import RowRef, Severity
from promptft.evaluation.similarity import connected_groups, near_duplicate_pairs
from promptft.models.limits import position_limit
from promptft.prompts import PromptEncoder, Template


def _overlap_kind(a: str, b: str) -> tuple[str, Severity, str]:
    roles = {split_role(a), split_role(b)}
    if "test" in roles and roles != {"test"}:
        sev = W if "other" in roles else E
        return "leakage", sev, "remove these rows from the non-test split (or from the test set) and re-run"
    if roles == {"train", "dev"}:
        return "train_dev_overlap", W, "drop them from dev: a dev score on rows trained on selects badly"
    if "other" in roles:
        return "pool_overlap", INFO, "expected when a sample was drawn from this pool; nothing to fix"
    return "overlap", W, "check that these splits are meant to share rows"


def check_overlap(ctx: Ctx, ra: list[Row], rb: list[Row], a: str, b: str) -> None:
    index_b: dict[str, list[Row]] = defaultdict(list)
    for r in rb:
        if r.norm.replace("\x1f", "").strip():
            index_b[r.norm].append(r)
    groups, conflicts, n_exact, n_norm = [], [], 0, 0
    matched: dict[str, list[Row]] = defaultdict(list)
    for r in ra:
        if r.norm in index_b:
            matched[r.norm].append(r)
    for key, left in matched.items():
        right = index_b[key]
        refs = [r.ref for r in left + right]
        groups.append(refs)
        exact_right = {x.exact for x in right}
        for r in left:
            if r.exact in exact_right:
                n_exact += 1
            else:
                n_norm += 1
        if any(x.labels != y.labels for x in left for y in right):
            conflicts.append(refs)
    if groups:
        code, sev, fix = _overlap_kind(a, b)
        n_a = sum(len(v) for v in matched.values())
        ctx.add(
            code, sev, f"{n_a} of {len(ra)} {a} row(s) also occur in {b} ({n_exact} exactly, {n_norm} only "
            "after normalising case, spaces and punctuation)", fix, splits=(a, b), groups=groups,
            details={"rows_in_first": n_a, "of": len(ra), "exact": n_exact, "normalised_only": n_norm},
        )  # fmt: skip
    if conflicts:
        # A pool's own label noise is worth a look, but it does not break this sample: a warning.
        pool = "other" in {split_role(a), split_role(b)}
        ctx.add(
            "conflicting_labels", W if pool else E,
            f"{len(conflicts)} text(s) shared by {a} and {b} have different labels",
            "decide the right label for each text and make both splits agree", splits=(a, b),
            groups=conflicts,
        )  # fmt: skip


def check_near(ctx: Ctx, rows: dict[str, list[Row]], threshold: float, max_rows: int) -> None:
    flat = [r for rs in rows.values() for r in rs]
    if len(flat) > max_rows:
        ctx.add(
            "near_duplicates_skipped", INFO, f"{len(flat)} rows is more than max_near_rows={max_rows}: "
            "near duplicates were not searched", "raise max_near_rows (memory grows with the rows) or audit "
            "fewer rows at a time",
        )  # fmt: skip
        return
    pairs = [
        (i, j, s)
        for i, j, s in near_duplicate_pairs([r.norm.replace("\x1f", " ") for r in flat], threshold)
        if flat[i].norm != flat[j].norm  # same normalised text: already reported as a duplicate
    ]
    by_splits: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for i, j, _ in pairs:
        key = tuple(sorted((flat[i].ref.split, flat[j].ref.split)))
        by_splits[key].append((i, j))  # type: ignore[index]
    for (a, b), links in sorted(by_splits.items()):
        groups = [[flat[i].ref for i in g] for g in connected_groups(links, len(flat))]
        roles = {split_role(a), split_role(b)}
        if a != b and "test" in roles:
            code, sev = "near_leakage", W
            fix = "look at the pairs: if they are the same example reworded, drop it from the non-test split"
        else:
            code, sev = "near_duplicate", W if roles <= {"train", "dev"} else INFO
            fix = "look at the groups: keep one row of each if they are the same example reworded"
        ctx.add(
            code, sev, f"{len(links)} pair(s) of rows are near duplicates (character n-gram cosine >= "
            f"{threshold})", fix, splits=(a,) if a == b else (a, b), groups=groups,
            details={"pairs": len(links), "threshold": threshold},
        )  # fmt: skip


def check_template(
    ctx: Ctx, splits: Mapping[str, Sequence[Example]], tmpl: Template, tokenizer: Any, max_length: int | None
) -> None:
    encoder = _encoder(tmpl, tokenizer, max_length) if tokenizer is not None else None
    for name, examples in splits.items():
        missing, truncated = [], []
        for i, ex in enumerate(examples):
            ref = RowRef(name, i + 1)
            if any(f not in ex.fields for f in tmpl.fields):
                missing.append(ref)
                continue
            if encoder is None:
                continue
            try:
                if encoder.encode(dict(ex.fields)).truncated:
                    truncated.append(ref)
            except TemplateError as err:
                ctx.add("template_too_long", E, str(err), "see the message", splits=(name,), rows=[ref])
                return
        if missing:
            ctx.add(
                "missing_field", E, f"{len(missing)} row(s) lack a field the template {tmpl.text!r} uses "
                f"({list(tmpl.fields)})", "map a column to each template field (read_examples(fields=...))",
                splits=(name,), rows=missing,
            )  # fmt: skip
        if truncated:
            assert encoder is not None
            ctx.add(
                "truncated", W, f"{len(truncated)} row(s) will be cut to fit max_length={encoder.max_length} "
                "tokens (the end of the longest field is dropped)", "raise max_length if the model allows, "
                "shorten the template, or check the label does not depend on the dropped text",
                splits=(name,), rows=truncated, details={"max_length": encoder.max_length},
            )  # fmt: skip


def _encoder(tmpl: Template, tokenizer: Any, max_length: int | None) -> PromptEncoder:
    """The encoder the classifier would use: a mask slot for masked LMs, none (causal) otherwise."""
    if max_length is None:
        max_length = position_limit(None, tokenizer) or 512
    slot = getattr(tokenizer, "mask_token", None)
    return PromptEncoder(tokenizer, tmpl, slot_text=slot, max_length=max_length)
