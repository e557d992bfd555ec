"""The benchmark's config: per-method options (`bench/default.yaml`, merged with `--config FILE`), the
`tasks:` per-task block and `grid:`s.

A method's options are a flat view of a partial job config (`method_job`): every key is a `train.*`
field (`learning_rate`, `max_steps`, ...), or `max_length` (`prompt.max_length`), `lora` (`model.lora`),
`adapter` (`model.adapter`), and is validated by the job schema, so a typo in a bench option is caught as
in a job (the nearest valid key is named). Methods that are not prompt jobs (setfit) check their own keys.
"""

from __future__ import annotations

import copy
import itertools
import logging
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field

from promptft.config.base import Section, check_keys
from promptft.config.job import JobConfig
from promptft.config.train import TrainConfig
from promptft.errors import ConfigError

log = logging.getLogger(__name__)
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class BenchConfig(Section):
    """The merged bench config (`load_bench_config`); `method(name, task)` gives one cell's options."""

    key_word = "bench config key"

    eval_batch_size: int = Field(32, ge=1)
    """Batch size for dev and test predictions."""
    methods: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """method -> its options (a flat partial job config; `grid:` lists values to try)."""
    tasks: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)
    """Per-task changes: {task: {method: {option: value}}}, merged onto that method's options for that task."""
    source: str = "default"
    """Where the config came from: "default" or the --config file."""
    tasks_named_by_file: frozenset[str] = frozenset()
    """The tasks the --config file itself names (checked against the task table; the packaged defaults
    name LM-BFF tasks that a user's own table need not have)."""

    def method(self, name: str, task: str | None = None) -> dict[str, Any]:
        """A method's options for `task` (a copy; {} for a method the config does not mention)."""
        options = copy.deepcopy(self.methods.get(name) or {})
        if task is not None:
            _merge_options(options, (self.tasks.get(task) or {}).get(name) or {})
        return options

    def to_dict(self) -> dict[str, Any]:
        return {
            "eval_batch_size": self.eval_batch_size,
            "methods": copy.deepcopy(self.methods),
            "tasks": copy.deepcopy(self.tasks),
        }

    def check(self, jobs: Mapping[str, tuple[str, str] | None]) -> None:
        """Validate every method's options (and each of its grid points, for every task block) as a
        partial job config. `jobs`: method -> (model.method, model.finetune), or None for a method whose
        options are not a job (it checks them itself)."""
        names = {*self.methods, *(m for spec in self.tasks.values() for m in spec)}
        for name in sorted(names):
            job = jobs.get(name)
            if job is None:
                continue
            blocks = {f"methods.{name}": self.method(name)}
            blocks.update(
                (f"tasks.{task}.{name}", self.method(name, task))
                for task, spec in self.tasks.items()
                if name in spec
            )
            for where, options in blocks.items():
                for combo in expand_grid(options):
                    method_job(combo, job[0], job[1], where)


# method option -> job key (the train fields keep their names)
OPTION_KEYS = {
    **{name: f"train.{name}" for name in TrainConfig.model_fields},
    "max_length": "prompt.max_length",
    "lora": "model.lora",
    "adapter": "model.adapter",
    "demonstrations": "prompt.demonstrations",
    "train_negatives": "prompt.train_negatives",
    "calibrate": "prompt.calibrate",
    "content_free": "prompt.content_free",
}


def method_job(
    options: Mapping[str, Any], method: str = "prompt", finetune: str = "full", where: str = "options"
) -> JobConfig:
    """A method's flat options as the partial job config they stand for, validated by the job schema
    (`{"learning_rate": 3e-4, "lora": {"r": 8}}` -> train.learning_rate, model.lora.r). Without a
    learning rate the adapter's default applies, as in a job."""
    options = {k: v for k, v in options.items() if k != "grid"}
    check_keys(options, OPTION_KEYS, where, "bench option")
    data: dict[str, Any] = {"model": {"method": method, "finetune": finetune}}
    for key, value in options.items():
        section, _, name = OPTION_KEYS[key].partition(".")
        data.setdefault(section, {})[name] = copy.deepcopy(value)
    try:
        return JobConfig.parse(data)
    except ConfigError as err:
        message = str(err)
        for key, target in OPTION_KEYS.items():
            message = message.replace(target, f"{where}.{key}")
        raise ConfigError(message) from None


def default_config_path() -> Path:
    return Path(str(resources.files("promptft.bench").joinpath("default.yaml")))


def load_bench_config(
    path: str | Path | None = None, jobs: Mapping[str, tuple[str, str] | None] | None = None
) -> BenchConfig:
    """The packaged defaults, with `path` (if given) merged onto them method by method; with `jobs`
    (method -> its job's method and adapter), every method's options are validated (`BenchConfig.check`)."""
    config = _load(path)
    if jobs is not None:
        try:
            config.check(jobs)
        except ConfigError as err:
            raise ConfigError(f"{config.source}: {err}" if path is not None else str(err)) from None
    return config


def _load(path: str | Path | None) -> BenchConfig:
    data = _read(default_config_path())
    source = "default"
    named: frozenset[str] = frozenset()
    if path is not None:
        override = _read(Path(path))
        try:
            check_keys(override, ["eval_batch_size", "methods", "tasks"], "", "top-level key")
        except ConfigError as err:
            raise ConfigError(
                f"{path}: {err}; a bench config has `eval_batch_size`, `methods: {{<method>: {{<option>: "
                "value}}}` and `tasks: {<task>: {<method>: {<option>: value}}}`"
            ) from None
        if "eval_batch_size" in override:
            data["eval_batch_size"] = override["eval_batch_size"]
        methods = data.setdefault("methods", {})
        tasks = data["tasks"] = _mapping(data.get("tasks"), "tasks")
        for name, options in (override.get("methods") or {}).items():
            options = _mapping(options, f"{path}: methods.{name}")
            methods[name] = _merge_options(methods.get(name) or {}, options)
            _yield_packaged_task_options(tasks, name, options, path)
        for task, per_method in _mapping(override.get("tasks"), f"{path}: tasks").items():
            merged_task = tasks[task] = _mapping(tasks.get(task), f"tasks.{task}")
            for name, options in _mapping(per_method, f"{path}: tasks.{task}").items():
                where = f"{path}: tasks.{task}.{name}"
                merged_task[name] = _merge_options(merged_task.get(name) or {}, _mapping(options, where))
        source = str(path)
        named = frozenset(str(task) for task in override.get("tasks") or {})
    methods = {str(k): _coerce(v or {}) for k, v in (data.get("methods") or {}).items()}
    tasks = {
        str(task): {
            str(name): _coerce(options or {}) for name, options in _mapping(spec, f"tasks.{task}").items()
        }
        for task, spec in (data.get("tasks") or {}).items()
    }
    for where, options in [
        *((f"methods.{name}", options) for name, options in methods.items()),
        *((f"tasks.{task}.{name}", o) for task, spec in tasks.items() for name, o in spec.items()),
    ]:
        grid = options.get("grid")
        if grid is not None and not isinstance(grid, dict):
            raise ConfigError(
                f"{where}.grid must map options to lists of values, e.g. grid: {{learning_rate: [1e-5, 2e-5]}}"
            )
    return BenchConfig(
        eval_batch_size=data.get("eval_batch_size", 32),
        methods=methods,
        tasks=tasks,
        source=source,
        tasks_named_by_file=named,
    )


def _yield_packaged_task_options(
    tasks: dict[str, Any], method: str, options: dict[str, Any], path: str | Path
) -> None:
    """User config wins over packaged defaults: an option the user's file sets for a method drops the
    packaged per-task value of that option (TREC's 200 steps under a user's `max_steps: 2`), with a
    warning. Per-task options in the user's own file are merged afterwards and win for their task."""
    dropped = []
    for task, per_method in tasks.items():
        block = (per_method or {}).get(method)
        if not isinstance(block, dict):
            continue
        for key, value in options.items():
            if key == "lora" and isinstance(value, dict) and isinstance(block.get("lora"), dict):
                for sub in [k for k in value if k in block["lora"]]:
                    dropped.append(f"tasks.{task}.{method}.lora.{sub}={block['lora'].pop(sub)}")
            elif key in block:
                dropped.append(f"tasks.{task}.{method}.{key}={block.pop(key)}")
    if dropped:
        log.warning(
            "%s: methods.%s replaces the packaged per-task option(s) %s; to change one task only, set "
            "tasks.<task>.%s in your file",
            path,
            method,
            ", ".join(dropped),
            method,
        )


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping of options, got {value!r}")
    return value


def _merge_options(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`changes` onto `base` key by key (in place); `lora` merges one level down, a `grid` replaces."""
    for key, value in changes.items():
        if key == "lora" and isinstance(value, dict) and isinstance(base.get("lora"), dict):
            base["lora"] = {**base["lora"], **value}
        else:
            base[key] = copy.deepcopy(value)
    return base


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"bench config {path} not found: check the path given to --config")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"bench config {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"bench config {path} must be a mapping (eval_batch_size, methods)")
    return data


def _coerce(value: Any) -> Any:
    """YAML 1.1 reads `1e-5` (no dot) as a string; take such strings as the numbers they are."""
    if isinstance(value, dict):
        return {k: _coerce(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_coerce(v) for v in value]
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        number = float(value)
        return (
            int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
        )
    return value


def expand_grid(options: dict[str, Any]) -> list[dict[str, Any]]:
    """Every combination of a method's `grid` applied to its options (the grid itself removed).

    Dotted keys reach nested options (`lora.r`). No grid gives one configuration.
    """
    options = copy.deepcopy(options)
    grid = options.pop("grid", None) or {}
    keys = list(grid)
    values = []
    for key in keys:
        v = grid[key]
        values.append(list(v) if isinstance(v, list | tuple) else [v])
        if not values[-1]:
            raise ConfigError(f"grid option {key!r} has no values: give at least one, or drop it")
    combos = []
    for combo in itertools.product(*values) if keys else [()]:
        config = copy.deepcopy(options)
        for key, value in zip(keys, combo, strict=True):
            target = config
            parts = key.split(".")
            for part in parts[:-1]:
                target = target.setdefault(part, {})
            target[parts[-1]] = value
        combos.append(config)
    return combos
