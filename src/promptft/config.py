"""Job configs: what `promptft train` runs, as typed dataclasses that round-trip to YAML.

A job is data + prompt + model + training settings + a run folder. Each field maps 1:1 onto a CLI flag
(`--train` -> `data.train`, `--lr` -> `train.learning_rate`, ...), and a flag given on the command line wins
over the YAML file (`apply_overrides`). The functions below are the workflow the CLI runs, so a Python user
can do the same thing without the CLI:

    from promptft.config import JobConfig, run_job

    job = JobConfig.from_yaml("examples/sst2_prompt_lora.yaml")
    result = run_job(job)  # trains, keeps the best model in <output>/best, evaluates it on the test file

Relative paths in a config are read relative to the current directory, as paths given on the command line.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import time
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from promptft.adapters import LoraSettings
from promptft.data import Example, label_names
from promptft.data.readers import Row, read_rows
from promptft.errors import (
    ConfigError,
    DataError,
    ModelError,
    PromptFTError,
    RunDirError,
    TemplateError,
    VerbalizerError,
)
from promptft.models.registry import DEFAULT_MODEL
from promptft.prompts.template import Template, escape_template, unescape_template
from promptft.prompts.verbalizer import Verbalizer
from promptft.training.checkpoint import CHECKPOINT, has_checkpoint
from promptft.training.config import TrainConfig
from promptft.training.distributed import is_main_process
from promptft.training.trainer import FINAL, Trainer, TrainResult

log = logging.getLogger(__name__)

JOB_FILE = "job.yaml"
TEST_FILE = "test_metrics.json"
BEST_DIR = "best"
SPLITS = ("train", "dev", "test")
PREDICTION_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl"}
# The learning rate when a job gives none: LoRA adapters start at zero and need far larger steps than
# full fine-tuning (the benchmark's and the examples' values; 1e-5 leaves LoRA at chance in 60 steps).
LEARNING_RATES = {"lora": 3e-4, "full": 1e-5, "none": 1e-5}
EMPTY_POLICIES = ("keep", "skip", "error")
_TSV_BREAKS = re.compile(r"[\t\r\n]+")


# ---------------------------------------------------------------------------------------------------------
# the schema


@dataclass
class DataConfig:
    """Where the examples are and which columns hold what (see `promptft.data.read_examples`)."""

    train: str | None = None
    dev: str | None = None
    test: str | None = None
    # template field -> column name or 0-based index; None: the usual text column (sentence, text, ...)
    fields: dict[str, str | int] | None = None
    # label column; None: `label` when the file has one (or when `fields` names columns)
    label: str | int | None = None
    label_map: dict[str, str] | None = None  # raw label -> label name, e.g. {"0": "negative"}
    header: bool | None = None  # csv/tsv only; None: decided from the columns
    format: str | None = None  # csv | tsv | jsonl | json; None: from the file suffix


@dataclass
class PromptConfig:
    """The template and the label words (ignored by the head baseline)."""

    template: str = "{text} It was {mask}."
    label_words: dict[str, str | list[str]] | None = None  # label name -> word or words
    token_reduction: Literal["sum", "mean"] = "sum"
    word_reduction: Literal["logsumexp", "mean"] = "logsumexp"
    max_length: int = 256


@dataclass
class ModelConfig:
    """Which model, and how it is trained."""

    name: str = DEFAULT_MODEL  # an offline alias, a local model folder or a hub id
    kind: Literal["causal", "masked", "seq2seq"] | None = None  # None: detected from the model config
    method: Literal["prompt", "head"] = "prompt"  # head: standard fine-tuning with a new head (baseline)
    finetune: Literal["full", "lora", "none"] = "full"  # none: zero-shot, no training
    lora: LoraSettings = field(default_factory=LoraSettings)  # used when finetune is "lora"
    device: str | None = None  # None: cuda when available, else cpu


@dataclass
class JobConfig:
    """A whole `promptft train` job."""

    data: DataConfig = field(default_factory=DataConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: str | None = None  # the run folder

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> JobConfig:
        """Build from a plain dict (e.g. parsed YAML); unknown keys and wrong types raise ConfigError.

        Without `train.learning_rate` the rate follows `model.finetune` (`LEARNING_RATES`)."""
        return _from_dict(cls, _with_default_lr(data), "")

    def to_yaml(self, path: str | Path) -> None:
        data = self.to_dict()
        data["prompt"]["template"] = escape_template(data["prompt"]["template"])  # read back by from_yaml
        text = "# promptft job: run it with `promptft train --config <this file>`\n"
        text += yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        Path(path).write_text(text, encoding="utf-8")

    @classmethod
    def from_yaml(cls, path: str | Path) -> JobConfig:
        """Read a job file; its template's `\\n` and `\\t` are a newline and a tab (`unescape_template`)."""
        data = read_job_file(path)
        try:
            return cls.from_dict(data)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None


def read_job_file(path: str | Path) -> dict[str, Any]:
    """A job YAML file as a plain dict, its template unescaped; ConfigError when missing or not YAML."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"config file not found: {path} (looked at {path.resolve()}); check the path, "
            "e.g. examples/sst2_prompt_lora.yaml"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1} column {where.column + 1}" if where is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path} is not valid YAML{at}: {problem}; fix that line") from None
    prompt = data.get("prompt") if isinstance(data, dict) else None
    if isinstance(prompt, dict) and isinstance(prompt.get("template"), str):
        prompt["template"] = unescape_template(prompt["template"])
    return data if data is not None else {}


def load_job(path: str | Path | None, overrides: Mapping[str, Any]) -> JobConfig:
    """The job of a YAML file (or the defaults) with dotted keys set from flags, as `promptft train` builds
    it: a learning rate neither gives follows the fine-tuning mode (`LEARNING_RATES`)."""
    data = read_job_file(path) if path is not None else {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping of key: value, got {data!r}")
    for key, value in overrides.items():
        _set_dotted(data, key, value, create=True)
    try:
        return JobConfig.from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}" if path is not None else str(err)) from None


def _with_default_lr(data: Any) -> Any:
    """`data` with `train.learning_rate` set from `model.finetune` when it gives none."""
    if not isinstance(data, Mapping):
        return data
    train, model = data.get("train") or {}, data.get("model") or {}
    if not isinstance(train, Mapping) or not isinstance(model, Mapping) or "learning_rate" in train:
        return data  # given, or malformed (from_dict names the problem)
    rate = LEARNING_RATES.get(model.get("finetune", ModelConfig.finetune))
    return data if rate is None else {**data, "train": {**train, "learning_rate": rate}}


def _set_dotted(data: dict[str, Any], key: str, value: Any, *, create: bool = False) -> None:
    parts = key.split(".")
    target = data
    for depth, part in enumerate(parts[:-1]):
        if create and target.get(part) is None:
            target[part] = {}
        if not isinstance(target.get(part), dict):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(f"unknown config key {key!r}: {where!r} is not a section")
        target = target[part]
    target[parts[-1]] = value


def apply_overrides(job: JobConfig, overrides: Mapping[str, Any]) -> JobConfig:
    """A new config with dotted keys set, e.g. `{"train.learning_rate": 1e-4, "data.train": "x.tsv"}`.

    Every entry is applied, None included (it sets the field to None): leave out what was not given.
    Dict-valued fields (`data.fields`, `prompt.label_words`, ...) are replaced whole, not merged.
    """
    data = job.to_dict()
    for key, value in overrides.items():
        _set_dotted(data, key, value)
    return JobConfig.from_dict(data)


# ---------------------------------------------------------------------------------------------------------
# dict -> dataclass, with checked types


def _from_dict(cls: type, data: Any, where: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{where or 'the config'} must be a mapping of key: value, got {type(data).__name__} {data!r}"
        )
    names = [f.name for f in fields(cls) if f.init]
    unknown = [k for k in data if k not in names]
    if unknown:
        section = f" of {where!r}" if where else ""
        raise ConfigError(
            f"unknown config key {_join(where, str(unknown[0]))!r}; valid keys{section}: {', '.join(names)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(data[name], hints[name], _join(where, name)) for name in names if name in data}
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}" if where else str(err)) from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"invalid {where or 'config'}: {err}") from None


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check `value` against a type hint (converting the few safe cases YAML needs), or raise ConfigError."""
    if hint is Any:
        return value
    if isinstance(hint, type) and is_dataclass(hint):
        return _from_dict(hint, value, where)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                # A mapping or list that fails inside: report the element that is wrong, not the whole.
                container = typing.get_origin(arg)
                if (container is dict and isinstance(value, Mapping)) or (
                    container is list and isinstance(value, list)
                ):
                    raise err from None
        raise ConfigError(f"{where} must be {_describe(hint)}, got {value!r}{_bool_hint(value, hint)}")
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"{where} must be one of {', '.join(map(repr, args))}, got {value!r}")
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, e.g. {{a: b}}, got {value!r}")
        key_type, value_type = args
        out = {}
        for k, v in value.items():
            if key_type is str and isinstance(k, int) and not isinstance(k, bool):
                k = str(k)  # YAML reads `0: negative` with an int key; label maps mean the raw label "0"
            out[_coerce(k, key_type, where)] = _coerce(v, value_type, f"{where}.{k}")
        return out
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return [_coerce(v, args[0], where) for v in value]
    if hint is str:
        if isinstance(value, str):
            return value
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads `1e-5` (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    raise ConfigError(f"{where} must be {_describe(hint)}, got {value!r}{_bool_hint(value, hint)}")


def _bool_hint(value: Any, hint: Any) -> str:
    if isinstance(value, bool) and "str" in str(hint):
        return ' (YAML reads bare yes/no/on/off as true/false: quote the word, e.g. "Yes")'
    return ""


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin is dict:
        return f"a mapping of {_describe(args[0])} to {_describe(args[1])}"
    if origin is list:
        return "a list of " + _describe(args[0]).removeprefix("a ").removeprefix("an ") + "s"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        hint, "null" if hint is type(None) else getattr(hint, "__name__", str(hint))
    )


# ---------------------------------------------------------------------------------------------------------
# CLI-style values -> config values


def parse_pairs(items: Sequence[str], what: str, example: str) -> dict[str, str]:
    """`["a=1,b=2", "c=3"]` -> `{"a": "1", "b": "2", "c": "3"}` (flags may repeat or hold comma lists)."""
    out: dict[str, str] = {}
    for item in items:
        for part in item.split(","):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise ConfigError(f"bad {what} {part.strip()!r}: write KEY=VALUE, e.g. {example}")
            out[key.strip()] = value.strip()
    return out


def parse_column(value: str) -> str | int:
    """A column given as text: digits are a 0-based index, anything else a column name."""
    value = value.strip()
    return int(value) if value.isdigit() else value


def parse_fields(items: Sequence[str]) -> dict[str, str | int]:
    """`["premise=sentence1", "hypothesis=2"]` -> `{"premise": "sentence1", "hypothesis": 2}`."""
    pairs = parse_pairs(items, "field", "--field text=sentence or --field premise=0")
    return {name: parse_column(col) for name, col in pairs.items()}


def parse_label_words(items: Sequence[str]) -> dict[str, str | list[str]]:
    """`["negative=terrible,positive=great|good"]` -> `{"negative": "terrible", "positive": ["great", "good"]}`."""
    pairs = parse_pairs(items, "label words", "negative=terrible,positive=great|good")
    out: dict[str, str | list[str]] = {}
    for label, value in pairs.items():
        words = [w.strip() for w in value.split("|") if w.strip()]
        if not words:
            raise ConfigError(
                f"label {label!r} has no label word: write e.g. {label}=great or {label}=great|good"
            )
        out[label] = words[0] if len(words) == 1 else words
    return out


# ---------------------------------------------------------------------------------------------------------
# data


def read_split(path: str | Path, data: DataConfig, *, labelled: bool = True) -> list[Example]:
    """Read one file with the column spec of `data` (see `read_split_rows`)."""
    return [row.example for row in read_split_rows(path, data, labelled=labelled)]


def read_split_rows(path: str | Path, data: DataConfig, *, labelled: bool = True) -> list[Row]:
    """Read one file with the column spec of `data`, as rows that keep every column.

    Labelled reads default the label column to `label` when `fields` names columns; an unlabelled read
    (prediction inputs) reads no label at all. Errors are worded for the command line (`--format`, not
    `fmt=`), since these are the reads the CLI does.
    """
    label = data.label
    named = data.fields is not None and all(isinstance(c, str) for c in data.fields.values())
    if labelled and label is None and named:
        label = "label"
    spec = {"fields": data.fields, "header": data.header, "fmt": data.format}
    if labelled:
        spec.update(label=label, label_map=data.label_map)
    try:
        rows = read_rows(path, **spec, labels=labelled)
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


def load_split(data: DataConfig, which: str) -> list[Example] | None:
    """The labelled examples of split `which` (train, dev or test); None when the job has no such file."""
    if which not in SPLITS:
        raise ConfigError(f"unknown split {which!r}: use one of {', '.join(SPLITS)}")
    path = getattr(data, which)
    return read_split(path, data) if path else None  # "" drops a file set elsewhere (--test "")


def job_labels(job: JobConfig, examples: Sequence[Example] = ()) -> list[str]:
    """The classifier's labels, in order: the label words' labels, else the label map's names, else
    the labels found in `examples`."""
    if job.prompt.label_words:
        return list(job.prompt.label_words)
    if job.data.label_map:
        return list(dict.fromkeys(job.data.label_map.values()))
    return label_names(examples)


def head_fields(job: JobConfig) -> tuple[str, ...]:
    """The text fields the head baseline reads: the mapped fields, else just `text`."""
    return tuple(job.data.fields) if job.data.fields else ("text",)


def make_verbalizer(prompt: PromptConfig) -> Verbalizer:
    if not prompt.label_words:
        raise ConfigError(
            "no label words: give a word for each label, e.g. --label-words 'negative=terrible,positive=great' "
            "(or prompt.label_words in the config)"
        )
    return Verbalizer(prompt.label_words, prompt.token_reduction, prompt.word_reduction)


def check_job(job: JobConfig, *, needs_output: bool = True) -> None:
    """Catch configuration mistakes before any data or model is loaded."""
    m = job.model
    if m.method == "prompt":
        Template(job.prompt.template)  # no slot, bad braces, ... raise TemplateError here
        make_verbalizer(job.prompt)
    elif m.finetune == "none":
        raise ConfigError(
            "--finetune none (zero-shot) needs a prompt: the head baseline's new head must be trained; "
            "use --method prompt, or --finetune full|lora"
        )
    if m.finetune != "none" and not job.data.train:
        raise ConfigError(
            "no training file: pass --train PATH (data.train in a config), or --finetune none for zero-shot"
        )
    if needs_output and not job.output:
        raise ConfigError("no run folder: pass --output RUN_DIR (output: in a config)")
    from promptft.models.loading import check_device

    check_device(m.device)
    if needs_output:
        check_writable(job.output, "the run folder")


def check_label_words(job: JobConfig, data_labels: Sequence[str] = ()) -> None:
    """Every label the label words name must be a label of the task: of the label map when there is one,
    else of the data (`data_labels`). Otherwise a stray `neutral=okay` silently adds a class."""
    words = list(job.prompt.label_words or {})
    if job.data.label_map:
        known, source = list(dict.fromkeys(job.data.label_map.values())), "the label map"
    elif data_labels:
        known, source = list(data_labels), "the data"
    else:
        return
    extra = [label for label in words if label not in known]
    if extra:
        raise ConfigError(
            f"--label-words names label(s) {extra} that {source} does not have; the known labels are "
            f"{known}: drop those words, fix their labels, or add the label to the label map (--label-map)"
        )


def check_writable(path: str | Path | None, what: str) -> None:
    """Fail before any work when `path` (a file or folder to create, or to write into) cannot be written:
    the nearest existing folder on its way must be a writable folder, and an existing `path` writable."""
    path = Path(str(path))
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() and existing != path:
        raise PromptFTError(f"cannot create {what} {path}: {existing} is a file, not a folder")
    mode = os.W_OK | os.X_OK if existing.is_dir() else os.W_OK
    if not os.access(existing, mode):
        raise PromptFTError(
            f"cannot write {what} {path}: {existing} is read-only (permission denied); choose a place you "
            "can write to"
        )


def check_data(
    job: JobConfig, splits: Mapping[str, Sequence[Example] | None], labels: Sequence[str] | None = None
) -> None:
    """Fail early when the data and the prompt do not fit: every label has words, every field a column.

    `labels`: the head baseline's labels (default: `job_labels` of the train split)."""
    named = {which: ex for which, ex in splits.items() if ex}
    if job.model.method == "prompt":
        template = Template(job.prompt.template)
        verbalizer = make_verbalizer(job.prompt)
        check_label_words(job, label_names(ex for examples in named.values() for ex in examples))
        for which, examples in named.items():
            path = getattr(job.data, which, which)
            try:
                template.check_fields(set(examples[0].fields))
            except TemplateError as err:
                raise TemplateError(f"{path}: {err} (--field NAME=COLUMN)") from None
            try:
                verbalizer.check_labels([ex.label for ex in examples if ex.label is not None])
            except VerbalizerError as err:
                raise VerbalizerError(f"{path}: {err} (--label-words, --label-map)") from None
    else:
        labels = list(labels) if labels else job_labels(job, named.get("train", ()))
        wanted = head_fields(job)
        for which, examples in named.items():
            path = getattr(job.data, which, which)
            unknown = sorted({ex.label for ex in examples} - set(labels))
            if unknown:
                raise DataError(
                    f"{path} has label(s) {unknown} that the classifier does not know ({labels}): "
                    "fix the label map (--label-map) or the data"
                )
            missing = [f for f in wanted if f not in examples[0].fields]
            if missing:
                raise DataError(f"{path} has no field(s) {missing}: map them with --field NAME=COLUMN")


# ---------------------------------------------------------------------------------------------------------
# classifier


def build_classifier(job: JobConfig, labels: Sequence[str] | None = None):
    """The untrained classifier a job describes (PromptClassifier or, for `method: head`, HeadClassifier).

    `labels` is only used by the head baseline when neither label words nor a label map name them.
    LoRA's random initialisation is seeded with `train.seed`.
    """
    import torch

    from promptft.classifiers import HeadClassifier, PromptClassifier

    m = job.model
    lora = LoraSettings(**asdict(m.lora)) if m.finetune == "lora" else None  # a copy: the head adds to it
    torch.manual_seed(job.train.seed)
    if m.method == "prompt":
        return PromptClassifier.from_model(
            m.name,
            job.prompt.template,
            make_verbalizer(job.prompt),
            kind=m.kind,
            finetune=m.finetune,
            lora=lora,
            max_length=job.prompt.max_length,
            device=m.device,
        )
    labels = list(labels) if labels else job_labels(job)
    if not labels:
        raise ConfigError(
            "the head baseline needs the label names: give a label map (--label-map '0=negative,1=positive') "
            "or training data with labels"
        )
    return HeadClassifier.from_model(
        m.name,
        labels,
        head_fields(job),
        finetune=m.finetune,
        lora=lora,
        max_length=job.prompt.max_length,
        device=m.device,
        seed=job.train.seed,
    )


# ---------------------------------------------------------------------------------------------------------
# running a job


@dataclass
class JobResult:
    run_dir: str
    steps: int
    best_step: int
    best_dev: dict[str, float] | None
    test: dict[str, float] | None
    train_time_s: float
    zero_shot: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Files a run folder may hold before its first checkpoint (an attempt interrupted early): safe to start over.
_FRESH_FILES = {"train_config.json", "metrics.jsonl", "run.json", JOB_FILE}


def run_dir_state(run_dir: str | Path) -> str:
    """What `run_job` finds in a run folder: "new" (absent, empty, or an attempt stopped before its first
    checkpoint) or "resume" (a checkpoint); RunDirError for a finished run or a folder of other files."""
    run_dir = Path(run_dir)
    if (run_dir / FINAL).exists():
        raise RunDirError(
            f"{run_dir} already holds a finished run ({FINAL}); promptft never overwrites one: choose "
            f"another --output. To score it on a test file: promptft eval {run_dir / BEST_DIR} --data TEST"
        )
    if has_checkpoint(run_dir):
        return "resume"
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"--output {run_dir} is a file: give a folder for the run")
    if run_dir.exists():
        others = sorted(p.name for p in run_dir.iterdir() if p.name not in _FRESH_FILES)
        if others:
            raise RunDirError(
                f"{run_dir} is not empty and holds no promptft run to resume ({', '.join(others[:3])}): "
                "choose an empty or new --output folder"
            )
    return "new"


def lock_path(run_dir: str | Path) -> Path:
    """The lock file of a run folder: beside it (`runs/.my-run.lock`), since a fresh run folder must start
    empty."""
    run_dir = Path(run_dir)
    return run_dir.parent / f".{run_dir.name}.lock"


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on a run folder while one `train` uses it; a second one gets RunDirError.

    `fcntl.flock` is released by the kernel when its process dies, so a lock file left by a killed run
    (with a dead pid in it) does not block. Where fcntl is missing (Windows) runs are not locked.
    """
    from promptft.training.distributed import is_main_process

    if not is_main_process():  # under `accelerate launch`, one lock for the whole job: the main process's
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux/macOS
        yield
        return
    path = lock_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "?"
            handle.close()
            raise RunDirError(
                f"{run_dir} is in use by another `promptft train` (pid {pid}): wait for it to finish, or "
                "choose another --output"
            ) from None
        if _same_file(handle, path):
            break
        handle.close()  # the holder removed the file while we opened it: lock the new one
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)  # before unlocking, so nobody locks a file that is going away
        handle.close()


def _same_file(handle: Any, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
    except FileNotFoundError:
        return False


def _diff(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in dict.fromkeys([*a, *b]) for d in _diff(a.get(k), b.get(k), _join(where, str(k)))]
    return [] if a == b else [where]


def _comparable(job: JobConfig) -> dict[str, Any]:
    d = job.to_dict()
    d.pop("output")
    d["train"].pop("progress")  # display only
    return d


def check_resume(job: JobConfig, run_dir: str | Path) -> None:
    """Refuse to resume a run whose saved job differs from `job` (except the output path and progress)."""
    saved_path = Path(run_dir) / JOB_FILE
    if not saved_path.exists():
        return
    saved = JobConfig.from_yaml(saved_path)
    changed = _diff(_comparable(saved), _comparable(job))
    if changed:
        raise RunDirError(
            f"{run_dir} holds an unfinished run with other settings ({', '.join(changed)}): resume it "
            f"unchanged with `promptft train --config {saved_path}`, or choose another --output"
        )


def _write_job(job: JobConfig) -> None:
    path = Path(str(job.output)) / JOB_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        job.to_yaml(path)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def run_job(job: JobConfig) -> JobResult:
    """Run a job: train (or, with `finetune: none`, only evaluate) into `job.output`, then test.

    The run folder gets the Trainer's files (train_config.json, metrics.jsonl, final_metrics.json, best/),
    job.yaml, and test_metrics.json when the job has a test file. An interrupted run resumes where its last
    checkpoint left off when run again with the same job; a finished run is never overwritten.
    """
    check_job(job)
    run_dir = Path(str(job.output))
    run_dir_state(run_dir)  # a finished run or a foreign folder: say so before reading any data
    zero_shot = job.model.finetune == "none"
    if zero_shot and job.data.train:
        log.info("--finetune none: no training, the train file is not read")
    splits = {
        which: None if zero_shot and which == "train" else load_split(job.data, which) for which in SPLITS
    }
    labels = job_labels(job, [*(splits["train"] or []), *(splits["dev"] or [])])
    check_data(job, splits, labels)
    _warn_empty(job, splits)
    _show_first_prompt(job, splits)
    with run_lock(run_dir):
        return _run_locked(job, run_dir, splits, labels)


def _warn_empty(job: JobConfig, splits: Mapping[str, Sequence[Example] | None]) -> None:
    for which, examples in splits.items():
        empty = [
            i + 1 for i, ex in enumerate(examples or ()) if not any(t.strip() for t in ex.fields.values())
        ]
        if empty:
            shown = ", ".join(map(str, empty[:10])) + (", ..." if len(empty) > 10 else "")
            log.warning(
                "%s: %d example(s) have an empty text (data rows %s): the model sees the template alone",
                getattr(job.data, which),
                len(empty),
                shown,
            )


def _show_first_prompt(job: JobConfig, splits: Mapping[str, Sequence[Example] | None]) -> None:
    """Show the prompt of the first example as the model reads it: a wrong template shows at once."""
    first = next((ex[0] for ex in (splits["train"], splits["dev"], splits["test"]) if ex), None)
    if job.model.method != "prompt" or first is None:
        return
    prompt = Template(job.prompt.template).render(first.fields)
    log.info("prompt of the first example ({mask} is where the label word goes):\n%s", prompt)


def _run_locked(
    job: JobConfig, run_dir: Path, splits: Mapping[str, list[Example] | None], labels: Sequence[str]
) -> JobResult:
    state = run_dir_state(run_dir)  # again, under the lock: another run may have finished meanwhile
    zero_shot = job.model.finetune == "none"
    if state == "resume":
        check_resume(job, run_dir)
    else:
        (run_dir / JOB_FILE).unlink(missing_ok=True)  # from an attempt stopped before its first checkpoint
    clf = build_classifier(job, labels)
    cfg = job.train

    if zero_shot:
        start = time.perf_counter()
        best_dev = clf.evaluate(splits["dev"], cfg.eval_batch_size, cfg.progress) if splits["dev"] else None
        if is_main_process():  # under `accelerate launch`, one process writes
            run_dir.mkdir(parents=True, exist_ok=True)
            _write_job(job)
            clf.save_pretrained(run_dir / BEST_DIR)
        result = TrainResult(
            best_step=0,
            best_dev=best_dev,
            steps=0,
            train_time_s=round(time.perf_counter() - start, 3),
            stopped_early=False,
            run_dir=str(run_dir),
        )
        if is_main_process():
            _write_json(run_dir / FINAL, {**result.to_dict(), "zero_shot": True})
    else:
        # job.yaml goes in once the Trainer has set up (or resumed) the folder: a fresh run must start empty.
        trainer = Trainer(clf, cfg, run_dir=job.output, on_run_dir=lambda _: _write_job(job))
        result = trainer.train(splits["train"], splits["dev"])

    test = None
    if splits["test"]:
        test = clf.evaluate(splits["test"], cfg.eval_batch_size, cfg.progress)
        if is_main_process():
            _write_json(run_dir / TEST_FILE, test)
    return JobResult(
        run_dir=str(run_dir),
        steps=result.steps,
        best_step=result.best_step,
        best_dev=result.best_dev,
        test=test,
        train_time_s=result.train_time_s,
        zero_shot=zero_shot,
    )


# ---------------------------------------------------------------------------------------------------------
# using a trained classifier


def classifier_dir(path: str | Path) -> Path:
    """A classifier folder, accepting a run folder for its best/ model; errors for a missing folder and for
    a run that has not finished (it has no best/ yet)."""
    from promptft.classifiers import CONFIG_FILE

    path = Path(path)
    if (path / CONFIG_FILE).exists():
        return path
    if (path / BEST_DIR / CONFIG_FILE).exists():
        return path / BEST_DIR
    run = path.parent if path.name == BEST_DIR else path
    if any((run / name).exists() for name in (JOB_FILE, CHECKPOINT, "train_config.json")):
        return_to = f"promptft train --config {run / JOB_FILE}" if (run / JOB_FILE).exists() else "train"
        raise RunDirError(
            f"the run in {run} has not finished, so it has no model yet: rerun `{return_to}` to resume it; "
            f"once it finishes, its model is {run / BEST_DIR}"
        )
    if not path.exists():
        raise ModelError(f"no such folder: {path} (looked at {path.resolve()}): point at a run or its best/")
    return path


def saved_classifier(model_dir: str | Path) -> dict[str, Any]:
    """What a saved classifier's config says (labels, fields, ...), read without loading the model."""
    from promptft.classifiers import CONFIG_FILE

    path = Path(model_dir) / CONFIG_FILE
    if not path.exists():
        raise ModelError(f"{model_dir} holds no {CONFIG_FILE}: point at a folder written by save_pretrained")
    config = json.loads(path.read_text())
    if config.get("type") == "prompt":
        config["fields"] = list(Template(config["template"]).fields)
    return config


def data_config_for(model_dir: str | Path, fields_of: Sequence[str] = ()) -> DataConfig:
    """The column spec to read new data for a trained classifier: that of the job which trained it (its
    job.yaml next to best/), else fields named like the classifier's fields (`text` is found as usual)."""
    model_dir = Path(model_dir)
    for candidate in (model_dir / JOB_FILE, model_dir.parent / JOB_FILE):
        if candidate.is_file():
            data = JobConfig.from_yaml(candidate).data
            return DataConfig(
                fields=data.fields, label=data.label, label_map=data.label_map, header=data.header
            )
    fields_of = tuple(fields_of)
    if not fields_of or fields_of == ("text",):
        return DataConfig()
    return DataConfig(fields={f: f for f in fields_of})


def check_known_labels(rows: Sequence[Row], labels: Sequence[str], path: str | Path) -> None:
    """Every label in the data must be one the classifier knows (checked before the model loads)."""
    unknown = sorted({row.example.label for row in rows} - set(labels) - {None})
    if unknown:
        raise DataError(
            f"{path}: unknown label {unknown[0]!r}: this classifier knows {list(labels)}; fix the label map "
            "(--label-map) or the data"
        )


def evaluate_file(clf, path: str | Path, data: DataConfig, batch_size: int = 32, progress: bool = False):
    """Accuracy, macro-F1 and n of a loaded classifier on a labelled file."""
    rows = read_split_rows(path, data)
    check_known_labels(rows, clf.labels, path)
    return clf.evaluate([row.example for row in rows], batch_size, progress)


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
    if path.exists() and not overwrite:
        raise PromptFTError(
            f"{path} already exists: choose another --output, or pass --overwrite to replace it"
        )
    check_writable(path, "the predictions file")
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
    clf, rows: Sequence[Row], batch_size: int = 32, progress: bool = False, skip: Sequence[int] = ()
) -> list[dict[str, Any]]:
    """One dict per input row, in order: the row's own columns, the predicted label and a probability
    per label (see `prediction_columns`). Rows in `skip` keep their columns with empty predictions."""
    columns = list(dict.fromkeys(c for row in rows for c in row.cells))
    label_col, prob_cols = prediction_columns(columns, clf.labels)
    skipped = set(skip)
    todo = [i for i in range(len(rows)) if i not in skipped]
    probs = clf.predict_proba([rows[i].example for i in todo], batch_size, progress)
    by_row = dict(zip(todo, probs, strict=True))
    out = []
    for i, row in enumerate(rows):
        record: dict[str, Any] = {c: row.cells.get(c, "") for c in columns}
        p = by_row.get(i)
        record[label_col] = "" if p is None else clf.labels[int(p.argmax())]
        for col, j in zip(prob_cols, range(len(clf.labels)), strict=True):
            record[col] = "" if p is None else round(float(p[j]), 6)
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
