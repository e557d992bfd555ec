"""The predict recipe: classify a file with a saved classifier and write every input row with its
prediction (csv, tsv or jsonl), checking the output can be written before any work."""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from promptft.data.readers import Row
from promptft.data.splits import check_empty, read_split_rows
from promptft.errors import DataError, PromptFTError
from promptft.recipes.run_dir import check_new_file, check_writable

PREDICTION_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl"}
_TSV_BREAKS = re.compile(r"[\t\r\n]+")


def prediction_format(path: str | Path) -> str:
    fmt = PREDICTION_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise DataError(
            f"cannot tell the output format of {path} from its suffix: name it .csv, .tsv or .jsonl"
        )
    return fmt


def check_output(path: str | Path, overwrite: bool = False) -> None:
    """Fail before any work when the predictions could not be written to `path`."""
    path = Path(path)
    prediction_format(path)
    if path.is_dir():
        raise PromptFTError(f"{path} is a folder: give a file name ending in .csv, .tsv or .jsonl")
    check_new_file(path, "the predictions file", overwrite)
    if path.exists():
        check_writable(path.parent, "the output folder")  # the file is replaced through a temporary one


def prediction_columns(input_columns: Sequence[str], labels: Sequence[str]) -> tuple[str, list[str]]:
    """The names of the predicted label's column and of the probability columns: `label` and
    `prob_<label>`, each prefixed with `pred_` (again if needed) when the input has a column of that name."""
    taken = set(input_columns)

    def free(name: str) -> str:
        while name in taken:
            name = "pred_" + name
        taken.add(name)
        return name

    return free("label"), [free(f"prob_{label}") for label in labels]


def prediction_rows(
    clf,
    rows: Sequence[Row],
    batch_size: int = 32,
    progress: bool = False,
    skip: Sequence[int] = (),
    label_separator: str = ",",
) -> list[dict[str, Any]]:
    """One dict per input row, in order: the row's own columns, the predicted label and a probability
    per label (see `prediction_columns`). Rows in `skip` keep their columns with empty predictions.

    Multi-label: `label` is the predicted label set joined by `label_separator` (empty when no label
    reaches its threshold) and `prob_<label>` each label's own probability; regression: one `value`."""
    columns = list(dict.fromkeys(c for row in rows for c in row.cells))
    objective = clf.objective
    skipped = set(skip)
    todo = [i for i in range(len(rows)) if i not in skipped]
    if objective.name == "regression":
        return _value_rows(clf, rows, columns, todo, batch_size)
    label_col, prob_cols = prediction_columns(columns, clf.labels)
    probs = clf.predict_proba([rows[i].example for i in todo], batch_size, progress)
    thresholds = getattr(objective, "thresholds", None) if objective.name == "multi_label" else None
    by_row = dict(zip(todo, probs, strict=True))
    out = []
    for i, row in enumerate(rows):
        record: dict[str, Any] = {c: row.cells.get(c, "") for c in columns}
        p = by_row.get(i)
        if p is None:
            record[label_col] = ""
        elif thresholds is not None:
            chosen = [label for label, q, t in zip(clf.labels, p, thresholds, strict=True) if q >= t]
            record[label_col] = label_separator.join(chosen)
        else:
            record[label_col] = clf.labels[int(p.argmax())]
        for col, j in zip(prob_cols, range(len(clf.labels)), strict=True):
            record[col] = "" if p is None else round(float(p[j]), 6)
        out.append(record)
    return out


def _value_rows(clf, rows: Sequence[Row], columns: list[str], todo: list[int], batch_size: int):
    """Regression: the input's columns and the predicted `value` (`pred_value` if the input has one)."""
    value_col = "value"
    while value_col in columns:
        value_col = "pred_" + value_col
    values = clf.predict([rows[i].example for i in todo], batch_size) if todo else []
    by_row = dict(zip(todo, values, strict=True))
    out = []
    for i, row in enumerate(rows):
        record: dict[str, Any] = {c: row.cells.get(c, "") for c in columns}
        record[value_col] = round(float(by_row[i]), 6) if i in by_row else ""
        out.append(record)
    return out


def write_predictions(rows: Sequence[Mapping[str, Any]], path: str | Path, overwrite: bool = False) -> None:
    """Write rows as csv, tsv or jsonl (from the suffix); never replaces a file unless `overwrite`.

    Written to a temporary file first, so an existing file is replaced only by a complete one."""
    path = Path(path)
    fmt = prediction_format(path)
    check_output(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as f:
            _write_rows(f, fmt, rows)
        if path.exists() and not overwrite:  # appeared while we predicted
            raise PromptFTError(f"{path} already exists: choose another --output, or pass --overwrite")
        tmp.replace(path)
    except PermissionError as err:
        raise PromptFTError(f"cannot write {path}: {err.strerror}; choose a place you can write to") from None
    finally:
        tmp.unlink(missing_ok=True)


def _write_rows(f, fmt: str, rows: Sequence[Mapping[str, Any]]) -> None:
    columns = list(rows[0]) if rows else ["label"]
    if fmt == "jsonl":
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    if fmt == "tsv":  # as GLUE files: no quoting, so tabs and line breaks inside cells become spaces
        f.write("\t".join(columns) + "\n")
        for row in rows:
            f.write("\t".join(_TSV_BREAKS.sub(" ", str(row[c])) for c in columns) + "\n")
        return
    writer = csv.DictWriter(f, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)


def predict(
    model_dir: str | Path,
    input: str | Path,
    output: str | Path,
    *,
    columns: Mapping[str, Any] | None = None,
    empty: str = "keep",
    batch_size: int = 32,
    device: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
    chunk_size: int | None = None,
    resume: bool = True,
) -> int:
    """Classify `input` with a saved classifier (or an exported ONNX folder / .onnx file) and write one
    row per input row to `output` (its columns, then `label` and `prob_<label>`; multi-label: the label set
    and each label's probability; regression: `value`); returns the number of rows written. The output,
    the input and the device are checked before the model loads; `columns` changes the column spec (see
    `evaluate`).

    `chunk_size`: stream the file `chunk_size` rows at a time (memory stays that of one chunk), resumable
    after an interruption (`resume`, see `promptft.deploy.bulk`) and data-parallel under `accelerate
    launch` with the output in input order; csv/tsv/jsonl inputs."""
    from promptft.recipes.evaluate import load, prepare, require_file

    check_output(output, overwrite)  # before the model loads
    require_file(input)
    folder, saved, spec = prepare(model_dir, device, **dict(columns or {}))
    if chunk_size is not None:
        return _predict_streamed(
            folder,
            saved,
            spec,
            input,
            output,
            empty,
            batch_size,
            device,
            chunk_size,
            resume,
            progress,
            overwrite,
        )
    rows = read_split_rows(input, spec.reader_options(), labelled=False)
    what = "predicted from the template alone" if empty == "keep" else "kept with an empty prediction"
    skip = check_empty(rows, input, empty, what)
    clf = load(folder, device)
    separator = saved["task"].label_separator
    predictions = prediction_rows(
        clf, rows, batch_size, progress, skip=skip if empty == "skip" else (), label_separator=separator
    )
    write_predictions(predictions, output, overwrite)
    return len(predictions)


def _predict_streamed(
    folder, saved, spec, input, output, empty, batch_size, device, chunk_size, resume, progress, overwrite
) -> int:
    from promptft.data.readers import iter_rows
    from promptft.deploy.bulk import render_rows, stream_predictions
    from promptft.recipes.evaluate import load

    if chunk_size < 1:
        raise PromptFTError(f"--chunk-size must be at least 1, got {chunk_size}")
    output = Path(output)
    fmt = prediction_format(output)
    rank, world, device = _process_group(device)
    options = spec.reader_options()
    try:
        rows = iter_rows(input, fields=options["fields"], header=options["header"], fmt=options["fmt"])
    except DataError as err:
        from promptft.data.splits import cli_wording

        raise DataError(cli_wording(str(err))) from None
    clf = load(folder, device)
    separator = saved["task"].label_separator
    what = "predicted from the template alone" if empty == "keep" else "kept with an empty prediction"

    def predict_chunk(chunk: list[Row]) -> list[dict[str, Any]]:
        if not chunk:
            return []
        skip = check_empty(chunk, input, empty, what)
        return prediction_rows(
            clf, chunk, batch_size, skip=skip if empty == "skip" else (), label_separator=separator
        )

    report = None
    if progress and rank == 0:
        from rich.console import Console

        console = Console(stderr=True)

        def report(done: int) -> None:
            console.print(f"predicted {done} rows", markup=False, highlight=False)

    written = stream_predictions(
        rows,
        output,
        input=Path(input),
        model=str(Path(folder).resolve()),
        predict_chunk=predict_chunk,
        render=render_rows(fmt),
        chunk_size=chunk_size,
        resume=resume,
        rank=rank,
        world=world,
        progress=report,
        overwrite=overwrite,
    )
    _close_process_group(world)
    return written


def _close_process_group(world: int) -> None:
    """After a finished run, the processes leave together and take the process group down: a process
    that exits with the group still up can abort in gloo's teardown ("terminate called without an active
    exception", exit -6) while another one still uses it. (After an error there is no barrier: the other
    process may never reach it; the launcher stops it.)"""
    if world <= 1:
        return
    from accelerate.state import PartialState

    # the group's creator (`_process_group`) closes it: its barrier passes each GPU process its own device
    state = PartialState()
    state.wait_for_everyone()
    state.destroy_process_group()


def _process_group(device: str | None) -> tuple[int, int, str | None]:
    """(rank, world size, device): (0, 1, device) alone; under `accelerate launch` / `torchrun`, this
    process's place and, without --device, its own device (GPU i for process i)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, device
    import torch
    from accelerate.state import PartialState

    cpu = device == "cpu" or (device is None and not torch.cuda.is_available())
    state = PartialState(cpu=cpu)
    return state.process_index, state.num_processes, device or str(state.device)
