"""Bulk prediction of files too large to hold: streamed, resumable, data-parallel.

The input is read a chunk at a time (`readers.iter_rows`) and each chunk's predictions are appended to
`<output>.partial`; after every chunk a progress marker `<output>.progress.json` (rows done, bytes of
output written, which input and model) is replaced atomically. Memory stays that of one chunk however
long the file. A rerun after an interruption cuts the partial output back to the marker's byte count
(a chunk half-written when the process died is dropped) and skips the rows already done; the finished
output is renamed into place and the marker removed.

Under `accelerate launch` / `torchrun` every process reads the stream, predicts its slice of each chunk
(rows `rank::world`), and the main process gathers the slices and writes them in input order.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptft.data.readers import Row
from promptft.errors import PromptFTError

log = logging.getLogger(__name__)


def partial_path(output: Path) -> Path:
    return output.with_name(output.name + ".partial")


def marker_path(output: Path) -> Path:
    return output.with_name(output.name + ".progress.json")


@dataclass
class Progress:
    rows_done: int = 0
    bytes_written: int = 0
    columns: list[str] | None = None


def _fingerprint(input: Path, model: str) -> dict[str, Any]:
    stat = input.stat()
    return {
        "input": str(input.resolve()),
        "input_size": stat.st_size,
        "input_mtime": stat.st_mtime,
        "model": model,
    }


def read_progress(output: Path, input: Path, model: str) -> Progress | None:
    """The progress of an interrupted run on the same input and model, or None (start afresh)."""
    marker, partial = marker_path(output), partial_path(output)
    if not marker.exists() or not partial.exists():
        return None
    try:
        data = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if {k: data.get(k) for k in ("input", "input_size", "input_mtime", "model")} != _fingerprint(
        input, model
    ):
        log.warning("%s belongs to another input or model: starting %s afresh", marker, output)
        return None
    if partial.stat().st_size < data["bytes_written"]:
        return None  # the partial file lost data the marker counts: nothing to trust
    return Progress(data["rows_done"], data["bytes_written"], data.get("columns"))


def write_marker(output: Path, input: Path, model: str, progress: Progress) -> None:
    marker = marker_path(output)
    tmp = marker.with_name(marker.name + ".tmp")
    data = {
        **_fingerprint(input, model),
        "rows_done": progress.rows_done,
        "bytes_written": progress.bytes_written,
    }
    data["columns"] = progress.columns
    tmp.write_text(json.dumps(data))
    os.replace(tmp, marker)


def chunks(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


def stream_predictions(
    rows: Iterator[Row],
    output: Path,
    *,
    input: Path,
    model: str,
    predict_chunk: Callable[[list[Row]], list[dict[str, Any]]],
    render: Callable[[list[dict[str, Any]], list[str], bool], str],
    chunk_size: int = 4096,
    resume: bool = True,
    rank: int = 0,
    world: int = 1,
    progress: Callable[[int], None] | None = None,
    overwrite: bool = False,
) -> int:
    """Predict `rows` chunk by chunk into `output` (see the module docstring); returns the rows written.

    `predict_chunk(rows)` -> one record per row (this process's share); `render(records, columns,
    header)` -> their text. Only the main process (`rank` 0) writes."""
    from promptft.training.distributed import all_gather, broadcast

    partial = partial_path(output)
    state = None
    if rank == 0:
        state = read_progress(output, input, model) if resume else None
        if state is None:
            state = Progress()
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(b"")
        else:
            with partial.open("r+b") as f:
                f.truncate(state.bytes_written)  # drop a chunk half-written when the last run died
            log.info("resuming %s: %d rows already done", output, state.rows_done)
    state = broadcast(state, world)
    done = state.rows_done
    for _ in itertools.islice(rows, done):  # skip the rows already written (read, not predicted)
        pass
    handle = partial.open("ab") if rank == 0 else None
    try:
        for chunk in chunks(rows, chunk_size):
            mine = list(range(rank, len(chunk), world))
            records = predict_chunk([chunk[i] for i in mine])
            gathered = all_gather(list(zip(mine, records, strict=True)), world)
            if rank == 0:
                ordered = [
                    rec for _, rec in sorted(itertools.chain.from_iterable(gathered), key=lambda p: p[0])
                ]
                if state.columns is None:
                    state.columns = list(ordered[0]) if ordered else ["label"]
                text = render(ordered, state.columns, state.rows_done == 0)
                handle.write(text.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
                state.rows_done += len(chunk)
                state.bytes_written = handle.tell()
                write_marker(output, input, model, state)
            else:
                state.rows_done += len(chunk)
            if progress is not None:
                progress(state.rows_done)
    finally:
        if handle is not None:
            handle.close()
    if rank == 0:
        if output.exists() and not overwrite:
            raise PromptFTError(
                f"{output} appeared while predicting: the finished predictions are in {partial}"
            )
        os.replace(partial, output)
        marker_path(output).unlink(missing_ok=True)
    return state.rows_done


def render_rows(fmt: str) -> Callable[[list[dict[str, Any]], list[str], bool], str]:
    """A renderer for `stream_predictions`: csv, tsv (GLUE style, no quoting) or jsonl."""
    import re

    breaks = re.compile(r"[\t\r\n]+")

    def render(records: list[dict[str, Any]], columns: list[str], header: bool) -> str:
        buf = io.StringIO()
        if fmt == "jsonl":
            for rec in records:
                buf.write(json.dumps(rec, ensure_ascii=False) + "\n")
        elif fmt == "tsv":
            if header:
                buf.write("\t".join(columns) + "\n")
            for rec in records:
                buf.write("\t".join(breaks.sub(" ", str(rec.get(c, ""))) for c in columns) + "\n")
        else:
            writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", restval="")
            if header:
                writer.writeheader()
            writer.writerows(records)
        return buf.getvalue()

    return render
