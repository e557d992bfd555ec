"""Benchmark methods `pet` and `ipet` (issue 11; registered when `promptft.bench.methods` is imported).

One LoRA prompt model per pattern (`promptft.ensemble.pet`): the task's own prompt first, then the
template library's patterns for the task (`template_type` in tasks.yaml) that the model can read, in the
library's order, up to `n_patterns`, all with the prompt's label words; or the `patterns:` option's list
(templates, or {template, label_words}). The pool is the task's `pool:` file without the seed's train and
dev sentences, a sample of `pool_limit` of them drawn with the cell's seed. Tasks without a pool are
skipped by the runner (and it says so). The cell's train time is the whole run (pattern models, pool
scoring, the final classifier); its dev score is the final classifier's (chosen on dev);
`info` holds every pattern model's dev score and weight, each generation's sizes and ensemble dev score,
the pool size and the times.

Options: the prompt methods' (learning_rate, max_steps, ..., lora, max_length: every pattern model's)
plus `PetConfig`'s fields (generations, pool_limit, temperature, weighting, final_steps, ...) and
`n_patterns` / `patterns`.
"""

from __future__ import annotations

from typing import Any

from promptft.bench.methods import (
    Fitted,
    ModelRef,
    SplitData,
    _PreparedPredictor,
    job_of,
    method,
    require_single_label,
)
from promptft.bench.tasks import TaskSpec, read_split
from promptft.config.base import check_keys
from promptft.config.bench import OPTION_KEYS
from promptft.config.pet import PetConfig
from promptft.errors import ConfigError, DataError

PATTERN_KEYS = ("n_patterns", "patterns")
DEFAULT_PATTERNS = 4


def split_options(config: dict[str, Any], name: str) -> tuple[dict[str, Any], PetConfig, dict[str, Any]]:
    """(the job options, the PET settings, the pattern options) of a pet/ipet cell's flat options."""
    pet_keys = list(PetConfig.model_fields)
    job_keys = [k for k in OPTION_KEYS if k != "demonstrations"]  # plain prompt models
    check_keys(config, [*job_keys, *pet_keys, *PATTERN_KEYS], f"methods.{name}", f"{name} option")
    job = {k: v for k, v in config.items() if k not in pet_keys and k not in PATTERN_KEYS}
    settings = PetConfig.parse({k: v for k, v in config.items() if k in pet_keys}, f"methods.{name}")
    patterns = {k: v for k, v in config.items() if k in PATTERN_KEYS}
    n = patterns.get("n_patterns", DEFAULT_PATTERNS)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"methods.{name}.n_patterns must be a positive integer, got {n!r}")
    if "patterns" in patterns and not isinstance(patterns["patterns"], list):
        raise ConfigError(f"methods.{name}.patterns must be a list of templates or {{template, label_words}}")
    return job, settings, patterns


def task_patterns(task: TaskSpec, kind: str, options: dict[str, Any]):
    """The cell's patterns: the `patterns` option, else the task's prompt and library templates."""
    from promptft.ensemble.pet import Pattern, as_patterns

    spec = task.prompt_for(kind)
    if "patterns" in options:
        return as_patterns(options["patterns"], spec.label_words)
    n = options.get("n_patterns", DEFAULT_PATTERNS)
    patterns = [Pattern(spec.template, dict(spec.label_words))]
    if n > 1 and task.template_type:
        from promptft.search.templates import library_templates

        for template in library_templates(task.template_type, task.field_names, kind):
            if len(patterns) >= n:
                break
            if template != spec.template:
                patterns.append(Pattern(template, dict(spec.label_words)))
    return patterns


def _pet_cell(
    task: TaskSpec, data: SplitData, model: ModelRef, seed: int, config: dict[str, Any], name: str
) -> Fitted:
    from promptft.classifiers import PromptClassifier
    from promptft.ensemble.pet import exclude_examples, run_pet, sample_pool
    from promptft.training import set_seed

    require_single_label(task, name)
    if data.pool is None:
        raise DataError(
            f"{task.name} has no unlabelled pool for {name}: add `pool: FILE` to the task table, or leave "
            f"{name} out"
        )
    job_options, settings, pattern_options = split_options(config, name)
    if name == "ipet" and not settings.ipet:
        raise ConfigError(
            f"ipet runs 2 or more generations: set methods.ipet.generations >= 2, not {settings.generations}"
        )
    if name == "pet" and settings.ipet:
        raise ConfigError("pet is one generation: use the ipet method for generations >= 2")
    job = job_of(job_options, seed, "prompt", "lora")
    spec = task.prompt_for(model.kind)
    patterns = task_patterns(task, model.kind, pattern_options)
    train, dev = spec.prepare(data.train), spec.prepare(data.dev)
    raw = read_split(task, data.pool)
    pool = sample_pool(exclude_examples(raw, data.train, data.dev), settings.pool_limit, seed)
    pool = spec.prepare(pool)

    def build(pattern):
        set_seed(seed)
        clf = PromptClassifier(
            model.load_backbone(),
            pattern.template,
            pattern.label_words,
            max_length=job.prompt.max_length,
            base_model=model.name,
            objective=task.objective(),
        )
        clf.set_finetune(job.model.adapter_settings())
        return clf

    outcome = run_pet(
        build, patterns, train, dev, pool, labels=task.label_names, train_config=job.train, settings=settings,
        batch_size=job.train.eval_batch_size,
    )  # fmt: skip
    info = {
        "kind": model.kind,
        "prompt": spec.to_dict(),
        "pool_file": str(data.pool),
        "pool_texts": len(raw),
        **outcome.to_dict(),
    }
    return Fitted(
        _PreparedPredictor(outcome.classifier, spec.prepare),
        train_time_s=outcome.seconds,
        steps=int(outcome.final.get("steps") or 0),
        best_step=int(outcome.final.get("best_step") or 0),
        dev=outcome.final.get("best_dev"),
        info=info,
    )


@method("pet", task_types=("single_label",), needs_pool=True)
def pet(task: TaskSpec, data: SplitData, model: ModelRef, seed: int, config: dict[str, Any]) -> Fitted:
    """PET: a LoRA prompt model per pattern, ensembled by dev score, distilled through the pool's soft labels."""
    return _pet_cell(task, data, model, seed, config, "pet")


@method("ipet", task_types=("single_label",), needs_pool=True)
def ipet(task: TaskSpec, data: SplitData, model: ModelRef, seed: int, config: dict[str, Any]) -> Fitted:
    """iPET: PET's pattern models retrained for more generations on pool examples the others labelled."""
    return _pet_cell(task, data, model, seed, config, "ipet")
