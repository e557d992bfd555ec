"""The job config: what `promptft train` runs (data + prompt + model + training + run folder).

The same schema serves the YAML jobs (`examples/*.yaml`), the command line (`--set key=value` reaches
every field; the common flags are shortcuts for some) and the Python API:

    from promptft.config import JobConfig
    from promptft.recipes.train import train

    job = JobConfig.from_yaml("examples/sst2_prompt_lora.yaml")
    result = train(job)

`model.finetune` is any adapter of `promptft.adapters.ADAPTERS`, and its options (`model.adapter`, or
`model.lora` for LoRA) are checked by that adapter's own settings class. Without `train.learning_rate`
the rate is the adapter's default (LoRA 3e-4, full fine-tuning 1e-5, ...).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator

from promptft.adapters import ADAPTERS, AdapterSettings, LoraSettings, adapter_class
from promptft.config.base import Section, check_keys, describe_error
from promptft.config.task import TaskConfig
from promptft.config.train import TrainConfig
from promptft.errors import ConfigError
from promptft.models.registry import DEFAULT_MODEL
from promptft.prompts.demonstrations import DemonstrationSettings
from promptft.prompts.template import escape_template, unescape_template


def _str_keys(value: Any) -> Any:
    """YAML reads `0: negative` with an int key; label maps and words mean the raw label "0"."""
    if isinstance(value, Mapping):
        return {str(k) if isinstance(k, int) and not isinstance(k, bool) else k: v for k, v in value.items()}
    return value


class DataConfig(Section):
    """Where the examples are and which columns hold what (see `promptft.data.read_examples`)."""

    train: str | None = None
    """Training file (csv, tsv, jsonl, json)."""
    dev: str | None = None
    """Dev file: selects the best step."""
    test: str | None = None
    """Test file: the best model is scored on it."""
    fields: dict[str, str | int] | None = None
    """Template field -> column name or 0-based index; None: the usual text column (sentence, text, ...)."""
    label: str | int | None = None
    """Label column; None: `label` when the file has one (or when `fields` names columns)."""
    label_map: dict[str, str] | None = None
    """Raw label -> label name, e.g. {"0": "negative"}."""
    header: bool | None = None
    """csv/tsv only: whether the first row is a header; None: decided from the columns."""
    format: Literal["csv", "tsv", "jsonl", "json"] | None = None
    """File format; None: from the file suffix."""

    @field_validator("fields", "label_map", mode="before")
    @classmethod
    def _int_keys(cls, value: Any) -> Any:
        return _str_keys(value)

    def reader_options(self) -> dict[str, Any]:
        """The column spec as keyword arguments of `promptft.data.read_rows`."""
        return {
            "fields": self.fields,
            "label": self.label,
            "label_map": self.label_map,
            "header": self.header,
            "fmt": self.format,
        }


class PromptConfig(Section):
    """The template and the label words (ignored by the head baseline)."""

    template: str = "{text} It was {mask}."
    """Text with {fields} and one {mask} slot; in YAML and on the command line \\n is a newline."""
    label_words: dict[str, str | list[str]] | None = None
    """Label name -> word or words."""
    token_reduction: Literal["sum", "mean"] = "sum"
    """Score of a multi-token word: sum or mean of its tokens' log-probabilities."""
    word_reduction: Literal["logsumexp", "mean"] = "logsumexp"
    """Score of a label with several words."""
    max_length: int = Field(default=256, ge=1)
    """Longest input in tokens (the text is cut, never the template); never more than the model reads."""
    answers: tuple[str, str] = ("no", "yes")
    """model.method yes_no: the (no, yes) answer words; prompt.label_words then gives each label's text."""
    train_negatives: int | None = Field(default=None, ge=0)
    """model.method yes_no: each training example asks its positive labels plus this many negative labels,
    drawn afresh every step, so a step costs a few questions per example instead of one per label; null:
    every label. Evaluation and prediction always ask every label."""
    calibrate: Literal["none", "contextual", "temperature", "contextual+temperature"] = "none"
    """contextual: divide out the label bias of content-free inputs at prediction time (Zhao et al. 2021);
    temperature: fit a softmax temperature on the dev split so the probabilities' confidence matches their
    accuracy (Guo et al. 2017; predictions unchanged); contextual+temperature: both. Single-label prompts."""
    content_free: list[str] | None = None
    """calibrate contextual: the content-free inputs (default "N/A", "" and "[MASK]")."""
    demonstrations: DemonstrationSettings | None = None
    """LM-BFF demonstrations: one training example per label, its label word filled in, shown with every
    input, e.g. {selection: similar, n_sets: 4} (single-label prompt jobs; null: none)."""

    @field_validator("label_words", mode="before")
    @classmethod
    def _int_keys(cls, value: Any) -> Any:
        return _str_keys(value)

    @field_validator("demonstrations", mode="before")
    @classmethod
    def _demonstrations(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        check_keys(value, [f.name for f in fields(DemonstrationSettings)], "prompt.demonstrations", "option")
        try:
            return TypeAdapter(DemonstrationSettings).validate_python(dict(value))
        except ValidationError as err:
            raise ConfigError(describe_error(DemonstrationSettings, err, "prompt.demonstrations")) from None


def adapter_from_options(name: str, options: Mapping[str, Any] | None, where: str) -> AdapterSettings:
    """The typed settings of adapter `name` from a mapping of options, checked by the adapter's own class:
    an unknown option names the nearest valid one, a wrong type or value is a ConfigError at `where`."""
    cls = adapter_class(name)
    options = dict(options or {})
    valid = [f.name for f in fields(cls)]
    check_keys(options, valid, where, f"{cls.name} option")
    try:
        return TypeAdapter(cls).validate_python(options)
    except ValidationError as err:
        raise ConfigError(describe_error(cls, err, where)) from None
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


class ModelConfig(Section):
    """Which model, and how it is trained."""

    name: str = DEFAULT_MODEL
    """An offline alias (see `promptft models`), a local model folder or a hub id."""
    kind: Literal["causal", "masked", "seq2seq"] | None = None
    """Backbone kind; None: detected from the model's config."""
    method: Literal["prompt", "head", "yes_no", "channel"] = "prompt"
    """prompt; head: standard fine-tuning with a new classification head (the baseline); yes_no
    (multi-label): one yes/no question per label, the template naming it as {label}; channel (causal LMs,
    single-label): score P(text | label), the label word first, e.g. "Sentiment: {mask}\nReview: {text}"."""
    finetune: str = "full"
    """The adapter: one of promptft.adapters.ADAPTERS (full, none, lora, ia3, prompt_tuning, ...)."""
    adapter: dict[str, Any] = Field(default_factory=dict)
    """Options of the adapter, e.g. {num_virtual_tokens: 20} for prompt_tuning (for LoRA: `lora`)."""
    lora: LoraSettings = Field(default_factory=LoraSettings)
    """LoRA options (r, alpha, dropout, top_layers, use_dora, ...), used when finetune is lora."""
    device: str | None = None
    """cpu, cuda, cuda:1, ...; None: cuda when available, else cpu."""

    @field_validator("finetune")
    @classmethod
    def _known_adapter(cls, value: str) -> str:
        try:
            return adapter_class(value).name  # aliases (frozen, zero_shot, ...) -> the registry's name
        except ConfigError as err:
            raise ValueError(str(err)) from None

    @field_validator("lora", mode="before")
    @classmethod
    def _lora(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return adapter_from_options("lora", value, "model.lora")
        return value

    @model_validator(mode="after")
    def _adapter_options(self) -> Self:
        if self.finetune == "lora":
            if self.adapter:  # model.adapter.r is model.lora.r: one place for LoRA's options
                self.lora = adapter_from_options(
                    "lora", {**asdict(self.lora), **self.adapter}, "model.adapter"
                )
                self.adapter = {}
        else:  # stored in full, so a saved job.yaml shows every option it ran with
            self.adapter = asdict(adapter_from_options(self.finetune, self.adapter, "model.adapter"))
        return self

    def adapter_settings(self) -> AdapterSettings:
        """A fresh settings object of the chosen adapter (a copy: classifiers may add to it)."""
        if self.finetune == "lora":
            return LoraSettings(**copy.deepcopy(asdict(self.lora)))
        return ADAPTERS[self.finetune](**copy.deepcopy(self.adapter))


class JobConfig(Section):
    """A whole `promptft train` job."""

    data: DataConfig = Field(default_factory=DataConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    output: str | None = None
    """The run folder (an interrupted run there resumes)."""

    def reader_options(self) -> dict[str, Any]:
        """The data section's column spec plus how the task's labels are read (`read_rows` options)."""
        return {**self.data.reader_options(), "task": self.task.reader_task()}

    @model_validator(mode="after")
    def _yes_no_options(self) -> Self:
        if self.prompt.train_negatives is not None and self.model.method != "yes_no":
            raise ConfigError(
                "prompt.train_negatives samples the labels a yes/no question per label asks: it is for "
                f"model.method yes_no, not {self.model.method}; drop it"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _default_learning_rate(cls, data: Any) -> Any:
        """Without `train.learning_rate` the rate is the adapter's `default_learning_rate`."""
        if not isinstance(data, Mapping):
            return data
        train, model = data.get("train"), data.get("model")
        train = {} if train is None else train
        model = {} if model is None else model
        if not isinstance(train, Mapping) or not isinstance(model, Mapping) or "learning_rate" in train:
            return data  # given, or malformed (validation names the problem)
        finetune = model.get("finetune", "full")
        if not isinstance(finetune, str):
            return data
        try:
            rate = adapter_class(finetune).default_learning_rate
        except ConfigError as err:
            raise ConfigError(f"model.finetune: {err}") from None
        return {**data, "train": {**train, "learning_rate": rate}}

    # ----- YAML -----
    def to_yaml(self, path: str | Path) -> None:
        data = self.to_dict()
        data["prompt"]["template"] = escape_template(data["prompt"]["template"])  # read back by from_yaml
        if data["model"]["finetune"] != "lora":
            data["model"].pop("lora")  # used by LoRA only
        if not data["model"]["adapter"]:
            data["model"].pop("adapter")
        if data["prompt"]["calibrate"] == "none" and data["prompt"]["content_free"] is None:
            data["prompt"].pop("calibrate")  # jobs without calibration read as before
            data["prompt"].pop("content_free")
        if data["prompt"].get("demonstrations") is None:
            data["prompt"].pop("demonstrations", None)  # jobs without demonstrations read as before
        if data["model"]["method"] == "yes_no":
            data["prompt"]["answers"] = list(data["prompt"]["answers"])
        else:
            data["prompt"].pop("answers")  # used by yes/no questions only
        if data["prompt"]["train_negatives"] is None:
            data["prompt"].pop("train_negatives")  # jobs without it read as before
        if data["task"] == TaskConfig().to_dict():
            data.pop("task")  # single-label jobs read as before
        elif data["task"]["value_range"] is not None:
            data["task"]["value_range"] = list(data["task"]["value_range"])
        text = "# promptft job: run it with `promptft train --config <this file>`\n"
        text += yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        Path(path).write_text(text, encoding="utf-8")

    @classmethod
    def from_yaml(cls, path: str | Path) -> JobConfig:
        """Read a job file; its template's `\\n` and `\\t` are a newline and a tab (`unescape_template`)."""
        data = read_job_file(path)
        try:
            return cls.parse(data)
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
    data = read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping of key: value, got {data!r}")
    prompt = data.get("prompt")
    if isinstance(prompt, dict) and isinstance(prompt.get("template"), str):
        prompt["template"] = unescape_template(prompt["template"])
    return data


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1} column {where.column + 1}" if where is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path} is not valid YAML{at}: {problem}; fix that line") from None


# ---------------------------------------------------------------------------------------------------------
# overrides: dotted keys, from flags and `--set key=value`


def set_dotted(data: dict[str, Any], key: str, value: Any, *, create: bool = True) -> None:
    """Set `a.b.c` in nested dicts, creating missing sections (validation then names unknown keys)."""
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"bad config key {key!r}: write dotted names, e.g. train.max_steps")
    target = data
    for depth, part in enumerate(parts[:-1]):
        if create and target.get(part) is None:
            target[part] = {}
        if not isinstance(target.get(part), dict):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(f"unknown config key {key!r}: {where!r} is not a section")
        target = target[part]
    target[parts[-1]] = value


def parse_assignments(items: Sequence[str]) -> dict[str, Any]:
    """`["train.warmup_ratio=0.1", "model.adapter.num_virtual_tokens=8"]` -> dotted key -> value, each
    value read as YAML (`8` an int, `null` None, `[a, b]` a list, `{0: neg}` a mapping, `1e-4` a number
    once the schema reads it). A template is taken as written (its braces are not YAML), `\\n` a newline."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"bad --set {item!r}: write KEY=VALUE with a dotted key, e.g. --set train.warmup_ratio=0.1"
            )
        if key.split(".")[-1] == "template":
            if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
                text = text[1:-1]
            out[key] = unescape_template(text)
            continue
        try:
            out[key] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            out[key] = text
    return out


def load_job(
    path: str | Path | None, overrides: Mapping[str, Any] = (), sets: Sequence[str] = ()
) -> JobConfig:
    """The job of a YAML file (or the defaults) with dotted keys set from flags, then from `--set`
    assignments, as `promptft train` builds it: a learning rate none gives follows the adapter."""
    data = read_job_file(path) if path is not None else {}
    for key, value in [*dict(overrides).items(), *parse_assignments(sets).items()]:
        set_dotted(data, key, value)
    try:
        return JobConfig.parse(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}" if path is not None else str(err)) from None


def apply_overrides(job: JobConfig, overrides: Mapping[str, Any]) -> JobConfig:
    """A new config with dotted keys set, e.g. `{"train.learning_rate": 1e-4, "data.train": "x.tsv"}`.

    Every entry is applied, None included (it sets the field to None): leave out what was not given.
    Dict-valued fields (`data.fields`, `prompt.label_words`, ...) are replaced whole, not merged.
    """
    data = job.to_dict()
    for key, value in overrides.items():
        set_dotted(data, key, value, create=False)
    return JobConfig.parse(data)
