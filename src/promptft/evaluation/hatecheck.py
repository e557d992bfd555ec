"""HateCheck (Röttger et al. 2021) as an audit input for a hate-speech classifier: accuracy per functional test
and per target group, and group fairness over the targets (positive outcome: "hateful").

The suite is hand-written templates, English only, 7 target groups: per-functionality diagnostics, not a
measure of real-world accuracy. `target_ident` is empty for cases that target no protected group.

    from promptft.evaluation.hatecheck import read_hatecheck, hatecheck_report
    cases = read_hatecheck("../shared/data/fairness/hatecheck/test_suite_cases.csv")
    report = hatecheck_report(cases, predicted_labels)   # "hateful" / "non-hateful" per case
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptft.errors import DataError

HATECHECK_FILE = "fairness/hatecheck/test_suite_cases.csv"
HATEFUL, NON_HATEFUL = "hateful", "non-hateful"
NO_TARGET = "(no target)"
REQUIRED = ("functionality", "test_case", "label_gold", "target_ident")


@dataclass(frozen=True)
class HateCheckCase:
    case_id: str
    functionality: str
    text: str
    label: str  # hateful | non-hateful
    target: str  # the target group, NO_TARGET when none


def read_hatecheck(path: str | Path) -> list[HateCheckCase]:
    """The cases of `test_suite_cases.csv` (header row, CRLF line ends; texts end with a space as published:
    stripped here)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"HateCheck file not found: {path}: point at test_suite_cases.csv (shared data: <data>/{HATECHECK_FILE})"
        )
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path} lacks the HateCheck columns {missing}: is this test_suite_cases.csv?")
        cases = []
        for i, row in enumerate(reader):
            label = row["label_gold"].strip()
            if label not in (HATEFUL, NON_HATEFUL):
                raise DataError(f"{path}, case {i + 1}: label_gold {label!r} is not hateful/non-hateful")
            cases.append(
                HateCheckCase(
                    case_id=str(row.get("case_id") or i + 1),
                    functionality=row["functionality"].strip(),
                    text=row["test_case"].strip(),
                    label=label,
                    target=row["target_ident"].strip() or NO_TARGET,
                )
            )
    if not cases:
        raise DataError(f"{path} holds no cases")
    return cases


@dataclass
class HateCheckReport:
    n: int
    accuracy: float
    per_functionality: dict[str, dict[str, Any]]
    per_target: dict[str, dict[str, Any]]
    group_fairness: dict[str, Any] | None
    weakest: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "per_functionality": self.per_functionality,
            "per_target": self.per_target,
            "group_fairness": self.group_fairness,
            "weakest_functionalities": self.weakest,
            "caveat": "HateCheck cases are hand-written templates (English, 7 groups): functional diagnostics, "
            "not real-world accuracy",
        }

    def render_markdown(self) -> str:
        lines = [f"HateCheck: accuracy {self.accuracy:.3f} over {self.n} cases", ""]
        lines += [
            "| target group | cases | accuracy | on hateful | on non-hateful |",
            "|---|---|---|---|---|",
        ]
        for name, t in self.per_target.items():
            lines.append(
                f"| {name} | {t['n']} | {t['accuracy']:.3f} | {_f(t['accuracy_hateful'])} | "
                f"{_f(t['accuracy_non_hateful'])} |"
            )
        lines += ["", "| functionality | gold | cases | accuracy |", "|---|---|---|---|"]
        for name, f in self.per_functionality.items():
            lines.append(f"| {name} | {f['gold']} | {f['n']} | {f['accuracy']:.3f} |")
        return "\n".join(lines) + "\n"


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _acc(pairs: Sequence[tuple[str, str]]) -> float | None:
    return sum(g == p for g, p in pairs) / len(pairs) if pairs else None


def hatecheck_report(cases: Sequence[HateCheckCase], predicted: Sequence[str]) -> HateCheckReport:
    """Score predictions ("hateful"/"non-hateful", one per case) per functionality and target group."""
    from promptft.evaluation.fairness import group_fairness

    predicted = [str(p) for p in predicted]
    if len(predicted) != len(cases):
        raise DataError(f"{len(cases)} HateCheck cases but {len(predicted)} predictions: one per case")
    odd = sorted(set(predicted) - {HATEFUL, NON_HATEFUL})
    if odd:
        raise DataError(
            f"predictions {odd[:3]} are not hateful/non-hateful: map the classifier's labels first"
        )
    per_func: dict[str, dict[str, Any]] = {}
    for name in sorted({c.functionality for c in cases}):
        pairs = [(c.label, p) for c, p in zip(cases, predicted, strict=True) if c.functionality == name]
        gold = sorted({g for g, _ in pairs})
        per_func[name] = {"n": len(pairs), "gold": "/".join(gold), "accuracy": _acc(pairs)}
    per_target: dict[str, dict[str, Any]] = {}
    for name in sorted({c.target for c in cases}):
        pairs = [(c.label, p) for c, p in zip(cases, predicted, strict=True) if c.target == name]
        per_target[name] = {
            "n": len(pairs),
            "accuracy": _acc(pairs),
            "accuracy_hateful": _acc([x for x in pairs if x[0] == HATEFUL]),
            "accuracy_non_hateful": _acc([x for x in pairs if x[0] == NON_HATEFUL]),
        }
    targeted = [i for i, c in enumerate(cases) if c.target != NO_TARGET]
    fairness = None
    if len({cases[i].target for i in targeted}) >= 2:
        fairness = group_fairness(
            [cases[i].label for i in targeted],
            [predicted[i] for i in targeted],
            [cases[i].target for i in targeted],
            positive_label=HATEFUL,
        ).to_dict()
    weakest = [n for n, _ in sorted(per_func.items(), key=lambda kv: kv[1]["accuracy"])[:5]]
    all_pairs = [(c.label, p) for c, p in zip(cases, predicted, strict=True)]
    return HateCheckReport(len(cases), _acc(all_pairs) or 0.0, per_func, per_target, fairness, weakest)
