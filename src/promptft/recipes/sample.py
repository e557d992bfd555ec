"""`promptft data sample`: LM-BFF-style few-shot splits of one labelled file, written in that file's format.

    from promptft.recipes.sample import sample_file

    splits = sample_file("reviews.csv", k=16, seeds=[13, 21, 42], output="splits", spec={"label": "stars"})

For each seed, `<output>/<k>-<seed>/` gets `train.<ext>` and `dev.<ext>` (the sampled rows as they were:
every column, and the header when the file has one, so the column options that read the file read them)
and `sample.json` (what was drawn from what, with the per-label counts). Single-label data gets k rows per
class in train and dev_k (default k) more in dev (`promptft.data.sample_k_shot`); multi-label data at least
k rows per label in each (`sample_multi_label`, dev drawn from what train left). Existing splits are kept:
the command stops before writing anything unless `overwrite`.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from promptft.data import TaskSpec, sample_k_shot, sample_multi_label
from promptft.data.readers import Row, table_header
from promptft.data.sources import names_dataset
from promptft.data.splits import read_split_rows
from promptft.errors import DataError
from promptft.recipes.run_dir import check_new_file
from promptft.version import __version__

RECORD_FILE = "sample.json"


def split_folder(output: str | Path, k: int, seed: int) -> Path:
    """Where one seed's split goes: `<output>/<k>-<seed>`, the layout of LM-BFF's k-shot data."""
    return Path(output) / f"{k}-{seed}"


def sample_file(
    path: str | Path,
    k: int,
    seeds: Sequence[int],
    output: str | Path,
    *,
    dev_k: int | None = None,
    spec: Mapping[str, Any] | None = None,
    task: str = "single_label",
    labels: Sequence[str] | None = None,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Sample one train/dev split per seed from the labelled file `path` (read with the column `spec`:
    `fields`, `label`, `label_map`, `header`, `fmt`) and write them under `output`; returns each split's
    record (also written as `sample.json`). `labels` restricts the classes sampled (names after the map)."""
    if task == "regression":
        raise DataError(
            "few-shot sampling draws k examples per class, and regression targets have no classes: take a "
            "random subset of the file instead"
        )
    if not seeds:
        raise DataError("no seeds given: pass at least one, e.g. --seeds 13,21,42,87,100")
    spec = dict(spec or {})
    dev_k = k if dev_k is None else dev_k
    fmt = Path(path).suffix.lower().lstrip(".") if spec.get("fmt") is None else str(spec["fmt"]).lower()
    # A JSON array comes back as JSON lines, and so does a Hugging Face dataset (its rows are dicts).
    suffix = "jsonl" if fmt == "json" or names_dataset(path) else fmt
    for seed in seeds:  # nothing is written while anything would be replaced
        folder = split_folder(output, k, seed)
        for name in (f"train.{suffix}", f"dev.{suffix}", RECORD_FILE):
            check_new_file(folder / name, f"the {seed} split", overwrite)  # also: can it be written?
    rows = read_split_rows(path, {**spec, "task": TaskSpec(task)})
    header = table_header(
        path,
        fields=spec.get("fields"),
        label=spec.get("label"),
        header=spec.get("header"),
        fmt=spec.get("fmt"),
    )
    examples = [row.example for row in rows]
    row_of = {id(ex): row for ex, row in zip(examples, rows, strict=True)}
    records = []
    for seed in seeds:
        if task == "multi_label":
            train = sample_multi_label(examples, k, seed, labels=labels).examples
            dev = []
            if dev_k:
                dev = sample_multi_label(examples, dev_k, seed, labels=labels, exclude=train).examples
        else:
            train, dev = sample_k_shot(examples, k, seed, dev_k=dev_k, labels=labels)
        folder = split_folder(output, k, seed)
        folder.mkdir(parents=True, exist_ok=True)
        record: dict[str, Any] = {
            "source": str(path),
            "source_rows": len(rows),
            "task": task,
            "k": k,
            "dev_k": dev_k,
            "seed": seed,
            "labels": list(labels) if labels else None,
            "promptft_version": __version__,
        }
        for split, drawn in (("train", train), ("dev", dev)):
            if not drawn:
                continue
            file = folder / f"{split}.{suffix}"
            _write(file, suffix, [row_of[id(ex)] for ex in drawn], header)
            record[split] = {"file": str(file), "rows": len(drawn), "per_label": _per_label(drawn)}
        (folder / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
        records.append(record)
    return records


def _per_label(examples: Sequence[Any]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for ex in examples:
        counts.update(ex.label if isinstance(ex.label, tuple) else [ex.label])
    return dict(sorted(counts.items()))


def _write(path: Path, fmt: str, rows: Sequence[Row], header: list[str] | None) -> None:
    """The rows as they were read, in `fmt`, through a temporary file (a split is never half written)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        if fmt == "jsonl":
            for row in rows:
                f.write(json.dumps(row.cells, ensure_ascii=False) + "\n")
        elif fmt == "tsv":  # as read: a tsv cell holds no tab or line break
            lines = [header] if header else []
            lines += [[str(v) for v in row.cells.values()] for row in rows]
            f.writelines("\t".join(line) + "\n" for line in lines)
        else:
            writer = csv.writer(f, lineterminator="\n")
            if header:
                writer.writerow(header)
            writer.writerows(list(row.cells.values()) for row in rows)
    tmp.replace(path)
