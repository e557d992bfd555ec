"""The evaluate recipe: score a saved classifier (a run folder or its best/) on a labelled file.

The data file is read and checked (columns, labels, empty texts) before the model loads (~seconds).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from promptft.config import DataConfig, JobConfig, TaskConfig
from promptft.data import label_names
from promptft.data.readers import Row
from promptft.data.sources import names_dataset
from promptft.data.splits import check_empty, read_split_rows
from promptft.errors import DataError, ModelError
from promptft.prompts.template import Template
from promptft.recipes.run_dir import JOB_FILE, classifier_dir


def saved_classifier(model_dir: str | Path) -> dict[str, Any]:
    """What a saved classifier's config says (labels, fields, ...), read without loading the model."""
    from promptft.classifiers import CONFIG_FILE

    path = Path(model_dir) / CONFIG_FILE
    if not path.exists():
        raise ModelError(f"{model_dir} holds no {CONFIG_FILE}: point at a folder written by save_pretrained")
    config = json.loads(path.read_text())
    # a yes/no question's {label} is not a data field
    if config.get("type") in ("prompt", "yes_no", "channel"):
        fields = Template(config["template"]).fields
        config["fields"] = [f for f in fields if not (config["type"] == "yes_no" and f == "label")]
    return config


def refuse_ensemble(folder: str | Path, doing: str) -> None:
    """A clear error where a saved ensemble cannot go (ONNX export, pruning act on one backbone)."""
    config = saved_classifier(folder)
    if config.get("type") == "ensemble":
        members = ", ".join(config.get("members") or [])
        raise ModelError(
            f"{folder} holds an ensemble of several classifiers ({members}), and {doing} works on one: "
            f"give one member's folder ({Path(folder) / 'members'}/<name>), or distil the ensemble into one "
            f"model first (promptft distill --teacher {folder})"
        )


def data_config_for(
    model_dir: str | Path, fields_of: Sequence[str] = (), saved_data: Mapping[str, Any] | None = None
) -> DataConfig:
    """The column spec to read new data for a trained classifier: that of the job which trained it (its
    job.yaml next to best/), else the one its saved config records (`saved_data`: an ensemble's, from its
    members' job), else fields named like the classifier's fields (`text` is found as usual)."""
    model_dir = Path(model_dir)
    for candidate in (model_dir / JOB_FILE, model_dir.parent / JOB_FILE):
        if candidate.is_file():
            data = JobConfig.from_yaml(candidate).data
            return DataConfig(
                fields=data.fields, label=data.label, label_map=data.label_map, header=data.header
            )
    if saved_data:
        return DataConfig.parse(dict(saved_data))
    fields_of = tuple(fields_of)
    if not fields_of or fields_of == ("text",):
        return DataConfig()
    return DataConfig(fields={f: f for f in fields_of})


def task_for(model_dir: str | Path, saved: Mapping[str, Any]) -> TaskConfig:
    """How to read labels for a trained classifier: the task of the job that trained it (its job.yaml),
    else the one its saved objective implies (multi-label with comma-separated labels, regression)."""
    model_dir = Path(model_dir)
    for candidate in (model_dir / JOB_FILE, model_dir.parent / JOB_FILE):
        if candidate.is_file():
            return JobConfig.from_yaml(candidate).task
    return TaskConfig.from_objective(saved.get("objective"))


def check_known_labels(rows: Sequence[Row], labels: Sequence[str], path: str | Path) -> None:
    """Every label in the data must be one the classifier knows (checked before the model loads); a
    multi-label set's every label; regression targets are numbers and were range-checked when read."""
    unknown = sorted(set(label_names(row.example for row in rows)) - set(labels))
    if unknown:
        raise DataError(
            f"{path}: unknown label {unknown[0]!r}: this classifier knows {list(labels)}; fix the label map "
            "(--label-map) or the data"
        )


def evaluate_file(clf, path: str | Path, data: DataConfig, batch_size: int = 32, progress: bool = False):
    """The objective's metrics (single-label: accuracy, macro-F1, n) of a loaded classifier on a file."""
    task = TaskConfig.from_objective(clf.objective.to_dict())
    rows = read_split_rows(path, {**data.reader_options(), "task": task.reader_task()})
    check_known_labels(rows, clf.labels, path)
    return clf.evaluate([row.example for row in rows], batch_size, progress)


def require_file(path: str | Path) -> None:
    """Fail on a missing data file before a model is loaded (`hf:NAME:SPLIT` names a dataset, not a file)."""
    if not names_dataset(path) and not Path(path).exists():
        raise DataError(f"data file not found: {path} (looked at {Path(path).resolve()}): check the path")


def prepare(
    model_dir: str | Path, device: str | None, **given: Any
) -> tuple[Path, dict[str, Any], DataConfig]:
    """Everything eval and predict can check without the model (~seconds to load): the folder, the
    device, and the data spec (the job's columns, then `given`, e.g. from flags; None values are left
    out). Returns (classifier folder, saved config, data spec); the saved config's `task` is the
    `TaskConfig` to read labels with (`task_for`)."""
    from promptft.deploy.onnx_runtime import is_onnx, onnx_saved_config
    from promptft.models.loading import check_device

    if is_onnx(model_dir):  # an exported ONNX folder (or its .onnx file): `load` runs it on onnxruntime
        folder, saved = Path(model_dir), onnx_saved_config(model_dir)
        data = data_config_for(saved["folder"], saved.get("fields", ()))
        saved["task"] = task_for(saved["folder"], saved)
        changes = {k: v for k, v in given.items() if v is not None}
        return folder, saved, DataConfig.parse({**data.to_dict(), **changes})
    folder = classifier_dir(model_dir)
    saved = saved_classifier(folder)
    check_device(device)
    data = data_config_for(folder, saved.get("fields", ()), saved.get("data"))
    saved["task"] = task_for(folder, saved)
    changes = {k: v for k, v in given.items() if v is not None}
    return folder, saved, DataConfig.parse({**data.to_dict(), **changes})


def load(folder: Path, device: str | None):
    """The classifier in `folder`: a saved one, or an exported ONNX folder / .onnx file (onnxruntime, CPU)."""
    from promptft.classifiers import load_classifier
    from promptft.deploy.onnx_runtime import OnnxClassifier, is_onnx

    if is_onnx(folder):
        return OnnxClassifier(folder)
    return load_classifier(folder, device=device)


def evaluate(
    model_dir: str | Path,
    data: str | Path,
    *,
    columns: Mapping[str, Any] | None = None,
    empty: str = "keep",
    batch_size: int = 32,
    device: str | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """The metrics of a saved classifier (a run folder or its best/) on a labelled file: accuracy, macro-F1
    and n (single-label); macro/micro-F1, subset accuracy, f1_<label> (multi-label); pearson, spearman,
    mse (regression).

    `columns`: changes to the column spec (`DataConfig` fields: fields, label, label_map, header,
    format), which defaults to that of the job that trained the model. `empty`: rows with an empty text
    are kept (with a warning), skipped, or an error. Everything is checked before the model loads."""
    require_file(data)
    folder, saved, spec = prepare(model_dir, device, **dict(columns or {}))
    rows = read_split_rows(data, {**spec.reader_options(), "task": saved["task"].reader_task()})
    check_known_labels(rows, saved["labels"], data)
    skip = set(check_empty(rows, data, empty, "scored like the others" if empty == "keep" else "not scored"))
    if empty == "skip":
        rows = [row for i, row in enumerate(rows) if i not in skip]
    clf = load(folder, device)
    return clf.evaluate([row.example for row in rows], batch_size, progress)
