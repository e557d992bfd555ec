"""Benchmark methods of issue 11 that search the prompt before fine-tuning it (registered when
`promptft.bench.methods` is imported). Everything is chosen on the seed's train and dev splits; the cell's
train time includes the search.

* `auto_label_words`: LM-BFF's label-word search (`promptft.search.label_words`) on the task's template,
  then LoRA prompt FT with the words found. Options: the prompt methods' (learning_rate, max_steps, lora,
  ...) plus `search: {k, top_n, rank, screen, finetune_top, finetune_steps}`.
* `auto_template`: template search (`promptft.search.templates`: the library's patterns for the task's
  `template_type`, generated templates, and the task's own template competing) with the task's label words,
  then LoRA prompt FT with the template found. Options: the prompt methods' plus `search: {generate,
  keep_generated, max_generated, samples, finetune_top, finetune_steps}`.

Both searches score without demonstrations; with `demonstrations: {...}` in the options, the fine-tune of the
prompt found (and its predictions) puts them in context, as the `demonstrations` method does.

The `auto` method runs the `train --auto` recipe, so it lives with the recipes (`promptft.recipes.bench_auto`,
registered when `promptft.recipes.bench` is imported: the `bench run` command does).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from promptft.bench.methods import (
    Fitted,
    ModelRef,
    SplitData,
    _prompt_method,
    job_of,
    method,
    require_single_label,
)
from promptft.bench.tasks import TaskSpec
from promptft.config.base import check_keys
from promptft.config.bench import OPTION_KEYS
from promptft.errors import ConfigError

WORD_SEARCH_KEYS = ("k", "top_n", "rank", "screen", "finetune_top", "finetune_steps")
TEMPLATE_SEARCH_KEYS = (
    "generate",
    "keep_generated",
    "max_generated",
    "samples",
    "finetune_top",
    "finetune_steps",
)
# The search scores zero-shot; `demonstrations` (if set) apply to the fine-tune of the prompt it found.
JOB_KEYS = [k for k in OPTION_KEYS if k not in ("calibrate", "content_free")]


def _split(config: dict[str, Any], name: str, search_keys: tuple[str, ...]) -> tuple[dict, dict]:
    """(the LoRA prompt job's options, the `search:` options) of a cell's options, both checked."""
    check_keys(config, [*JOB_KEYS, "search"], f"methods.{name}", f"{name} option")
    search = config.get("search") or {}
    if not isinstance(search, dict):
        raise ConfigError(f"methods.{name}.search must be a mapping of {', '.join(search_keys)}")
    check_keys(search, search_keys, f"methods.{name}.search", "search option")
    return {k: v for k, v in config.items() if k != "search"}, dict(search)


def _searched_then_tuned(task, data, model, seed, job_options, prompt, search_seconds, search_info) -> Fitted:
    """LoRA prompt FT with the searched prompt; the search's time is part of the cell's train time."""
    fitted = _prompt_method(task, data, model, seed, job_options, "lora", prompt=prompt)
    fitted.train_time_s += search_seconds
    fitted.info["search"] = {**search_info, "seconds": round(search_seconds, 2)}
    fitted.info["finetune_seconds"] = round(fitted.train_time_s - search_seconds, 2)
    return fitted


def _search_source(model: ModelRef, finetune_top: int):
    """Zero-shot screens share one frozen backbone; short fine-tunes need fresh ones."""
    return model.load_backbone if finetune_top else model.frozen_backbone


@method("auto_label_words", task_types=("single_label",))
def auto_label_words(
    task: TaskSpec, data: SplitData, model: ModelRef, seed: int, config: dict[str, Any]
) -> Fitted:
    """LM-BFF label-word search on the task's template, then LoRA prompt FT with the words found."""
    from promptft.search.label_words import search_label_words

    require_single_label(task, "auto_label_words")
    job_options, search = _split(config, "auto_label_words", WORD_SEARCH_KEYS)
    max_length = job_of(job_options, seed, "prompt", "lora").prompt.max_length  # validated before the search
    spec = task.prompt_for(model.kind)
    start = time.perf_counter()
    found = search_label_words(
        _search_source(model, int(search.get("finetune_top", 0))),
        spec.template,
        spec.prepare(data.train),
        spec.prepare(data.dev),
        labels=task.label_names,
        seed=seed,
        kind=model.kind,
        max_length=max_length,
        **search,
    )
    seconds = time.perf_counter() - start
    words = found.label_words
    info = {
        "label_words": words,
        "task_label_words": spec.label_words,
        "best": dataclasses.asdict(found.best),
        "top_assignments": [dataclasses.asdict(a) for a in found.assignments[:5]],
        "settings": found.settings,
    }
    prompt = dataclasses.replace(spec, label_words=dict(words))
    return _searched_then_tuned(task, data, model, seed, job_options, prompt, seconds, info)


@method("auto_template", task_types=("single_label",))
def auto_template(
    task: TaskSpec, data: SplitData, model: ModelRef, seed: int, config: dict[str, Any]
) -> Fitted:
    """Template search (library + generated + the task's own) with the task's words, then LoRA prompt FT."""
    from promptft.search.templates import search_templates

    require_single_label(task, "auto_template")
    job_options, search = _split(config, "auto_template", TEMPLATE_SEARCH_KEYS)
    max_length = job_of(job_options, seed, "prompt", "lora").prompt.max_length  # validated before the search
    spec = task.prompt_for(model.kind)
    start = time.perf_counter()
    found = search_templates(
        _search_source(model, int(search.get("finetune_top", 0))),
        spec.prepare(data.train),
        spec.prepare(data.dev),
        spec.label_words,
        task_type=task.template_type,
        templates=[spec.template],
        seed=seed,
        kind=model.kind,
        max_length=max_length,
        **search,
    )
    seconds = time.perf_counter() - start
    best = found.best
    info = {
        "template": best.template,
        "source": best.source,
        "task_template": spec.template,
        "candidates": len(found.ranked),
        "top": [dataclasses.asdict(c) for c in found.ranked[:5]],
        "task_template_rank": next(
            (i + 1 for i, c in enumerate(found.ranked) if c.template == spec.template), None
        ),
        "settings": found.settings,
    }
    prompt = dataclasses.replace(spec, template=best.template)
    return _searched_then_tuned(task, data, model, seed, job_options, prompt, seconds, info)
