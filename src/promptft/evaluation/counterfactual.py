"""Counterfactual identity-term swaps: does a prediction change when only a person's gender, name, religion or
nationality changes?

Word lists are editable text files shipped in `promptft/evaluation/fairness_terms/` (gender, names, religion,
nationality; the format is described at the top of each). Every text that holds terms of a term group is
rewritten once per *other* group of that term group (all its terms swapped together, keeping their case),
then the original and the rewrite are scored. Reported: how often the predicted label flips, the mean
absolute change in the probability of the positive label, the same per term group and direction, and the
rewrites that moved most.

    from promptft.evaluation.counterfactual import counterfactual_test, load_term_groups
    report = counterfactual_test(clf, texts, positive_label="positive")
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from promptft.errors import ConfigError, DataError

TERM_GROUPS = ("gender", "names", "religion", "nationality")
# Thresholds above which the report is flagged; a classifier that ignores identity terms scores 0 on both.
MAX_FLIP_RATE = 0.01
MAX_MEAN_ABS_CHANGE = 0.02
SHOWN_DIRECTIONS = 6  # directions per term group in the markdown summary


@dataclass(frozen=True)
class TermGroup:
    """Interchangeable terms: `rows[i][g]` is term i in group `groups[g]` (lower case)."""

    name: str
    groups: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    linked: str | None = None  # another term group rewritten along with this one (same group order)

    def lookup(self) -> dict[str, tuple[int, int]]:
        """term -> (row, group) for its first occurrence."""
        out: dict[str, tuple[int, int]] = {}
        for i, row in enumerate(self.rows):
            for g, term in enumerate(row):
                out.setdefault(term, (i, g))
        return out

    def pattern(self) -> re.Pattern[str]:
        terms = sorted(self.lookup(), key=len, reverse=True)  # longest first: "mexico city" before "mexico"
        return re.compile(
            r"(?<![\w'])(" + "|".join(re.escape(t) for t in terms) + r")(?![\w])", re.IGNORECASE
        )


def parse_term_file(text: str, name: str) -> TermGroup:
    """A term file: `#` comments, a `groups: a | b | ...` line, an optional `linked: <term group>` line,
    then one ` | `-separated row per term."""
    groups: tuple[str, ...] | None = None
    linked: str | None = None
    rows = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if line.lower().startswith("groups:"):
            groups = tuple(g.strip() for g in line.split(":", 1)[1].split("|"))
            continue
        if line.lower().startswith("linked:"):
            linked = line.split(":", 1)[1].strip() or None
            continue
        cells = tuple(c.strip().lower() for c in line.split("|"))
        if groups is None:
            raise ConfigError(f"term file {name!r}, line {n}: start with a 'groups: a | b' line")
        if len(cells) != len(groups) or not all(cells):
            raise ConfigError(
                f"term file {name!r}, line {n}: {len(cells)} terms for {len(groups)} groups {list(groups)}: "
                "give one non-empty term per group, separated by ' | '"
            )
        rows.append(cells)
    if groups is None or len(groups) < 2 or not rows:
        raise ConfigError(f"term file {name!r} needs a 'groups:' line with 2+ groups and at least one row")
    return TermGroup(name, groups, tuple(rows), linked)


def load_term_groups(
    names: Iterable[str] = TERM_GROUPS, folder: str | Path | None = None
) -> dict[str, TermGroup]:
    """The named term groups from `folder` (default: the lists shipped with promptft), `<name>.txt` each."""
    out = {}
    for name in names:
        if folder is not None:
            path = Path(folder) / f"{name}.txt"
            if not path.is_file():
                raise ConfigError(f"no term list {path}: create it (see promptft's fairness_terms/*.txt)")
            text = path.read_text(encoding="utf-8")
        else:
            file = resources.files("promptft.evaluation") / "fairness_terms" / f"{name}.txt"
            if not file.is_file():
                raise ConfigError(f"unknown term group {name!r}: choose from {list(TERM_GROUPS)}")
            text = file.read_text(encoding="utf-8")
        out[name] = parse_term_file(text, name)
    return out


def _match_case(source: str, target: str) -> str:
    if source.isupper() and len(source) > 1:
        return target.upper()
    if source[:1].isupper():
        return target[:1].upper() + target[1:]
    return target


def find_groups(text: str, group: TermGroup) -> set[int]:
    """The groups (indices) whose terms occur in `text`."""
    table = group.lookup()
    return {table[m.group(0).lower()][1] for m in group.pattern().finditer(text)}


# After these (or punctuation, or the end) "her" is an object ("him"), else a possessive ("his").
_OBJECT_NEXT = re.compile(
    r"\s*($|[^\w\s]|(and|or|but|to|in|at|on|with|for|from|that|as|the|a|an|about|again|too|up|off|out|"
    r"back|down|so|if|when|because|into|over|after|before|by)\b)",
    re.IGNORECASE,
)


def swap_terms(text: str, group: TermGroup, target: int) -> str:
    """`text` with every term of `group` replaced by the same row's term of group `target`."""
    table = group.lookup()
    index = {term: row for row, terms in enumerate(group.rows) for term in terms}
    object_row = index.get("him")

    def repl(m: re.Match[str]) -> str:
        word = m.group(0).lower()
        row, _ = table[word]
        if word == "her" and object_row is not None and _OBJECT_NEXT.match(text, m.end()):
            row = object_row
        return _match_case(m.group(0), group.rows[row][target])

    return group.pattern().sub(repl, text)


def counterfactuals(texts: Sequence[str], term_groups: Mapping[str, TermGroup]) -> list[dict[str, Any]]:
    """One record per rewrite: row, term group, from group(s), to group, original and rewritten text."""
    out = []
    for row, text in enumerate(texts):
        for name, group in term_groups.items():
            present = find_groups(text, group)
            if not present:
                continue
            source = "+".join(group.groups[g] for g in sorted(present))
            linked = None
            if group.linked:  # the shipped list when the caller did not pass it
                linked = term_groups.get(group.linked) or load_term_groups([group.linked])[group.linked]
            if linked is not None and len(linked.groups) != len(group.groups):
                raise ConfigError(
                    f"term group {name!r} is linked to {group.linked!r}, which has {len(linked.groups)} groups, "
                    f"not {len(group.groups)}: link groups that line up one to one"
                )
            for target in range(len(group.groups)):
                if present == {target}:
                    continue
                new = swap_terms(text, group, target)
                if linked is not None:
                    new = swap_terms(new, linked, target)
                if new != text:
                    out.append(
                        {"row": row, "term_group": name, "from": source, "to": group.groups[target],
                         "text": text, "counterfactual": new}
                    )  # fmt: skip
    return out


@dataclass
class CounterfactualReport:
    n_texts: int
    n_texts_with_terms: int
    n_pairs: int
    flip_rate: float
    mean_abs_prob_change: float
    max_abs_prob_change: float
    per_term_group: dict[str, dict[str, Any]]
    worst_examples: list[dict[str, Any]]
    positive_label: str
    thresholds: dict[str, float] = field(
        default_factory=lambda: {"flip_rate": MAX_FLIP_RATE, "mean_abs_prob_change": MAX_MEAN_ABS_CHANGE}
    )

    @property
    def flagged(self) -> bool:
        return self.n_pairs > 0 and (
            self.flip_rate > self.thresholds["flip_rate"]
            or self.mean_abs_prob_change > self.thresholds["mean_abs_prob_change"]
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_texts": self.n_texts,
            "n_texts_with_terms": self.n_texts_with_terms,
            "n_pairs": self.n_pairs,
            "flip_rate": self.flip_rate,
            "mean_abs_prob_change": self.mean_abs_prob_change,
            "max_abs_prob_change": self.max_abs_prob_change,
            "flagged": self.flagged,
            "thresholds": self.thresholds,
            "positive_label": self.positive_label,
            "per_term_group": self.per_term_group,
            "worst_examples": self.worst_examples,
        }

    def render_markdown(self) -> str:
        verdict = "FLAGGED" if self.flagged else "not flagged"
        lines = [
            f"Counterfactual identity swaps ({verdict}): {self.n_pairs} rewrites of {self.n_texts_with_terms} "
            f"of {self.n_texts} texts; flip rate {self.flip_rate:.3f}, mean |Δp({self.positive_label})| "
            f"{self.mean_abs_prob_change:.4f} (max {self.max_abs_prob_change:.3f})",
            "",
            "| term group | texts | rewrites | flip rate | mean abs Δp | mean Δp by direction (largest first) |",
            "|---|---|---|---|---|---|",
        ]
        for name, g in self.per_term_group.items():
            ranked = sorted(g["directions"].items(), key=lambda kv: -abs(kv[1]["mean_prob_change"]))
            dirs = ", ".join(f"{k}: {v['mean_prob_change']:+.3f}" for k, v in ranked[:SHOWN_DIRECTIONS])
            if len(ranked) > SHOWN_DIRECTIONS:
                dirs += f" (largest {SHOWN_DIRECTIONS} of {len(ranked)}; all in the JSON)"
            lines.append(
                f"| {name} | {g['n_texts']} | {g['n_pairs']} | {g['flip_rate']:.3f} | "
                f"{g['mean_abs_prob_change']:.4f} | {dirs} |"
            )
        if self.worst_examples:
            lines += ["", "Largest changes:", "", "| Δp | flip | original | rewrite |", "|---|---|---|---|"]
            for w in self.worst_examples:
                lines.append(
                    f"| {w['prob_change']:+.3f} | {'yes' if w['flipped'] else ''} | "
                    f"{_cell(w['text'])} | {_cell(w['counterfactual'])} |"
                )
        return "\n".join(lines) + "\n"


def _cell(text: str, width: int = 110) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:width]


def positive_index(labels: Sequence[str], positive_label: str | None) -> int:
    labels = [str(x) for x in labels]
    if positive_label is None:
        if len(labels) != 2:
            raise ConfigError(
                f"labels {labels}: name the label to watch with positive_label= (--positive-label)"
            )
        return 1
    if positive_label not in labels:
        raise ConfigError(f"positive label {positive_label!r} is not one of the classifier's labels {labels}")
    return labels.index(positive_label)


def counterfactual_test(
    classifier,
    texts: Sequence[str],
    *,
    positive_label: str | None = None,
    term_groups: Mapping[str, TermGroup] | None = None,
    top: int = 10,
    batch_size: int = 32,
) -> CounterfactualReport:
    """Swap identity terms in `texts` and compare `classifier.predict_proba` (columns in `classifier.labels`
    order) before and after. `positive_label` defaults to the second of two labels."""
    texts = [str(t) for t in texts]
    if not texts:
        raise DataError("no texts for the counterfactual test: check the data file")
    term_groups = dict(term_groups) if term_groups is not None else load_term_groups()
    labels = [str(x) for x in classifier.labels]
    pos = positive_index(labels, positive_label)
    records = counterfactuals(texts, term_groups)
    rows = sorted({r["row"] for r in records})
    if records:
        originals = _proba(classifier, [texts[i] for i in rows], batch_size)
        by_row = {row: originals[k] for k, row in enumerate(rows)}
        rewritten = _proba(classifier, [r["counterfactual"] for r in records], batch_size)
        for r, p in zip(records, rewritten, strict=True):
            before = by_row[r["row"]]
            r["prob_before"] = float(before[pos])
            r["prob_after"] = float(p[pos])
            r["prob_change"] = float(p[pos] - before[pos])
            r["label_before"], r["label_after"] = labels[int(before.argmax())], labels[int(p.argmax())]
            r["flipped"] = r["label_before"] != r["label_after"]
    per_group = {}
    for name in term_groups:
        mine = [r for r in records if r["term_group"] == name]
        directions: dict[str, dict[str, Any]] = {}
        for r in mine:
            directions.setdefault(f"{r['from']}->{r['to']}", []).append(r)  # type: ignore[arg-type]
        per_group[name] = {
            **_summary(mine),
            "n_texts": len({r["row"] for r in mine}),
            "directions": {k: _summary(v) for k, v in sorted(directions.items())},  # type: ignore[arg-type]
        }
    worst = sorted(records, key=lambda r: (-abs(r["prob_change"]), r["row"]))[:top]
    summary = _summary(records)
    return CounterfactualReport(
        n_texts=len(texts),
        n_texts_with_terms=len(rows),
        n_pairs=len(records),
        flip_rate=summary["flip_rate"],
        mean_abs_prob_change=summary["mean_abs_prob_change"],
        max_abs_prob_change=max((abs(r["prob_change"]) for r in records), default=0.0),
        per_term_group=per_group,
        worst_examples=[{**w, "row": w["row"] + 1} for w in worst],
        positive_label=labels[pos],
    )


def _summary(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    if not records:
        return {"n_pairs": 0, "flip_rate": 0.0, "mean_abs_prob_change": 0.0, "mean_prob_change": 0.0}
    change = np.array([r["prob_change"] for r in records])
    return {
        "n_pairs": len(records),
        "flip_rate": float(np.mean([r["flipped"] for r in records])),
        "mean_abs_prob_change": float(np.abs(change).mean()),
        "mean_prob_change": float(change.mean()),
    }


def _proba(classifier, texts: Sequence[str], batch_size: int) -> np.ndarray:
    try:
        probs = classifier.predict_proba(list(texts), batch_size=batch_size)
    except TypeError:  # a user's classifier without batch_size
        probs = classifier.predict_proba(list(texts))
    return np.asarray(probs, dtype=float)
