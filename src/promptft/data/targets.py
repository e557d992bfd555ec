"""What a label cell means for each task type: one label name, a set of label names, or a number.

`TaskSpec` tells the readers how to parse the label column(s): single-label (the default: one raw label,
through the label map), multi-label (comma-separated labels, a JSON list, a list from a dataset, or one 0/1
column per label) or regression (a float inside a declared range). Parsed multi-label sets are sorted
tuples, so examples stay hashable and compare equal whatever order the file listed the labels in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from promptft.errors import DataError

TaskType = Literal["single_label", "multi_label", "regression"]
TASK_TYPES: tuple[str, ...] = ("single_label", "multi_label", "regression")
LabelValue = str | tuple[str, ...] | float

_TRUE = {"1", "1.0", "true", "yes"}
_FALSE = {"0", "0.0", "false", "no", ""}


@dataclass(frozen=True)
class TaskSpec:
    """How labels are read. `task`: single_label | multi_label | regression.

    multi-label: `separator` splits a label cell (`"6,9,27"`); a cell that starts with `[` is read as a
    JSON list; `label_columns` reads one 0/1 column per label instead (the column name is the label,
    unless the label map renames it); `allow_empty` accepts rows with no label (else an error);
    `labels` is the label set (names after the label map) when the label map does not give it.
    regression: `value_range` = (low, high) is required, and a target outside it is an error."""

    task: TaskType = "single_label"
    separator: str = ","
    label_columns: tuple[str | int, ...] | None = None
    allow_empty: bool = False
    labels: tuple[str, ...] | None = None
    value_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.task not in TASK_TYPES:
            raise DataError(f"unknown task {self.task!r}: use one of {', '.join(TASK_TYPES)}")
        if self.task == "regression":
            check_range(self.value_range)
        if self.label_columns is not None and self.task != "multi_label":
            raise DataError("label_columns (one 0/1 column per label) is for task multi_label only")
        if self.label_columns is not None and not self.label_columns:
            raise DataError("label_columns is empty: name one 0/1 column per label")
        if self.task == "multi_label" and not self.separator:
            raise DataError('separator is empty: give the text between labels, e.g. ","')

    def parse(
        self,
        value: Any,
        loc: str,
        col: Any,
        label_map: Mapping[str, str] | None,
        class_names: Sequence[str] | None = None,
    ) -> LabelValue:
        """One label cell -> the example's label (multi-label and regression; single-label is the reader's)."""
        if self.task == "regression":
            return parse_target(value, loc, col, self.value_range)  # type: ignore[arg-type]
        return self._label_set(_split_cell(value, loc, col, self.separator), loc, label_map, class_names)

    def from_columns(
        self, values: Mapping[str, Any], loc: str, label_map: Mapping[str, str] | None
    ) -> tuple[str, ...]:
        """One 0/1 cell per label column -> the set of labels whose cell is 1."""
        on = []
        for col, value in values.items():
            text = str(value).strip().lower() if value is not None else ""
            if text in _TRUE or value is True:
                on.append(col)
            elif text not in _FALSE and value is not False:
                raise DataError(
                    f"{loc}: label column {col!r} holds {value!r}, but one-column-per-label data must be 0 or 1: "
                    "fix that cell"
                )
        return self._label_set(on, loc, label_map, None)

    def _label_set(
        self,
        raw: Sequence[Any],
        loc: str,
        label_map: Mapping[str, str] | None,
        class_names: Sequence[str] | None,
    ) -> tuple[str, ...]:
        names = []
        for item in raw:
            if class_names is not None and label_map is None and isinstance(item, int):
                if not 0 <= item < len(class_names):
                    raise DataError(
                        f"{loc}: label {item} is not a class of the dataset ({list(class_names)})"
                    )
                names.append(class_names[item])
                continue
            key = str(int(item)) if isinstance(item, float) and item.is_integer() else str(item).strip()
            if label_map is not None:
                key = key if key in label_map else integer_form(key) or key  # "1.0" -> map key "1"
                if key not in label_map:
                    known = ", ".join(repr(k) for k in list(label_map)[:10])
                    raise DataError(
                        f"{loc} has label {key!r}, which the label map does not cover (it knows {known}"
                        f"{', ...' if len(label_map) > 10 else ''}): add it to the label map or fix the data"
                    )
                key = label_map[key]
            if self.labels is not None and key not in self.labels:
                raise DataError(
                    f"{loc} has label {key!r}, outside the label set {list(self.labels)}: fix the data or add "
                    "the label to the task's labels"
                )
            names.append(key)
        if not names and not self.allow_empty:
            raise DataError(
                f"{loc} has an empty label set: every example needs at least one label; fill it in, delete "
                "the row, or allow label-less rows (allow_empty=True, task.allow_empty: true)"
            )
        return tuple(sorted(set(names)))


def check_range(value_range: Sequence[float] | None) -> tuple[float, float]:
    if value_range is None or len(value_range) != 2:
        raise DataError(
            f"regression needs value_range=(low, high), e.g. (0, 5) for STS-B; got {value_range!r}"
        )
    low, high = (float(v) for v in value_range)
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise DataError(f"value_range must be (low, high) with low < high, got {tuple(value_range)!r}")
    return low, high


def parse_target(value: Any, loc: str, col: Any, value_range: Sequence[float]) -> float:
    """A regression target: a finite number inside `value_range` (inclusive)."""
    low, high = check_range(value_range)
    if isinstance(value, bool) or value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"{loc} has no target (column {col!r} is empty): fill it in or delete that row")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(
            f"{loc}: target {value!r} in column {col!r} is not a number: regression targets are numbers "
            f"in [{low:g}, {high:g}]; fix that cell or pick the right column"
        ) from None
    if not math.isfinite(number):
        raise DataError(f"{loc}: target {value!r} in column {col!r} is not a finite number: fix that cell")
    if not low <= number <= high:
        raise DataError(
            f"{loc}: target {number:g} is outside the declared range [{low:g}, {high:g}]: fix the data or "
            "widen value_range (task.value_range)"
        )
    return number


def _split_cell(value: Any, loc: str, col: Any, separator: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, bool | dict):
        raise DataError(f"{loc}: label column {col!r} holds {value!r}, not a list of labels")
    if isinstance(value, int | float):
        return [value]
    text = str(value).strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            raise DataError(
                f"{loc}: label cell {text!r} starts with '[' but is not a JSON list: write it as "
                '["joy", "love"] or as joy,love'
            ) from None
        if not isinstance(items, list):
            raise DataError(f"{loc}: label cell {text!r} is not a list of labels")
        return items
    return [part for part in (p.strip() for p in text.split(separator)) if part]


def integer_form(raw: str) -> str | None:
    """ "1.0" -> "1": a float-looking label with an integer value, as a float column writes it."""
    try:
        number = float(raw)
    except ValueError:
        return None
    return str(int(number)) if number.is_integer() and "." in raw else None
