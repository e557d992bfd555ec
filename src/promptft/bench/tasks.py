"""The benchmark's task table (`tasks.yaml`): files, columns, label maps, prompts and the paper's numbers.

Everything task-specific lives in the YAML file; this module only types it and reads the splits.
`load_tasks()` reads the packaged table; pass a path to use another one (tests point at a tiny table).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from promptft.data import Example, read_examples
from promptft.data import TaskSpec as ReadSpec
from promptft.errors import ConfigError, DataError
from promptft.settings import data_dir as default_data_dir

DEV = "dev"  # the test label of a task scored on the seed's dev split

_PUNCT = string.punctuation + " "


def _rstrip_punct(text: str) -> str:
    stripped = text.rstrip(_PUNCT)
    return stripped or text


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


TRANSFORMS = {"rstrip_punct": _rstrip_punct, "lower_first": _lower_first}


@dataclass(frozen=True)
class PromptSpec:
    """One starting prompt: template, label words (label name -> word), per-field text transforms."""

    template: str
    label_words: dict[str, str | list[str]]
    transforms: dict[str, list[str]] = field(default_factory=dict)
    adaptation: str | None = None  # what changed from LM-BFF's original, and why

    def prepare(self, examples: Sequence[Example]) -> list[Example]:
        """Apply the field transforms (LM-BFF's *sent-_0* / *sentl_1*) to examples."""
        if not self.transforms:
            return list(examples)
        out = []
        for ex in examples:
            fields = dict(ex.fields)
            for name, names in self.transforms.items():
                if name in fields:
                    for t in names:
                        fields[name] = TRANSFORMS[t](fields[name])
            out.append(Example(fields, ex.label))
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"template": self.template, "label_words": self.label_words}
        if self.transforms:
            out["transforms"] = self.transforms
        if self.adaptation:
            out["adaptation"] = self.adaptation
        return out


@dataclass(frozen=True)
class TaskSpec:
    key: str  # the id used on the command line and in result paths ("sst-2")
    name: str  # display name ("SST-2")
    format: str  # csv | tsv | jsonl | json
    header: bool | None
    train: str  # path pattern with {k} and {seed}
    dev: str
    test: str | None  # None: hidden test set, scored on dev
    fields: dict[str, str | int]  # template field -> column
    label: str | int
    labels: dict[str, str]  # raw label -> label name
    prompts: dict[str, PromptSpec]  # "masked" / "causal"
    paper: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    dev_only_for: tuple[str, ...] = ()
    # Other task types (issue 10): `type` multi_label or regression; `metrics` the scores reported, the
    # first selecting on dev and summarised (default: accuracy, macro_f1 | macro_f1, micro_f1 | pearson,
    # spearman); `sample_k`: train/dev are whole files, sampled per seed (multi-label: >= k per label).
    type: str = "single_label"
    metrics: tuple[str, ...] = ("accuracy", "macro_f1")
    value_range: tuple[float, float] | None = None
    label_separator: str = ","
    sample_k: int | None = None
    question: str | None = None  # multi-label yes/no per label: the question, with {label} and {mask}
    # PET/iPET (issue 11): `pool` is a file of unlabelled texts of the task (its labels unused; the seed's
    # train and dev examples are left out), None when the task has none; `template_type` names the template
    # library's patterns for the task (promptft/search/template_library.yaml).
    pool: str | None = None
    template_type: str | None = None

    @property
    def metric(self) -> str:
        return self.metrics[0]

    @property
    def label_names(self) -> list[str]:
        """The classifier's labels: the label map's names (a regression prompt's are its two poles)."""
        if self.type == "regression":
            return list(next(iter(self.prompts.values())).label_words)
        return list(dict.fromkeys(self.labels.values()))

    def reader_task(self) -> ReadSpec | None:
        if self.type == "single_label":
            return None
        return ReadSpec(self.type, separator=self.label_separator, value_range=self.value_range)

    def objective(self, labels: Sequence[str] | None = None):
        """The objective of a classifier for this task (`labels`: a head's outputs; default the task's)."""
        from promptft.objectives import get_objective

        labels = list(labels) if labels is not None else self.label_names
        if self.type == "regression":
            return get_objective("regression", labels, value_range=self.value_range)
        return get_objective(self.type, labels)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(self.fields)

    def prompt_for(self, kind: str) -> PromptSpec:
        """The causal adaptation for causal LMs; LM-BFF's original for masked LMs and seq2seq."""
        key = "causal" if kind == "causal" else "masked"
        if key not in self.prompts:
            key = next(iter(self.prompts))
        return self.prompts[key]


@dataclass(frozen=True)
class TaskTable:
    tasks: dict[str, TaskSpec]
    k: int
    seeds: tuple[int, ...]
    paper: dict[str, Any]
    data_dir: Path | None  # from the table itself (relative to its file), else None
    source: str  # where the table was read from
    targets: tuple[dict[str, Any], ...] = ()  # checked by the report; see tasks.yaml

    def select(self, names: Sequence[str] | None) -> list[TaskSpec]:
        """Tasks by key or display name (case-insensitive), in the order given; None = all."""
        if not names:
            return list(self.tasks.values())
        out = []
        for name in names:
            task = self.find(name)
            if task.key not in {t.key for t in out}:
                out.append(task)
        return out

    def find(self, name: str) -> TaskSpec:
        wanted = name.strip().lower()
        for task in self.tasks.values():
            if wanted in (task.key.lower(), task.name.lower()):
                return task
        raise ConfigError(f"unknown task {name!r}: choose from {', '.join(self.tasks)}")

    def resolve_data_dir(self, override: str | Path | None = None) -> Path:
        """The data folder: the override, else the table's own `data_dir`, else settings.data_dir()."""
        path = Path(override).expanduser() if override else self.data_dir or default_data_dir()
        if path is None:
            raise DataError(
                "no benchmark data folder found: set PROMPTFT_DATA=/path/to/shared/data "
                "(or pass --data-dir); it must hold SST-2/, sst-5/, mr/, ... as in shared/data"
            )
        if not Path(path).is_dir():
            raise DataError(f"benchmark data folder {path} does not exist: fix PROMPTFT_DATA or --data-dir")
        return Path(path)


def default_tasks_path() -> Path:
    return Path(str(resources.files("promptft.bench").joinpath("tasks.yaml")))


def load_tasks(path: str | Path | None = None) -> TaskTable:
    """Read a task table (default: the packaged `tasks.yaml`) and check it."""
    path = Path(path) if path else default_tasks_path()
    if not path.exists():
        raise ConfigError(f"task table {path} not found: check the path passed as --tasks-file")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"task table {path} is not valid YAML: {exc}") from None
    if not isinstance(raw.get("tasks"), dict) or not raw["tasks"]:
        raise ConfigError(f"task table {path} has no `tasks:` mapping: declare at least one task")
    tasks = {str(key): _task(str(key), spec, path) for key, spec in raw["tasks"].items()}
    data_dir = raw.get("data_dir")
    return TaskTable(
        tasks=tasks,
        k=int(raw.get("k", 16)),
        seeds=tuple(int(s) for s in raw.get("seeds", (13, 21, 42, 87, 100))),
        paper=dict(raw.get("paper") or {}),
        data_dir=(path.parent / data_dir).resolve() if data_dir else None,
        source=str(path),
        targets=tuple(_target(t, i, path) for i, t in enumerate(raw.get("targets") or [])),
    )


def _target(spec: Any, index: int, path: Path) -> dict[str, Any]:
    where = f"target {index + 1} in {path}"
    if not isinstance(spec, Mapping) or not spec.get("methods") or not spec.get("tasks"):
        raise ConfigError(f"{where} needs `methods:` and `tasks:` lists (see the comment above `targets:`)")
    kinds = [k for k in ("min_margin", "min_mean", "max_time_ratio") if k in spec]
    if len(kinds) != 1:
        raise ConfigError(f"{where} needs exactly one of min_margin, min_mean or max_time_ratio")
    if kinds[0] != "min_mean" and not spec.get("over"):
        raise ConfigError(f"{where}: {kinds[0]} compares against a method: add `over: <method>`")
    return dict(spec)


def _task(key: str, spec: Any, path: Path) -> TaskSpec:
    where = f"task {key!r} in {path}"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where} must be a mapping of options (train, dev, fields, labels, prompts, ...)")
    task_type = str(spec.get("type", "single_label"))
    if task_type not in _METRICS:
        raise ConfigError(f"{where}: type {task_type!r} is unknown: use one of {', '.join(_METRICS)}")
    needed = ("train", "dev", "fields", "label", "label_words", "prompts")
    missing = [k for k in (*needed, *(("labels",) if task_type != "regression" else ())) if k not in spec]
    if missing:
        raise ConfigError(f"{where} lacks {missing}: add them (see the packaged bench/tasks.yaml)")
    if task_type == "regression" and not spec.get("value_range"):
        raise ConfigError(f"{where}: a regression task needs value_range: [low, high]")
    labels = {str(k): str(v) for k, v in (spec.get("labels") or {}).items()}
    words = {str(k): v for k, v in spec["label_words"].items()}
    prompts: dict[str, PromptSpec] = {}
    for kind, p in spec["prompts"].items():
        if kind not in ("masked", "causal"):
            raise ConfigError(f"{where}: prompts.{kind} is unknown: use `masked` and/or `causal`")
        p = {"template": p} if isinstance(p, str) else dict(p)
        transforms = {
            str(f): [t] if isinstance(t, str) else list(t) for f, t in (p.get("transforms") or {}).items()
        }
        for names in transforms.values():
            for t in names:
                if t not in TRANSFORMS:
                    raise ConfigError(f"{where}: unknown transform {t!r}; known: {', '.join(TRANSFORMS)}")
        prompt_words = {str(k): v for k, v in (p.get("label_words") or words).items()}
        uncovered = sorted(set(labels.values()) - set(prompt_words))
        if uncovered:
            raise ConfigError(f"{where}: labels {uncovered} have no label words ({kind} prompt): add them")
        prompts[kind] = PromptSpec(
            template=str(p["template"]),
            label_words=prompt_words,
            transforms=transforms,
            adaptation=p.get("adaptation"),
        )
    paper = {
        m: (float(v[0]), None if v[1] is None else float(v[1])) for m, v in (spec.get("paper") or {}).items()
    }
    return TaskSpec(
        key=key,
        name=str(spec.get("name", key)),
        format=str(spec.get("format") or Path(spec["train"]).suffix.lstrip(".")),
        header=spec.get("header"),
        train=str(spec["train"]),
        dev=str(spec["dev"]),
        test=spec.get("test"),
        fields=dict(spec["fields"]),
        label=spec["label"],
        labels=labels,
        prompts=prompts,
        paper=paper,
        dev_only_for=tuple(spec.get("dev_only_for") or ()),
        type=task_type,
        metrics=tuple(spec.get("metrics") or _METRICS[task_type]),
        value_range=tuple(float(v) for v in spec["value_range"]) if spec.get("value_range") else None,  # type: ignore[arg-type]
        label_separator=str(spec.get("label_separator", ",")),
        sample_k=int(spec["sample_k"]) if spec.get("sample_k") else None,
        question=str(spec["question"]) if spec.get("question") else None,
        pool=str(spec["pool"]) if spec.get("pool") else None,
        template_type=str(spec["template_type"]) if spec.get("template_type") else None,
    )


_METRICS = {
    "single_label": ("accuracy", "macro_f1"),
    "multi_label": ("macro_f1", "micro_f1", "subset_accuracy"),
    "regression": ("pearson", "spearman"),
}


def split_path(task: TaskSpec, split: str, seed: int, k: int, data_dir: Path) -> Path:
    pattern = task.train if split == "train" else task.dev
    return data_dir / pattern.format(k=k, seed=seed)


def read_split(task: TaskSpec, path: str | Path, limit: int | None = None) -> list[Example]:
    """Read one file of a task with its columns and label map."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".") or task.format
    if fmt not in ("csv", "tsv", "jsonl", "json"):
        fmt = task.format
    return read_examples(
        path,
        fields=task.fields,
        label=task.label,
        label_map=task.labels or None,
        header=task.header if fmt in ("csv", "tsv") else None,
        fmt=fmt,
        limit=limit,
        task=task.reader_task(),
    )


def task_metrics(task: TaskSpec, examples: Sequence[Example], predicted: Sequence[Any]) -> dict[str, float]:
    """The task's metrics of predictions (label names, label sets or numbers) against the examples."""
    from promptft.objectives.multi_label import multi_label_metrics
    from promptft.objectives.regression import regression_metrics
    from promptft.objectives.single_label import classification_metrics

    if task.type == "regression":
        return regression_metrics([float(ex.label) for ex in examples], list(predicted))  # type: ignore[arg-type]
    gold = [ex.label for ex in examples]
    if task.type == "multi_label":
        return multi_label_metrics(gold, list(predicted), task.label_names)  # type: ignore[arg-type]
    return classification_metrics(gold, list(predicted), task.label_names)  # type: ignore[arg-type]


def sample_split(task: TaskSpec, examples: list[Example], seed: int) -> list[Example]:
    """A seed's few-shot sample of a whole file (`sample_k` tasks): every label >= k examples (greedy,
    seeded) for multi-label; others keep the file (their splits are pre-made)."""
    if task.sample_k is None or task.type != "multi_label":
        return examples
    from promptft.data import sample_multi_label

    return sample_multi_label(examples, task.sample_k, seed, labels=task.label_names).examples


def parse_test_overrides(items: Sequence[str]) -> dict[str, str]:
    """`["mpqa=/path/test.csv", ...]` -> {"mpqa": "/path/test.csv"}."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(f"--test expects TASK=PATH, e.g. --test mpqa=data/mpqa/test.csv; got {item!r}")
        out[name.strip()] = value.strip()
    return out


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A name usable as one path component."""
    return _SAFE.sub("_", name).strip("._") or "model"
