"""What a data audit finds: typed findings (code, severity, rows, message, fix) and the report around them.

The report is what a CLI prints: `to_dict()` for `--json`, `render_text()` for people, and `exit_code`
for pipelines (non-zero when any finding is an error).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How bad a finding is: an error breaks an evaluation or training; a warning probably hurts; info
    is worth knowing."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 0, "warning": 1, "info": 2}[self.value]


@dataclass(frozen=True, order=True)
class RowRef:
    """One row of one split. `row` is 1-based over the split's examples (the first data row is 1; a csv
    or tsv header is not counted)."""

    split: str
    row: int

    def __str__(self) -> str:
        return f"{self.split}:{self.row}"

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "row": self.row}


@dataclass(frozen=True)
class Finding:
    """One problem (or one fact) about the data.

    `rows` lists the rows involved, capped (`count` says how many there are in all); `groups` holds rows
    that belong together (the copies of one duplicated text), also capped (`n_groups` is the full count).
    """

    code: str
    severity: Severity
    message: str
    fix: str
    splits: tuple[str, ...] = ()
    rows: tuple[RowRef, ...] = ()
    count: int = 0
    groups: tuple[tuple[RowRef, ...], ...] = ()
    n_groups: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "severity": self.severity.value,
            "splits": list(self.splits),
            "count": self.count,
            "message": self.message,
            "fix": self.fix,
            "rows": [r.to_dict() for r in self.rows],
            "rows_truncated": self.count > len(self.rows),
        }
        if self.n_groups:
            out["n_groups"] = self.n_groups
            out["groups"] = [[str(r) for r in g] for g in self.groups]
        if self.details:
            out["details"] = self.details
        return out


def make_finding(
    code: str,
    severity: Severity,
    message: str,
    fix: str,
    *,
    splits: tuple[str, ...] | list[str] = (),
    groups: list[list[RowRef]] | None = None,
    rows: list[RowRef] | None = None,
    max_rows: int = 20,
    max_groups: int = 10,
    details: dict[str, Any] | None = None,
) -> Finding:
    """A finding with its row list capped; rows come from `groups` when only groups are given."""
    groups = [sorted(g) for g in groups or []]
    groups.sort()
    all_rows = sorted(set(rows if rows is not None else (r for g in groups for r in g)))
    return Finding(
        code=code,
        severity=severity,
        message=message,
        fix=fix,
        splits=tuple(splits),
        rows=tuple(all_rows[:max_rows]),
        count=len(all_rows),
        groups=tuple(tuple(g) for g in groups[:max_groups]),
        n_groups=len(groups),
        details=details or {},
    )


@dataclass
class AuditReport:
    """Findings (worst first) and per-split statistics (size, label counts, text lengths)."""

    findings: list[Finding]
    stats: dict[str, dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.findings.sort(key=lambda f: (f.severity.rank, f.code, f.splits))

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]

    @property
    def exit_code(self) -> int:
        """1 when any finding is an error (for pipelines: `promptft data audit ... || exit`), else 0."""
        return 1 if self.errors else 0

    def codes(self) -> set[str]:
        return {f.code for f in self.findings}

    def find(self, code: str, splits: tuple[str, ...] | None = None) -> list[Finding]:
        """Findings with `code` (and exactly these `splits`, when given)."""
        return [f for f in self.findings if f.code == code and (splits is None or f.splits == splits)]

    def summary(self) -> dict[str, Any]:
        by_severity = Counter(f.severity.value for f in self.findings)
        rows_by_code: Counter[str] = Counter()
        for f in self.findings:
            rows_by_code[f.code] += f.count
        return {
            "errors": by_severity.get("error", 0),
            "warnings": by_severity.get("warning", 0),
            "infos": by_severity.get("info", 0),
            "rows_by_code": dict(sorted(rows_by_code.items())),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "summary": self.summary(),
            "findings": [f.to_dict() for f in self.findings],
            "stats": self.stats,
            "settings": self.settings,
        }

    def render_text(self, max_rows: int = 8) -> str:
        """A plain-text report for a terminal: the splits, then each finding with its rows and fix."""
        lines = ["Data audit"]
        for name, st in self.stats.items():
            counts = ", ".join(f"{k}: {v}" for k, v in st.get("label_counts", {}).items())
            lines.append(f"  {name}: {st['n']} rows; labels {counts or '-'}")
        s = self.summary()
        if not self.findings:
            lines.append("No problems found.")
            return "\n".join(lines)
        lines.append(f"{s['errors']} error(s), {s['warnings']} warning(s), {s['infos']} note(s)")
        for f in self.findings:
            where = f" [{', '.join(f.splits)}]" if f.splits else ""
            lines.append(f"{f.severity.value.upper():7} {f.code}{where}: {f.message}")
            if f.groups:
                shown = "; ".join(" = ".join(str(r) for r in g) for g in f.groups[:max_rows])
                more = f" (+{f.n_groups - min(f.n_groups, max_rows)} more)" if f.n_groups > max_rows else ""
                lines.append(f"        groups: {shown}{more}")
            elif f.rows:
                shown = ", ".join(str(r) for r in f.rows[:max_rows])
                more = f" (+{f.count - min(f.count, max_rows)} more)" if f.count > max_rows else ""
                lines.append(f"        rows: {shown}{more}")
            lines.append(f"        fix: {f.fix}")
        return "\n".join(lines)
