"""Opening a data source for reading: csv/tsv (with header detection and delimiter checks), json/jsonl
and Hugging Face datasets, each turned into `_Records` (column names + located records) that
`readers.py` turns into examples.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptft.errors import DataError

log = logging.getLogger(__name__)

FORMATS = ("csv", "tsv", "jsonl", "json")
# Tried in this order when `fields` is None and the source has column names.
TEXT_COLUMNS = ("sentence", "text", "review", "question", "content", "ori", "phrase", "document")
LABEL_COLUMN = "label"
# A first csv/tsv row holding any of these words is taken as a header when nothing else tells us.
_HEADER_WORDS = frozenset(
    {
        *TEXT_COLUMNS,
        "label",
        "labels",
        "sentence1",
        "sentence2",
        "premise",
        "hypothesis",
        "index",
        "idx",
        "id",
    }
)

Column = str | int
Record = Mapping[str, Any] | Sequence[Any]


@dataclass
class _Records:
    """A source opened for reading: its column names (None when it has none) and its records."""

    name: str  # for messages: a path or "the dataset"
    kind: str  # "table" (csv/tsv: list rows), "json" or "dataset"
    columns: list[str] | None  # header or keys of the first record; None when the rows are bare lists
    width: int  # number of columns of the header / first record
    rows: Iterator[tuple[str, Record]]  # (location, record)
    class_names: dict[str, list[str]] | None = None  # HF ClassLabel columns -> names
    delimiter: str | None = None  # csv/tsv: what joins cells back (a text with unquoted commas)
    first: Record | None = None  # the first data row (a headerless layout is guessed from it)
    assumed: str = ""  # a guessed layout, said in errors about the labels: "no header row; column 0 ..."

    @property
    def dict_rows(self) -> bool:
        """Whether records are dicts addressed by column name (else lists addressed by index)."""
        return self.kind != "table" and self.columns is not None


def _file_format(path: Path, fmt: str | None) -> str:
    if fmt is not None and fmt.lower().lstrip(".") not in FORMATS:
        raise DataError(f"unknown fmt {fmt!r}: use one of {', '.join(FORMATS)}")
    # Whether the path exists (and is a file) comes before its suffix: a folder has none to go by.
    if not path.exists():
        raise DataError(f"data file not found: {path} (looked at {path.resolve()}): check the path")
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir())[:5]
        listing = f": point at a file in it, e.g. one of {inside}" if inside else " (an empty one)"
        raise DataError(f"{path} is a folder, not a data file{listing}")
    if fmt is not None:
        return fmt.lower().lstrip(".")
    chosen = path.suffix.lower().lstrip(".")
    if chosen not in FORMATS:
        raise DataError(
            f"cannot tell the format of {path} from its suffix {path.suffix!r}: rename it to .csv, .tsv, "
            f".jsonl or .json, or pass fmt= one of {', '.join(FORMATS)}"
        )
    return chosen


def _open_table(
    path: Path, fmt: str, fields: Mapping[str, Column] | None, label: Column | None, header: bool | None
) -> _Records:
    rows = _table_rows(path, fmt)
    first = next(rows, None)
    if first is None:
        raise DataError(f"{path} is empty: it has no rows to read")
    _check_delimiter(path, fmt, first[1])
    delimiter = "\t" if fmt == "tsv" else ","
    has_header = _decide_header(path, fields, label, header, first[1])
    if has_header:
        columns = [c.strip() for c in first[1]]
        second = next(rows, None)
        rest = rows if second is None else _chain(second, rows)
        return _Records(
            str(path), "table", columns, len(columns), rest, delimiter=delimiter, first=second and second[1]
        )
    return _Records(
        str(path), "table", None, len(first[1]), _chain(first, rows), delimiter=delimiter, first=first[1]
    )


def _chain(first: tuple[str, Record], rest: Iterator[tuple[str, Record]]) -> Iterator[tuple[str, Record]]:
    yield first
    yield from rest


def _check_delimiter(path: Path, fmt: str, first: list[str]) -> None:
    """A single column whose first row holds the other format's delimiter: the file was misread."""
    if len(first) != 1:
        return
    cell = first[0]
    if fmt == "csv" and "\t" in cell:
        raise DataError(
            f"{path} was read as csv, but it looks tab-separated (its first line has tabs, the tsv delimiter, "
            "and no commas): read it as tsv (fmt='tsv', or name it .tsv)"
        )
    if fmt == "tsv" and any(c.strip().lower() in _HEADER_WORDS for c in cell.split(",")[:8]) and "," in cell:
        raise DataError(
            f"{path} was read as tsv, but it looks comma-separated (its first line {cell[:60]!r} has commas "
            "and no tabs): read it as csv (fmt='csv', or name it .csv)"
        )


def _table_rows(path: Path, fmt: str) -> Iterator[tuple[str, list[str]]]:
    # Long documents (IMDB-sized reviews) exceed the csv module's default 128 KiB cell limit.
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
    with path.open(encoding="utf-8-sig", newline="") as f:
        # GLUE sentences contain lone `"`; with quote handling they would swallow the following lines.
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if fmt == "tsv" else csv.reader(f)
        try:
            for row in reader:
                # A blank line is no row (as pandas reads it); a row of empty cells ("," or "") is one.
                if len(row) > 1 or (row and row[0].strip()):
                    yield f"line {reader.line_num} of {path}", row
        except csv.Error as err:
            raise DataError(
                f"{path} line {reader.line_num} is not valid {fmt}: {err}; fix that line"
            ) from None


def _decide_header(
    path: Path,
    fields: Mapping[str, Column] | None,
    label: Column | None,
    header: bool | None,
    first: list[str],
) -> bool:
    names = [c for c in (*(fields or {}).values(), label) if isinstance(c, str)]
    if names:
        if header is False:
            raise DataError(
                f"columns are given by name ({', '.join(map(repr, names))}) but header=False for {path}: "
                "use 0-based column indices, or header=True if the first row holds column names"
            )
        return True
    if header is not None:
        return header
    # Also with columns given by index: a first row of column names (sentence, label, ...) is a header,
    # never data (`--label-column 1` on a file with a header must not read "label" as a label).
    return any(cell.strip().lower() in _HEADER_WORDS for cell in first)


def _open_json(path: Path, fmt: str) -> _Records:
    if fmt == "jsonl":
        rows = _jsonl_rows(path)
        first = next(rows, None)
        if first is None:
            raise DataError(f"{path} is empty: it has no JSON lines to read")
        return _Records(str(path), "json", _keys(first[1]), len(first[1]), _chain(first, rows))

    text = path.read_text(encoding="utf-8-sig")
    if not text.strip():
        raise DataError(f"{path} is empty: it has no JSON to read")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(
            f"{path} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}; fix the file "
            "(if it holds one object per line, name it .jsonl or pass fmt='jsonl')"
        ) from None
    items = _json_items(path, data)
    if not items:
        raise DataError(f"{path} holds no records: add some, or check that it is the file you meant")
    return _Records(str(path), "json", _keys(items[0][1]), len(items[0][1]), iter(items))


def _jsonl_rows(path: Path) -> Iterator[tuple[str, Record]]:
    with path.open(encoding="utf-8-sig") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(
                    f"{path} line {n} is not valid JSON ({err.msg} at column {err.colno}): fix that line; "
                    "a .jsonl file needs exactly one JSON object per line"
                ) from None
            if not isinstance(obj, dict | list):
                raise DataError(
                    f"{path} line {n} holds a {type(obj).__name__}, not a JSON object: write one object "
                    'per line, e.g. {"text": "...", "label": "0"}'
                )
            yield f"line {n} of {path}", obj


def _json_items(path: Path, data: Any) -> list[tuple[str, Record]]:
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if isinstance(data, list):
        items: list[tuple[str, Record]] = [(f"record [{i}] of {path}", rec) for i, rec in enumerate(data)]
    elif isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
        items = [(f"record {key!r} of {path}", rec) for key, rec in data.items()]
    elif (
        isinstance(data, dict)
        and data
        and all(isinstance(v, list) for v in data.values())
        and len({len(v) for v in data.values()}) == 1
    ):
        cols = list(data)
        n = len(data[cols[0]])
        items = [(f"record [{i}] of {path}", {c: data[c][i] for c in cols}) for i in range(n)]
    elif isinstance(data, dict) and not data:
        items = []
    else:
        raise DataError(
            f'{path} is JSON but not a layout promptft reads: use a list of objects, {{"data": [...]}}, '
            'an id -> object mapping, or equal-length columns {"text": [...], "label": [...]}'
        )
    for loc, rec in items:
        if not isinstance(rec, dict | list):
            raise DataError(
                f"{loc} is a {type(rec).__name__}, not a JSON object: make every record an object"
            )
    return items


def _keys(rec: Record) -> list[str] | None:
    return list(rec) if isinstance(rec, Mapping) else None


HF_PREFIX = "hf:"


def names_dataset(source: Any) -> bool:
    """Whether a data path names a Hugging Face dataset (`hf:...`, or a folder saved by `datasets`) rather
    than a file, without loading it."""
    if not isinstance(source, str | os.PathLike):
        return False
    path = Path(os.fspath(source))
    saved = (path / "state.json").is_file() and (path / "dataset_info.json").is_file()
    return os.fspath(source).startswith(HF_PREFIX) or (
        path.is_dir() and (saved or (path / "dataset_dict.json").is_file())
    )


def dataset_source(source: Any) -> Any:
    """The `datasets.Dataset` a data path names, or None when it names a file: `hf:NAME:SPLIT` or
    `hf:NAME:CONFIG:SPLIT` (`datasets.load_dataset`: a hub id needs a network, a local dataset folder does
    not), or a folder written by `Dataset.save_to_disk`. This is how the command line and job files take a
    Hugging Face dataset wherever they take a data file."""
    if not names_dataset(source):
        return None
    text = os.fspath(source)
    if text.startswith(HF_PREFIX):
        parts = text[len(HF_PREFIX) :].split(":")
        if len(parts) not in (2, 3) or not all(p.strip() for p in parts):
            raise DataError(
                f"{text!r}: write hf:NAME:SPLIT or hf:NAME:CONFIG:SPLIT, e.g. hf:stanfordnlp/sst2:train or "
                "hf:nyu-mll/glue:sst2:validation"
            )
        name, config, split = (parts[0], None, parts[1]) if len(parts) == 2 else parts
        import datasets

        try:
            return datasets.load_dataset(name, config, split=split)
        except Exception as exc:  # the hub, a script or a split name: say which, without a traceback
            reason = " ".join(str(exc).split())[:300]
            raise DataError(
                f"cannot load {text} ({type(exc).__name__}: {reason}): check the name, config and split, and "
                "the network for a hub dataset; offline, save it once with Dataset.save_to_disk(FOLDER) and "
                "point at FOLDER"
            ) from None
    path = Path(text)
    if (path / "dataset_dict.json").is_file():
        splits = json.loads((path / "dataset_dict.json").read_text()).get("splits", [])
        example = path / splits[0] if splits else path / "train"
        raise DataError(
            f"{path} holds a DatasetDict with splits {splits}: point at one split, e.g. {example}"
        )
    import datasets

    return datasets.load_from_disk(str(path))


def _open_dataset(source: Any, limit: int | None) -> _Records:
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        datasets = None
    if datasets is None or not isinstance(source, datasets.Dataset):
        if datasets is not None and isinstance(source, datasets.DatasetDict):
            raise DataError(
                f"got a DatasetDict with splits {list(source)}: pass one split, "
                f"e.g. ds[{next(iter(source))!r}]"
            )
        raise DataError(
            f"source must be a file path (str or Path) or a datasets.Dataset, got {type(source).__name__}"
        )
    if len(source) == 0:
        raise DataError("the dataset has no rows: pass a non-empty split")
    if limit is not None and limit < len(source):
        source = source.select(range(limit))
    columns = list(source.column_names)
    # A ClassLabel column, or a list of them (multi-label datasets such as GoEmotions' `labels`).
    class_names = {}
    for name, feat in source.features.items():
        inner = getattr(feat, "feature", feat)
        if isinstance(inner, datasets.ClassLabel):
            class_names[name] = list(inner.names)
    rows = ((f"row {i} of the dataset", row) for i, row in enumerate(source))
    return _Records("the dataset", "dataset", columns, len(columns), rows, class_names)
