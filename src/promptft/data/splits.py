"""Reading one split file for a workflow: the column spec, errors in the command line's words, empty texts.

`read_examples` (readers.py) is the library's reader; these are the reads `promptft train`, `eval` and
`predict` do, whose messages name flags (`--format`, `--label-column`) rather than Python arguments.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from promptft.data.example import Example
from promptft.data.readers import Row, read_rows
from promptft.errors import ConfigError, DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
EMPTY_POLICIES = ("keep", "skip", "error")


def read_split(path: str | Path, spec: Mapping[str, Any], *, labelled: bool = True) -> list[Example]:
    """Read one file with a column spec (see `read_split_rows`)."""
    return [row.example for row in read_split_rows(path, spec, labelled=labelled)]


def read_split_rows(path: str | Path, spec: Mapping[str, Any], *, labelled: bool = True) -> list[Row]:
    """Read one file with a column spec (`fields`, `label`, `label_map`, `header`, `fmt` and the task's
    `TaskSpec` as `task`: a job's `reader_options()`), as rows that keep every column.

    Labelled reads default the label column to `label` when `fields` names columns; an unlabelled read
    (prediction inputs) reads no label at all. Errors are worded for the command line (`--format`, not
    `fmt=`), since these are the reads the CLI does.
    """
    fields = spec.get("fields")
    label = spec.get("label")
    named = fields is not None and all(isinstance(c, str) for c in fields.values())
    if labelled and label is None and named:
        label = "label"
    options = {"fields": fields, "header": spec.get("header"), "fmt": spec.get("fmt")}
    if labelled:
        options.update(label=label, label_map=spec.get("label_map"), task=spec.get("task"))
    try:
        rows = read_rows(path, **options, labels=labelled)
    except DataError as err:
        raise DataError(cli_wording(str(err))) from None
    if labelled and any(row.example.label is None for row in rows):
        raise DataError(_no_label_column(path, rows[0]))
    return rows


def _no_label_column(path: str | Path, row: Row) -> str:
    """Name the columns actually found, so the suggested --label-column is one that exists."""
    columns = list(row.cells)
    texts = set(row.example.fields.values())
    others = [c for c in columns if str(row.cells[c]).strip() not in texts]
    if not others:
        return f"{path} has no label column (only {', '.join(map(repr, columns))}): add the labels"
    if all(c.startswith("column_") or c in row.example.fields for c in columns):  # no header row
        index = columns.index(others[0])
        return (
            f"{path} was read without labels: it has no header row, so give the label column's 0-based "
            f"index, e.g. --label-column {index}"
        )
    return (
        f"{path} has no label column named 'label': its columns are {', '.join(map(repr, columns))}; name "
        f"the one with the labels, e.g. --label-column {others[0]}"
    )


_CLI_WORDS = [  # Python argument names in reader messages -> the flags a CLI user types
    (re.compile(r"fields=\{'(\w+)': '?([^'}]*)'?\}, label=(\d+)"), r"--field \1=\2 --label-column \3"),
    (re.compile(r"fields=\{'(\w+)': '?([^'}]*)'?\}"), r"--field \1=\2"),
    (re.compile(r"fields= and label="), "--field and --label-column"),
    (re.compile(r"fmt='(\w+)'"), r"--format \1"),
    (re.compile(r"fmt="), "--format"),
    (re.compile(r"header=False"), "--no-header"),
    (re.compile(r"header=True"), "--header"),
    (re.compile(r"\bfields="), "--field"),
    (re.compile(r"\blabel_map\b"), "the label map (--label-map)"),
]


def cli_wording(message: str) -> str:
    """A reader's message with its Python argument names replaced by the CLI's flags."""
    for pattern, replacement in _CLI_WORDS:
        message = pattern.sub(replacement, message)
    return message


def empty_rows(rows: Sequence[Row]) -> list[int]:
    """Indices of the rows whose every template field is empty (or only whitespace)."""
    return [i for i, row in enumerate(rows) if not any(t.strip() for t in row.example.fields.values())]


def check_empty(rows: Sequence[Row], path: str | Path, policy: str = "keep", what: str = "") -> list[int]:
    """Warn about (policy keep/skip) or refuse (error) rows with empty text; returns their indices.

    `what` says what keep and skip do for the caller, e.g. "kept and scored"."""
    if policy not in EMPTY_POLICIES:
        raise ConfigError(f"unknown --empty {policy!r}: use one of {', '.join(EMPTY_POLICIES)}")
    empty = empty_rows(rows)
    if not empty:
        return []
    where = ", ".join(rows[i].where.split(" of ")[0] for i in empty[:10]) + (
        ", ..." if len(empty) > 10 else ""
    )
    if policy == "error":
        raise DataError(
            f"{path}: {len(empty)} row(s) have an empty text ({where}): fill them in or delete them, or pass "
            "--empty keep (classify them anyway) or --empty skip"
        )
    log.warning("%s: %d row(s) have an empty text (%s): %s", path, len(empty), where, what)
    return empty


def load_split(paths: Mapping[str, str | None], which: str, spec: Mapping[str, Any]) -> list[Example] | None:
    """The labelled examples of split `which` (train, dev or test) of `paths`; None when there is no file."""
    if which not in SPLITS:
        raise ConfigError(f"unknown split {which!r}: use one of {', '.join(SPLITS)}")
    path = paths.get(which)
    return read_split(path, spec) if path else None  # "" drops a file set elsewhere (--test "")
