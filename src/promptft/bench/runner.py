"""Run the few-shot benchmark (LM-BFF protocol): every (task, method, seed) cell of one model.

Each cell trains on the seed's 16-shot train split, selects (steps, grid point) on the seed's dev split,
and is scored once on the task's test file (or, for tasks whose test set is hidden, on that same dev split,
reported as test "dev"). Every finished cell is written at once, atomically, to

    <results_dir>/fewshot/<model>/<task>/<method>/seed<seed>.json

so an interrupted run loses at most the cell in progress; a rerun skips finished cells (`force` redoes them).
"""

from __future__ import annotations

import datetime as _dt
import gc
import hashlib
import json
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptft.bench.cells import (
    FEWSHOT_DIR,
    TestSet,
    _check_split_files,
    cell_path,
    model_label,
    read_cell,
    resolve_test_sets,
    subset,
    write_json_atomic,
)
from promptft.bench.config import BenchConfig, expand_grid, load_config
from promptft.bench.methods import METHODS, Fitted, ModelRef, SplitData
from promptft.bench.tasks import (
    TaskSpec,
    TaskTable,
    load_tasks,
    read_split,
    sample_split,
    split_path,
    task_metrics,
)
from promptft.data import Example
from promptft.errors import ConfigError, DataError

log = logging.getLogger(__name__)

DEFAULT_RESULTS_DIR = Path("benchmarks/results")


@dataclass
class RunResult:
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    cells: list[dict[str, Any]] = field(default_factory=list)


def _reuse_key(parts: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _device_name(model: ModelRef) -> str:
    import torch

    device = model.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"{device} ({torch.get_num_threads()} threads)"


def run_benchmark(
    model: str = "smollm2-135m",
    tasks: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    *,
    test_overrides: dict[str, str] | None = None,
    config: BenchConfig | str | Path | None = None,
    results_dir: str | Path = DEFAULT_RESULTS_DIR,
    max_test: int | None = None,
    force: bool = False,
    tasks_file: TaskTable | str | Path | None = None,
    data_dir: str | Path | None = None,
    device: str | None = None,
    command: str | None = None,
    console=None,
    progress: bool = True,
) -> RunResult:
    """Run every (task, method, seed) cell for `model`; returns the cells written and skipped."""
    from promptft.version import __version__  # not the package root: its lazy API names the recipes

    table = tasks_file if isinstance(tasks_file, TaskTable) else load_tasks(tasks_file)
    cfg = config if isinstance(config, BenchConfig) else load_config(config)
    chosen_tasks = table.select(tasks)
    method_names = list(methods) if methods else list(METHODS)
    unknown = [m for m in method_names if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method(s) {unknown}: choose from {', '.join(METHODS)}")
    cfg.check({m: getattr(METHODS[m], "job", None) for m in method_names})  # before any cell runs
    for name in method_names:
        check_options = getattr(METHODS[name], "check_options", None)
        for task_key in (None, *cfg.tasks) if check_options else ():
            check_options(cfg.method(name, task_key), f"methods.{name}")
    unknown_tasks = sorted(cfg.tasks_named_by_file - set(table.tasks))
    if unknown_tasks:
        raise ConfigError(
            f"the bench config ({cfg.source}) has per-task options for unknown task(s) {unknown_tasks}: "
            f"use the task keys of the task table ({', '.join(table.tasks)})"
        )
    seed_list = [int(s) for s in (seeds or table.seeds)]
    if max_test is not None and max_test < 1:
        raise ConfigError(f"--max-test must be a positive number of test examples, got {max_test}")
    data_root = table.resolve_data_dir(data_dir)
    test_sets = resolve_test_sets(table, chosen_tasks, dict(test_overrides or {}), data_root, model)
    _check_split_files(chosen_tasks, seed_list, table.k, data_root)
    ref = ModelRef(model, device=device)
    if ref.kind == "encoder":
        lm_methods = [m for m in method_names if getattr(METHODS[m], "needs_lm", True)]
        if lm_methods:
            raise ConfigError(
                f"{model!r} is an encoder without a language-model head, so {lm_methods} cannot run on it: "
                "benchmark a masked, causal or seq2seq LM, or run only standard_ft / setfit"
            )
    label = model_label(model)
    results_dir = Path(results_dir)
    command = command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    result = RunResult()

    # A method runs only on the task types it handles (minilm_cosine: regression, ...).
    plan = [
        (t, s, m)
        for t in chosen_tasks
        for s in seed_list
        for m in method_names
        if t.type in getattr(METHODS[m], "task_types", (t.type,))
        and not (getattr(METHODS[m], "needs_pool", False) and t.pool is None)
    ]
    no_pool = [
        (m, t.key)
        for m in method_names
        for t in chosen_tasks
        if getattr(METHODS[m], "needs_pool", False)
        and t.pool is None
        and t.type in getattr(METHODS[m], "task_types", (t.type,))
    ]
    pending = []
    differs = []  # finished cells scored on another test set than this run asks for
    stale = []  # finished cells trained with other options than the config now gives
    for task, seed, name in plan:
        path = cell_path(results_dir, label, task.key, name, seed)
        done = None if force else read_cell(path)
        if done is None:
            pending.append((task, seed, name))
            continue
        result.skipped.append(path)
        if done.get("test") != test_sets[task.key].label or done.get("max_test") != max_test:
            differs.append(path)
        if "config" in done and done["config"] not in cell_configs(cfg, name, task.key):
            stale.append(path)

    from rich.console import Console

    console = console or Console(stderr=True)
    if differs:
        console.print(
            f"[yellow]warning:[/yellow] {len(differs)} finished cell(s) were scored on another test set or "
            f"--max-test than this run asks for (e.g. {differs[0]}); they are kept as they are: "
            "add --force to redo them, or use another --results-dir"
        )
    if stale:
        console.print(
            f"[yellow]warning:[/yellow] {len(stale)} finished cell(s) were trained with other options than "
            f"the config ({cfg.source}) now gives (e.g. {stale[0]}); they are kept as they are: add --force "
            "to redo them with the current options, or use another --results-dir"
        )
    missing_pools = sorted(
        {
            str(data_root / str(t.pool))
            for t, _, m in plan
            if getattr(METHODS[m], "needs_pool", False) and not (data_root / str(t.pool)).is_file()
        }
    )
    if missing_pools:
        raise DataError(
            f"unlabelled pool file(s) missing: {', '.join(missing_pools)}: check the data folder ({data_root}) "
            "and the tasks' `pool:`"
        )
    pairs = {(m, t.key) for t, _, m in plan}  # (method, task), once each, not per seed
    refits = {(m, task) for m, task in pairs if _refits(cfg, m, task)}
    refit_on_dev = sorted(f"{m} on {t}" for m, t in refits if test_sets[t].path is None)
    if refit_on_dev:
        raise ConfigError(
            f"refit trains on the dev split, and these tasks are scored on it (their test set is hidden): "
            f"{', '.join(refit_on_dev)}; leave refit off for them (`tasks: {{<task>: {{<method>: {{refit: false}}}}}}` "
            "in the --config file) or leave those tasks out"
        )
    refit_members = sorted({m for m, _ in refits if getattr(METHODS[m], "composite", False)})
    if refit_members:
        raise ConfigError(
            f"{', '.join(refit_members)}: a member refits on train + dev, and the vote is weighed and chosen "
            "on dev: leave refit off for the members"
        )
    if no_pool:
        skipped_pairs = ", ".join(f"{m} on {t}" for m, t in no_pool)
        console.print(
            f"[yellow]skipped:[/yellow] {skipped_pairs}: the task has no unlabelled pool to label (give it "
            "one with `pool: FILE` in the task table)"
        )
    console.print(
        f"[bold]bench[/bold] {label} ({ref.kind}): {len(plan)} cells, {len(result.skipped)} already done, "
        f"{len(pending)} to run -> {results_dir / FEWSHOT_DIR / label}"
    )
    if not pending:
        return result

    test_cache: dict[str, list[Example]] = {}
    split_cache: dict[tuple[str, int], SplitData] = {}
    file_cache: dict[str, list[Example]] = {}
    reuse_cache: dict[str, dict[str, Any]] = {}
    meta = {
        "promptft_version": __version__,
        "command": command,
        "device": _device_name(ref),
        "config_source": cfg.source,
        "tasks_file": table.source,
        "data_dir": str(data_root),
    }

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[phase]}"),
        console=console,
        disable=not progress,
    )
    with _quiet_transformers(), bar:
        job = bar.add_task("cells", total=len(pending), phase="")
        for task, seed, name in pending:

            def phase(text: str, _task=task, _seed=seed, _name=name) -> None:
                bar.update(job, description=f"{_task.name} {_name} seed {_seed}", phase=text)
                log.info("%s %s seed %d: %s", _task.name, _name, _seed, text)  # logs show the phase too

            phase("reading data")
            if (task.key, seed) not in split_cache:
                files = [split_path(task, which, seed, table.k, data_root) for which in ("train", "dev")]
                for file in files:  # a sampled task's whole files are read once, sampled per seed
                    if str(file) not in file_cache:
                        file_cache[str(file)] = read_split(task, file)
                split_cache[(task.key, seed)] = SplitData(
                    *(sample_split(task, file_cache[str(file)], seed) for file in files),
                    pool=data_root / task.pool if task.pool else None,
                )
                if task.sample_k is None:
                    file_cache.clear()
            data = split_cache[(task.key, seed)]
            test = test_sets[task.key]
            if test.path is not None and task.key not in test_cache:
                test_cache[task.key] = read_split(task, test.path)
            path = cell_path(results_dir, label, task.key, name, seed)
            record = _run_cell(
                task,
                seed,
                name,
                ref,
                data,
                test,
                test_cache.get(task.key),
                cfg,
                max_test,
                reuse_cache,
                None if force else path.parent,
                path.name,
                phase,
            )
            record.update(
                {
                    "model": label,
                    "model_name": model,
                    "model_path": ref.path,
                    "model_kind": ref.kind,
                    "task": task.key,
                    "task_name": task.name,
                    "method": name,
                    "seed": seed,
                    "k": table.k,
                    **meta,
                    "timestamp": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                }
            )
            write_json_atomic(path, _ordered(record))
            result.written.append(path)
            result.cells.append(record)
            bar.advance(job)
            note = " (test reused)" if record.get("reused_test_from") else ""
            short = "acc" if task.metric == "accuracy" else task.metric
            console.print(
                f"  {task.name:6} {name:15} seed {seed:<3} {short} {100 * record['score']:5.1f} "
                f"on {record['test']} (n={record['n_test']}){note}  dev {100 * (record['dev_score'] or 0):5.1f}  "
                f"train {record['train_time_s']:.0f}s eval {record['eval_time_s']:.0f}s"
            )
            gc.collect()
    return result


def _run_cell(
    task: TaskSpec,
    seed: int,
    name: str,
    ref: ModelRef,
    data: SplitData,
    test: TestSet,
    test_examples: list[Example] | None,
    cfg: BenchConfig,
    max_test: int | None,
    reuse_cache: dict[str, dict[str, Any]],
    reuse_dir: Path | None,
    cell_name: str,
    phase,
) -> dict[str, Any]:
    fn = METHODS[name]
    wall0, cpu0 = time.perf_counter(), time.process_time()
    grid = cell_configs(cfg, name, task.key)
    if getattr(fn, "composite", False):  # each member runs with its own cell options (per-task changes too)
        grid = [{**combo, "members": member_configs(cfg, name, combo["members"], task.key)} for combo in grid]
    best: Fitted | None = None
    best_config: dict[str, Any] | None = None
    tried: list[dict[str, Any]] = []
    train_time = 0.0
    for i, combo in enumerate(grid):
        note = f" (grid {i + 1}/{len(grid)})" if len(grid) > 1 else ""
        phase(f"training{note}")
        fitted = fn(task, data, ref, seed, combo)
        if fitted.dev is None:
            phase(f"scoring dev{note}")
            predicted = fitted.predictor.predict(data.dev, batch_size=cfg.eval_batch_size)
            fitted.dev = task_metrics(task, data.dev, predicted)
        train_time += fitted.train_time_s
        tried.append(
            {
                "config": combo,
                **{f"dev_{m}": fitted.dev.get(m) for m in task.metrics},
                "train_time_s": fitted.train_time_s,
                "steps": fitted.steps,
                "best_step": fitted.best_step,
            }
        )
        if best is None or fitted.dev[task.metric] > best.dev[task.metric]:  # type: ignore[index]
            best, best_config = fitted, combo
        else:
            del fitted
    assert best is not None and best_config is not None and best.dev is not None

    if test.path is None:
        examples, subset_used = data.dev, False
    else:
        assert test_examples is not None
        examples = subset(test_examples, max_test)
        subset_used = len(examples) < len(test_examples)
    reuse_key = None
    if getattr(fn, "seed_independent", False) and test.path is not None:
        reuse_key = _reuse_key(
            {
                "method": name,
                "model": ref.path,
                "task": task.key,
                "test": str(test.path),
                "n": len(examples),
                "max_test": max_test,
                "config": best_config,
                "prompt": best.info.get("prompt"),
                # multi-label zero-shot tunes its thresholds on the seed's dev split: they move predictions
                "thresholds": best.info.get("thresholds"),
            }
        )
    reused = None
    if reuse_key:
        reused = reuse_cache.get(reuse_key) or _find_reusable(reuse_dir, reuse_key, cell_name)
    eval_time = 0.0
    if reused is not None:
        metrics = {k: reused[k] for k in (*task.metrics, "n")}
        reused_from = reused["source"]
    else:
        phase(f"testing on {len(examples)} examples")
        t0 = time.perf_counter()
        predicted = best.predictor.predict(examples, batch_size=cfg.eval_batch_size)
        eval_time = time.perf_counter() - t0
        metrics = task_metrics(task, examples, predicted)
        reused_from = None
    record: dict[str, Any] = {
        **{m: metrics[m] for m in task.metrics},  # single-label: accuracy, macro_f1
        "metric": task.metric,
        "score": metrics[task.metric],
        "n_test": metrics["n"],
        "test": test.label,
        "test_path": str(test.path) if test.path else None,
        "test_overridden": test.overridden,
        "max_test": max_test,
        "test_subset": subset_used,
        **{f"dev_{m}": best.dev.get(m) for m in task.metrics},
        "dev_score": best.dev[task.metric],
        "n_train": len(data.train),
        "n_dev": len(data.dev),
        "train_time_s": round(train_time, 3),
        "eval_time_s": round(eval_time, 3),
        "steps": best.steps,
        "best_step": best.best_step,
        "config": best_config,
        "grid": tried if len(tried) > 1 else None,
        "reuse_key": reuse_key,
        "reused_test_from": reused_from,
        "info": best.info,
        "wall_time_s": round(time.perf_counter() - wall0, 3),
        "cpu_time_s": round(time.process_time() - cpu0, 3),
    }
    if test.path is None:
        record["note"] = (
            "hidden or withheld test set: scored on the seed's own dev split, which also selected the model "
            "(optimistic)"
        )
    if reuse_key and reused is None:
        reuse_cache[reuse_key] = {**{k: metrics[k] for k in (*task.metrics, "n")}, "source": cell_name}
    return record


def cell_configs(cfg: BenchConfig, method: str, task: str) -> list[dict[str, Any]]:
    """The configurations a (task, method) cell trains, one per grid point, as recorded in its JSON."""
    grid = expand_grid(cfg.method(method, task))
    for combo in grid:
        combo.setdefault("eval_batch_size", cfg.eval_batch_size)
    return grid


def member_configs(
    cfg: BenchConfig, composite: str, members: Sequence[str], task: str
) -> dict[str, dict[str, Any]]:
    """A composite method's members -> the options each runs with: its cell's (a member with a grid would
    need its own choice on dev inside the composite's, so it is refused)."""
    out = {}
    for member in members:
        grid = cell_configs(cfg, member, task)
        if len(grid) > 1:
            raise ConfigError(
                f"{composite} member {member} has a grid of {len(grid)} points on {task}: give it one "
                f"setting (methods.{member}.grid: {{}} in the --config file)"
            )
        out[member] = grid[0]
    return out


def _refits(cfg: BenchConfig, method: str, task: str) -> bool:
    """Whether any configuration of the cell (a composite's members too) trains again on train + dev."""
    combos = cell_configs(cfg, method, task)
    if getattr(METHODS[method], "composite", False):
        combos += [
            c for combo in combos for c in member_configs(cfg, method, combo["members"], task).values()
        ]
    return any(combo.get("refit") for combo in combos)


def _find_reusable(directory: Path | None, key: str, cell_name: str) -> dict[str, Any] | None:
    """A finished sibling cell (another seed) whose seed-independent test scores can be reused."""
    if directory is None or not directory.is_dir():
        return None
    for other in sorted(directory.glob("seed*.json")):
        if other.name == cell_name:
            continue
        data = read_cell(other)
        if data and data.get("reuse_key") == key:
            return {
                **{k: data[k] for k in _SCORES if k in data},
                "n": data["n_test"],
                "source": data.get("reused_test_from") or other.name,
            }
    return None


_SCORES = ("accuracy", "macro_f1", "micro_f1", "subset_accuracy", "pearson", "spearman")  # what a cell keeps


def _ordered(record: dict[str, Any]) -> dict[str, Any]:
    first = ["model", "task", "method", "seed", "metric", "score", "accuracy", "macro_f1", "n_test", "test"]
    return {**{k: record[k] for k in first if k in record}, **record}


class _quiet_transformers:
    """Silence Hugging Face progress bars (they would fight the benchmark's own progress display)."""

    def __enter__(self):
        from transformers.utils import logging as hf_logging

        self._hf = hf_logging
        self._was = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        return self

    def __exit__(self, *exc):
        if self._was:
            self._hf.enable_progress_bar()
        return False
