"""Read labelled examples from csv / tsv / jsonl / json files and Hugging Face `datasets.Dataset`s.

Every reader turns its source into records (a list of cells, or a dict of column -> value) with a location
("line 12 of train.tsv") used in error messages (`sources.py`); one shared step here then picks the
columns and builds `Example`s.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptft.data.example import Example
from promptft.data.sources import (
    LABEL_COLUMN,
    TEXT_COLUMNS,
    Column,
    Record,
    _file_format,
    _open_dataset,
    _open_json,
    _open_table,
    _Records,
    dataset_source,
    names_dataset,
)
from promptft.data.targets import TaskSpec, integer_form
from promptft.errors import DataError

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)


def read_examples(
    source: str | Path | datasets.Dataset,
    *,
    fields: Mapping[str, str | int] | None = None,
    label: str | int | None = None,
    label_map: Mapping[str, str] | None = None,
    header: bool | None = None,
    fmt: str | None = None,
    limit: int | None = None,
    task: TaskSpec | None = None,
) -> list[Example]:
    """Read examples from a csv/tsv/jsonl/json file or a Hugging Face `datasets.Dataset`.

    `fields` maps template field names to column names or 0-based indices, e.g. `{"text": "sentence"}` or
    `{"premise": "sentence1", "hypothesis": "sentence2"}`; `label` is the label column (None: unlabelled).
    Raw labels become strings (`0` -> `"0"`) and then go through `label_map` (raw -> name) if one is given;
    a `ClassLabel` column of a dataset maps to its names unless `label_map` is given.

    csv files use standard quoting; tsv files are split on tabs with no quote handling, as GLUE files need.
    Blank lines are skipped (a line of empty cells, such as `,`, is a row). A row with more cells than the
    header (a text with an unquoted comma) is joined back when the extra cells can only belong to the last
    column, a text field (with a warning); otherwise it is an error, never a silent cut.
    `header=None` decides from the columns: names need a header; otherwise a first row holding usual column
    names (sentence, text, label, ...) is a header, and else the first row is data. With `fields=None`,
    `text` is read from the first of `TEXT_COLUMNS` present and the label from a `label` column if there
    is one. A headerless file with two columns and `fields=None` follows the LM-BFF csv convention (column 0
    is the label, column 1 the text), unless its first row reads as `text,label` (a text with spaces, then
    one short token); errors about labels say which layout was assumed. Pass `fields`/`label` for other
    layouts, e.g. AG News tsv files need `fields={"text": 0}, label=1`.

    json files may hold a list of objects, `{"data": [...]}`, an id -> object mapping (LM-BFF's imdb/yelp
    files), or columns (`{"text": [...], "label": [...]}`); jsonl files hold one object per line.

    `task` (`promptft.data.TaskSpec`) reads other task types: multi-label rows (a label column with
    comma-separated labels or a JSON list, or one 0/1 column per label; `label_map` maps raw labels, e.g.
    indices, to names) give a sorted tuple of label names, regression rows a float inside a declared range.
    """
    spec = {"fields": fields, "label": label, "label_map": label_map, "header": header, "fmt": fmt}
    return [row.example for row in read_rows(source, **spec, limit=limit, task=task)]


def read_rows(
    source: str | Path | datasets.Dataset,
    *,
    fields: Mapping[str, str | int] | None = None,
    label: str | int | None = None,
    label_map: Mapping[str, str] | None = None,
    header: bool | None = None,
    fmt: str | None = None,
    limit: int | None = None,
    labels: bool = True,
    task: TaskSpec | None = None,
) -> list[Row]:
    """`read_examples`, keeping each record's columns and location: `Row(example, cells, where)`.

    `cells` holds every column of the record under its header name (headerless files: the field or
    `label` a column is read as, else `column_<i>`), for outputs that keep the input's columns.
    `labels=False` reads no label at all, not even from a `label` column (inputs to classify).
    """
    _check_spec(fields, label, limit)
    if limit == 0:
        return []
    label_map = _check_label_map(label_map)
    dataset = dataset_source(source)  # hf:NAME:SPLIT, or a save_to_disk folder
    source = source if dataset is None else dataset
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        fmt = _file_format(path, fmt)
        try:
            if fmt in ("csv", "tsv"):
                records = _open_table(path, fmt, fields, label, header)
            else:
                if header is not None:
                    raise DataError(f"header= only applies to csv/tsv files, but {path} is {fmt}: drop it")
                records = _open_json(path, fmt)
            return _rows(records, fields, label, label_map, limit, labels, task)
        except UnicodeDecodeError as err:
            raise DataError(
                f"{path} is not valid UTF-8 text ({err.reason} at byte {err.start}): re-save it as UTF-8"
            ) from None
    if fmt is not None or header is not None:
        raise DataError("fmt= and header= only apply to files, not to a datasets.Dataset: drop them")
    return _rows(_open_dataset(source, limit), fields, label, label_map, limit, labels, task)


def iter_rows(
    path: str | Path,
    *,
    fields: Mapping[str, str | int] | None = None,
    header: bool | None = None,
    fmt: str | None = None,
) -> Iterator[Row]:
    """Unlabelled rows of a csv/tsv/jsonl file, one at a time, as `read_rows(..., labels=False)` reads
    them: for files too large to hold (bulk prediction). A .json file is parsed whole."""
    _check_spec(fields, None, None)
    dataset = dataset_source(path)
    if dataset is not None:  # held whole by `datasets` (memory-mapped), so read as it is
        yield from _iter_rows(_open_dataset(dataset, None), fields, None, None, None, labels=False)
        return
    path = Path(path)
    fmt = _file_format(path, fmt)
    if fmt in ("csv", "tsv"):
        records = _open_table(path, fmt, fields, None, header)
    else:
        if header is not None:
            raise DataError(f"header= only applies to csv/tsv files, but {path} is {fmt}: drop it")
        records = _open_json(path, fmt)
    try:
        yield from _iter_rows(records, fields, None, None, None, labels=False)
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path} is not valid UTF-8 text ({err.reason} at byte {err.start}): re-save it as UTF-8"
        ) from None


def table_header(
    path: str | Path,
    *,
    fields: Mapping[str, str | int] | None = None,
    label: str | int | None = None,
    header: bool | None = None,
    fmt: str | None = None,
) -> list[str] | None:
    """The header row `read_rows` finds in a csv/tsv file (None when it reads the first row as data, and
    for JSON files), so that rows written back out keep the file's layout."""
    if names_dataset(path):
        return None
    path = Path(path)
    fmt = _file_format(path, fmt)
    if fmt not in ("csv", "tsv"):
        return None
    records = _open_table(path, fmt, fields, label, header)
    return None if records.columns is None else list(records.columns)


# ---------------------------------------------------------------------------------------------------------
# argument checks


def _check_spec(fields: Mapping[str, Column] | None, label: Column | None, limit: int | None) -> None:
    if fields is not None:
        if not isinstance(fields, Mapping) or not fields:
            raise DataError(
                f"fields must be a non-empty mapping of template field -> column, got {fields!r}: "
                'e.g. fields={"text": "sentence"}'
            )
        for name, col in fields.items():
            if not isinstance(name, str) or not name:
                raise DataError(f"field names must be non-empty strings, got {name!r}: e.g. {{'text': 0}}")
            _check_column(col, f"fields[{name!r}]")
    if label is not None:
        _check_column(label, "label")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise DataError(f"limit must be a non-negative integer or None, got {limit!r}")


def _check_column(col: object, what: str) -> None:
    if isinstance(col, bool) or not isinstance(col, str | int):
        raise DataError(f"{what} must be a column name (str) or 0-based index (int), got {col!r}")
    if isinstance(col, int) and col < 0:
        raise DataError(f"{what} is {col}, but column indices start at 0: use a non-negative index")


def _check_label_map(label_map: Mapping[str, str] | None) -> dict[str, str] | None:
    if label_map is None:
        return None
    if not isinstance(label_map, Mapping) or not label_map:
        raise DataError(
            f'label_map must be a non-empty mapping raw label -> name, e.g. {{"0": "negative"}}, '
            f"got {label_map!r}"
        )
    # Keys are compared with raw labels as strings; accepting {0: "negative"} spares users a surprise miss.
    out = {_raw_to_str(k): v for k, v in label_map.items()}
    bad = [v for v in out.values() if not isinstance(v, str) or not v]
    if bad:
        raise DataError(f"label_map values must be non-empty label names (str), got {bad[0]!r}")
    return out


# ---------------------------------------------------------------------------------------------------------
# columns -> examples


@dataclass(frozen=True)
class Row:
    """One record as read: its `Example`, every column's raw value (for output that keeps the input's
    columns), and where it is ("line 12 of train.tsv")."""

    example: Example
    cells: dict[str, Any]
    where: str


def _rows(
    records: _Records,
    fields: Mapping[str, Column] | None,
    label: Column | None,
    label_map: dict[str, str] | None,
    limit: int | None,
    labels: bool = True,
    task: TaskSpec | None = None,
) -> list[Row]:
    return list(_iter_rows(records, fields, label, label_map, limit, labels, task))


def _iter_rows(
    records: _Records,
    fields: Mapping[str, Column] | None,
    label: Column | None,
    label_map: dict[str, str] | None,
    limit: int | None,
    labels: bool = True,
    task: TaskSpec | None = None,
) -> Iterator[Row]:
    """The rows one at a time (a file is read as it goes: memory does not grow with its length)."""
    task = task or TaskSpec()
    field_keys, label_key = _resolve(records, fields, label)
    label_cols = None
    if task.label_columns is not None:  # one 0/1 column per label replaces the label column
        label_key = None
        if labels:
            label_cols = {str(c): _key(records, c, "label_columns") for c in task.label_columns}
    if not labels:
        label_key = None  # the layout guess may have found one; an unlabelled read ignores it
        if records.assumed:  # no label error will ever name the guess, so say it here
            log.warning(
                "%s: %s; the texts are read from column %s. If they are in the other column, name it "
                "(--text-field INDEX, or a header row)",
                records.name, records.assumed, field_keys.get("text"),
            )  # fmt: skip
    class_names = (records.class_names or {}).get(label_key) if isinstance(label_key, str) else None
    if records.kind == "table" and records.columns is not None:
        # A data row shorter than its header is broken even if the columns we read happen to exist.
        required = records.width
    else:
        keys = (*field_keys.values(), label_key, *(label_cols or {}).values())
        required = max((k for k in keys if isinstance(k, int)), default=-1) + 1
    names = _cell_names(records, field_keys, label_key)
    count = 0
    joined: list[str] = []
    for loc, rec in records.rows:
        if not isinstance(rec, Mapping):
            if len(rec) < required:
                raise DataError(
                    f"{loc} has {len(rec)} column(s) but {required} are needed: the row is truncated or uses "
                    "another delimiter; fix that line"
                )
            if records.kind == "table" and len(rec) > records.width:
                rec = _join_extra(records, rec, loc, field_keys, label_key)
                joined.append(loc.split(" of ")[0])
        texts = {name: _text(_cell(rec, key, loc), loc, key) for name, key in field_keys.items()}
        name: Any = None
        if label_cols is not None:
            name = task.from_columns({n: _cell(rec, k, loc) for n, k in label_cols.items()}, loc, label_map)
        elif label_key is not None:
            value = _cell(rec, label_key, loc)
            if _blank(value) and not any(texts.values()):
                raise DataError(
                    f"{loc} has neither text nor a label (every column read is empty): delete that line "
                    "or fill it in"
                )
            if task.task == "single_label":
                name = _label(value, loc, label_key, label_map, class_names, records.assumed)
            else:
                name = task.parse(value, loc, label_key, label_map, class_names)
        cells = dict(rec) if isinstance(rec, Mapping) else dict(zip(names, rec, strict=False))
        for column, classes in (records.class_names or {}).items():  # ClassLabel ids as their names
            cells[column] = _class_name(cells.get(column), classes)
        yield Row(Example(texts, name), cells, loc)
        count += 1
        if limit is not None and count >= limit:
            break
    if not count:
        raise DataError(
            f"{records.name} has no data rows after the header: check that it is the file you meant"
        )
    if joined:
        log.warning(
            "%s: %d row(s) had more fields than columns (%s%s): unquoted %r in the last column %r, joined "
            "back into its text; quote such cells to be sure",
            records.name,
            len(joined),
            ", ".join(joined[:5]),
            ", ..." if len(joined) > 5 else "",
            records.delimiter,
            names[records.width - 1],
        )


def _join_extra(
    records: _Records,
    rec: Sequence[Any],
    loc: str,
    field_keys: Mapping[str, Column],
    label_key: Column | None,
) -> list[Any]:
    """A row with more cells than the header: the extra cells can only be the rest of the last column's
    text when that column is a text field (an unquoted comma); anything else is an error, never a cut."""
    last = records.width - 1
    if last in field_keys.values() and last != label_key:
        return [*rec[:last], str(records.delimiter).join(rec[last:])]
    columns = (
        f"the header's {records.width}" if records.columns is not None else f"the first row's {records.width}"
    )
    raise DataError(
        f"{loc} has {len(rec)} fields, more than {columns} columns: a text with an unquoted "
        f'{records.delimiter!r}? Quote that cell ("a fine, funny film") or fix the line'
    )


def _cell_names(records: _Records, field_keys: Mapping[str, Column], label_key: Column | None) -> list[str]:
    """Names for the cells of list rows: the header, else the field (or `label`) a column is read as,
    else column_<i>."""
    if records.columns is not None:
        return list(records.columns)
    by_index = {k: name for name, k in field_keys.items() if isinstance(k, int)}
    if isinstance(label_key, int):
        by_index.setdefault(label_key, LABEL_COLUMN)
    return [by_index.get(i, f"column_{i}") for i in range(records.width)]


def _class_name(value: Any, classes: Sequence[str]) -> Any:
    """A `datasets.ClassLabel` id (or a list of them) as its name, so rows written back out keep the label
    names the dataset gave (ids out of range, e.g. -1 for "no label", stay as they are)."""
    if isinstance(value, list):
        return [_class_name(v, classes) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(classes):
        return classes[value]
    return value


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _resolve(
    records: _Records, fields: Mapping[str, Column] | None, label: Column | None
) -> tuple[dict[str, Column], Column | None]:
    """Turn the user's column spec (or the defaults) into keys: indices for list rows, names for dicts."""
    cols, width = records.columns, records.width
    if fields is None:
        if cols is not None:
            text_col = next((c for c in TEXT_COLUMNS if c in cols), None)
            if text_col is None:
                raise DataError(
                    f"{records.name}: none of the usual text columns ({', '.join(TEXT_COLUMNS)}) is among "
                    f"its columns {_describe(records)}: pass fields=, e.g. fields={{'text': {cols[0]!r}}}"
                    + (
                        "; if the first row is data, not a header, pass header=False"
                        * (records.kind == "table")
                    )
                )
            fields = {"text": text_col}
            if label is None and LABEL_COLUMN in cols:
                label = LABEL_COLUMN
        elif width == 2:
            if label is None and _text_then_label(records.first):
                fields, label = {"text": 0}, 1
                records.assumed = "no header row, so column 0 was read as the text and column 1 as the label"
            else:  # LM-BFF csv convention: label first, then the sentence.
                label = 0 if label is None else label
                fields = {"text": 1 - label} if label in (0, 1) else {"text": 0}
                if label == 0:
                    records.assumed = (
                        "no header row, so column 0 was read as the label and column 1 as the text "
                        "(the LM-BFF layout)"
                    )
        elif width == 1 and label is None:
            fields = {"text": 0}
        else:
            raise DataError(
                f"{records.name} has {width} columns and no header, so promptft cannot guess which holds the "
                "text: pass fields= and label= with 0-based indices, e.g. fields={'text': 1}, label=0 "
                "(a text with unquoted commas splits into several columns: quote it)"
            )
    field_keys = {name: _key(records, col, f"fields[{name!r}]") for name, col in fields.items()}
    label_key = None if label is None else _key(records, label, "label")
    return field_keys, label_key


def _key(records: _Records, col: Column, what: str) -> Column:
    cols = records.columns
    if isinstance(col, str):
        if cols is None:
            raise DataError(
                f"{what} = {col!r} names a column, but {records.name} has no column names "
                f"({_describe(records)}): use a 0-based index"
            )
        if col not in cols:
            hint = ""
            if len(cols) == 1 and any(d in cols[0] for d in ",\t"):
                hint = "; the header looks split on the wrong delimiter: check the suffix or pass fmt="
            raise DataError(
                f"{what} = {col!r} is not a column of {records.name}; available columns: "
                f"{_describe(records)}. Use one of those names{hint}"
            )
        return col if records.dict_rows else cols.index(col)
    if col >= records.width:
        raise DataError(
            f"{what} = {col} is out of range for {records.name}, which has {_describe(records)}: "
            "use an index from that range"
        )
    # Dict records are addressed by name; an index picks the name at that position (first record's order).
    return cols[col] if records.dict_rows else col


def _describe(records: _Records) -> str:
    if records.columns is not None:
        return ", ".join(repr(c) for c in records.columns)
    return f"{records.width} column(s), indices 0..{records.width - 1} (no header row)"


def _cell(rec: Record, key: Column, loc: str) -> Any:
    if isinstance(rec, Mapping):
        if key in rec:
            return rec[key]
        raise DataError(
            f"{loc} has no column {key!r}; it has {', '.join(map(repr, rec)) or 'none'}: fix that record "
            "or pick another column"
        )
    if isinstance(key, str):
        raise DataError(f"{loc} is a list, not an object like the first record: make every record an object")
    return rec[key]


def _text(value: Any, loc: str, col: Column) -> str:
    if isinstance(value, str):
        # Surrounding whitespace would double the spaces at the template's joins (AG News has
        # hundreds of leading spaces), which changes BPE tokens; it never carries meaning here.
        return value.strip()
    if isinstance(value, bool | int | float):
        return str(value)
    if value is None:
        raise DataError(f"{loc}: text column {col!r} is empty (null): fill it in or drop that record")
    raise DataError(
        f"{loc}: column {col!r} holds a {type(value).__name__}, not text; nested columns are not supported: "
        "flatten the data so each template field is its own column"
    )


def _raw_to_str(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _text_then_label(first: Record | None) -> bool:
    """A headerless two-column row that reads as `text,label`: a text with spaces, then one short token."""
    if not isinstance(first, Sequence) or len(first) != 2:
        return False
    text, label = (str(c).strip() for c in first)
    return " " in text and " " not in label and 0 < len(label) <= 30


def _label(
    value: Any,
    loc: str,
    col: Column,
    label_map: dict[str, str] | None,
    class_names: list[str] | None,
    assumed: str = "",
) -> str:
    why = f" ({assumed}: name the columns if that is wrong)" if assumed else ""
    if _blank(value):
        raise DataError(f"{loc} has no label (column {col!r} is empty){why}: fill it in or delete that line")
    if isinstance(value, dict | list):
        raise DataError(f"{loc}: label column {col!r} holds a {type(value).__name__}, not a single label")
    if class_names is not None and label_map is None:
        if isinstance(value, int) and 0 <= value < len(class_names):
            return class_names[value]
        raise DataError(
            f"{loc} has label {value!r}, which is not a class of the ClassLabel column {col!r} "
            f"({class_names}); -1 marks an unlabelled split: pass label=None to read it unlabelled"
        )
    raw = _raw_to_str(value)
    if label_map is None:
        return raw
    if raw in label_map:
        return label_map[raw]
    if integer_form(raw) in label_map:  # "1.0" from a spreadsheet or pandas export, map key "1"
        return label_map[integer_form(raw)]  # type: ignore[index]
    known = ", ".join(repr(k) for k in label_map)
    raise DataError(
        f"{loc} has label {raw!r}, which label_map does not cover (it knows {known}){why}: add "
        f"{raw!r} to label_map or fix the data"
    )
