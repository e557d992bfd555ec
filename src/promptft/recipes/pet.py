"""The pet recipe (`promptft pet`, `promptft.pet(...)`): PET / iPET from files into a run folder.

    from promptft import pet

    result = pet(job, ["Text: {text}\\nSentiment: {mask}"], pool="SST-2/train.tsv", pool_limit=1000)

`job` is a train job (a `JobConfig`, a mapping of one, or a YAML file): its data files and columns, its
model and adapter, its training settings (those of every pattern model), its prompt (the first pattern)
and its output folder. `patterns` add more patterns (a template alone takes the job's label words); the
settings are `PetConfig`'s fields (`generations=2` for iPET, `weighting`, `temperature`, `pool_limit`,
`final_steps`, ...). The algorithm is `promptft.ensemble.pet`; this file reads and checks the files,
keeps the run folder and writes what was done.

The pool is the pool file's texts, read with the job's columns, without duplicates and without any text of
the train, dev or test file (a labelled or test example never gets a pseudo-label), then a seeded sample
of `pool_limit`. The run folder holds:

* `pet_config.json`: the job, patterns, settings and pool (a rerun with other settings is refused)
* `gen<g>/pattern<i>/`: each pattern model's Trainer run folder, with its pool and dev log-probabilities
* `final/`: the final classifier's Trainer run folder; `best/` a copy of its `best/` (the run's model, as
  for `promptft train`: `promptft eval|predict RUN_DIR` work on it), `job.yaml` (the first pattern's job,
  so eval and predict read files with the same columns), `final_metrics.json`, `test_metrics.json`
* `pet.json`: per-model dev scores and weights, each generation's sizes and ensemble dev score, the pool
  size, the final classifier's dev (and test) metrics and the times

An interrupted run resumes when the same call (or command) is repeated: finished models are reused and the
model in progress resumes from its last checkpoint. A finished run is never overwritten.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptft.config import JobConfig, PetConfig, apply_overrides
from promptft.data.sources import HF_PREFIX, names_dataset
from promptft.data.splits import SPLITS, load_split
from promptft.ensemble.pet import (
    FINAL_DIR,
    Pattern,
    as_patterns,
    check_pet,
    exclude_examples,
    run_pet,
    sample_pool,
)
from promptft.errors import ConfigError, DataError, RunDirError
from promptft.recipes.run_dir import BEST_DIR, JOB_FILE, TEST_FILE, check_writable, run_lock, write_json
from promptft.recipes.train import build_classifier, check_data, check_job, head_fields, job_labels
from promptft.training.trainer import FINAL

log = logging.getLogger(__name__)

CONFIG_FILE = "pet_config.json"
SUMMARY_FILE = "pet.json"
DEFAULT_HEAD_MODEL = "minilm-l6"


@dataclass
class PetResult:
    run_dir: str
    ensemble_dev: dict[str, float] | None
    final_dev: dict[str, float] | None
    test: dict[str, float] | None
    pool_size: int
    generations: int
    summary: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.summary)


def _as_job(job: JobConfig | Mapping[str, Any] | str | Path) -> JobConfig:
    if isinstance(job, JobConfig):
        return job
    if isinstance(job, Mapping):
        data = dict(job)
        model = dict(data.get("model") or {})
        model.setdefault("finetune", "lora")  # PET trains a model per pattern: LoRA unless the job says
        return JobConfig.parse({**data, "model": model})
    return JobConfig.from_yaml(job)


def pet(
    job: JobConfig | Mapping[str, Any] | str | Path,
    patterns: Sequence[Pattern | str | tuple | Mapping[str, Any]] = (),
    *,
    pool: str | Path,
    settings: PetConfig | Mapping[str, Any] | None = None,
    on_progress=None,
    **options: Any,
) -> PetResult:
    """Run PET (iPET with `generations >= 2`) as the module docstring says; returns (and writes to
    `<output>/pet.json`) what was done. `options` are `PetConfig` fields and win over `settings`."""
    job = _as_job(job)
    base = settings.to_dict() if isinstance(settings, PetConfig) else dict(settings or {})
    config = PetConfig.parse({**base, **options}, "pet")
    _check_job(job)
    all_patterns = as_patterns([(job.prompt.template, job.prompt.label_words or {})]) + as_patterns(
        patterns, job.prompt.label_words
    )
    check_pet(all_patterns, config, bool(job.data.dev))
    jobs = [_pattern_job(job, p) for p in all_patterns]
    for pattern_job in jobs:
        check_job(pattern_job)  # every template and verbalizer, before any data is read
    if not names_dataset(pool) and not Path(pool).exists():
        raise DataError(f"pool file not found: {pool} (looked at {Path(pool).resolve()}): check --pool")
    run_dir = Path(str(job.output))
    record = _record(job, all_patterns, config, pool)
    _check_run_dir(run_dir, record)

    spec = job.reader_options()
    paths = {which: getattr(job.data, which) for which in SPLITS}
    splits = {which: load_split(paths, which, spec) for which in SPLITS}
    labels = job_labels(job, [*(splits["train"] or []), *(splits["dev"] or [])])
    for pattern_job in jobs:
        check_data(pattern_job, splits, labels)
    train, dev, test = splits["train"] or [], splits["dev"] or [], splits["test"] or []

    from promptft.recipes.distill import read_pool

    raw = read_pool(pool, job.data)
    kept = exclude_examples(raw, train, dev, test)
    removed = len(raw) - len(kept)
    if removed:
        log.info("pet: %d pool text(s) are train, dev or test examples and were left out", removed)
    if not kept:
        raise DataError(
            f"{pool}: the pool has no text besides the train, dev and test examples: give a pool of other "
            "unlabelled texts of the task"
        )
    missing = [f for f in _template_fields(all_patterns) if f not in kept[0].fields]
    if missing:
        raise DataError(
            f"{pool}: the pool has no field(s) {missing} that the templates use: map them with --field "
            "NAME=COLUMN (the pool is read with the job's columns)"
        )
    pool_examples = sample_pool(kept, config.pool_limit, job.train.seed)

    def build(pattern: Pattern):
        return build_classifier(_pattern_job(job, pattern), labels)

    build_final = None
    if config.final == "head":
        build_final = _head_builder(job, config, labels)

    with run_lock(run_dir):
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / CONFIG_FILE, record)
        outcome = run_pet(
            build, all_patterns, train, dev, pool_examples, labels=labels, train_config=job.train,
            settings=config, build_final=build_final, run_dir=run_dir, batch_size=job.train.eval_batch_size,
            on_progress=on_progress,
        )  # fmt: skip
        clf = outcome.classifier
        shutil.rmtree(run_dir / BEST_DIR, ignore_errors=True)
        shutil.copytree(run_dir / FINAL_DIR / BEST_DIR, run_dir / BEST_DIR)
        final_job = jobs[0] if config.final == "prompt" else _head_job(job, config)
        (run_dir / JOB_FILE).unlink(missing_ok=True)
        final_job.to_yaml(run_dir / JOB_FILE)
        test_metrics = None
        if test:
            t0 = time.perf_counter()
            test_metrics = clf.evaluate(test, job.train.eval_batch_size)
            outcome.times["test_s"] = round(time.perf_counter() - t0, 3)
            write_json(run_dir / TEST_FILE, test_metrics)
        summary = {
            "pet": True,
            "ipet": config.ipet,
            "run_dir": str(run_dir),
            "model": job.model.name,
            "adapter": job.model.finetune,
            "train": job.data.train,
            "dev": job.data.dev,
            "test": job.data.test,
            "pool": str(pool),
            "pool_texts": len(raw),
            "pool_excluded_labelled": removed,
            **outcome.to_dict(),
            "test_metrics": test_metrics,
            "train_config": job.train.to_dict(),
        }
        write_json(run_dir / SUMMARY_FILE, summary)
        write_json(
            run_dir / FINAL,
            {
                "pet": True,
                "best_dev": outcome.final.get("best_dev"),
                "best_step": outcome.final.get("best_step"),
                "steps": outcome.final.get("steps"),
                "ensemble_dev": outcome.ensemble_dev,
            },
        )
    return PetResult(
        run_dir=str(run_dir),
        ensemble_dev=outcome.ensemble_dev,
        final_dev=outcome.final.get("best_dev"),
        test=test_metrics,
        pool_size=outcome.pool_size,
        generations=config.generations,
        summary=summary,
    )


def _template_fields(patterns: Sequence[Pattern]) -> list[str]:
    from promptft.prompts.template import Template

    return list(dict.fromkeys(f for p in patterns for f in Template(p.template).fields))


def _check_job(job: JobConfig) -> None:
    if job.model.method != "prompt":
        raise ConfigError(
            f"PET ensembles prompt models: --method {job.model.method} is not supported; use --method prompt"
        )
    if job.task.type != "single_label":
        raise ConfigError(
            f"PET's soft labels are distributions over exclusive labels: single-label tasks only, not "
            f"{job.task.type}"
        )
    if job.model.finetune == "none":
        raise ConfigError("PET fine-tunes one model per pattern: --finetune none is not possible; use lora")
    if job.prompt.calibrate != "none" or job.prompt.demonstrations is not None:
        raise ConfigError("PET's pattern models are plain prompt models: drop --calibrate / --demonstrations")
    if not job.data.train:
        raise ConfigError("PET trains on labelled examples: pass --train PATH")
    if not job.output:
        raise ConfigError("no run folder: pass --output RUN_DIR")


def _pattern_job(job: JobConfig, pattern: Pattern) -> JobConfig:
    return apply_overrides(
        job, {"prompt.template": pattern.template, "prompt.label_words": pattern.to_dict()["label_words"]}
    )


def _head_job(job: JobConfig, config: PetConfig) -> JobConfig:
    return apply_overrides(
        job,
        {
            "model.method": "head",
            "model.finetune": "full",
            "model.name": config.final_model or DEFAULT_HEAD_MODEL,
        },
    )


def _head_builder(job: JobConfig, config: PetConfig, labels: Sequence[str]):
    def build():
        from promptft.classifiers import HeadClassifier

        return HeadClassifier.from_model(
            config.final_model or DEFAULT_HEAD_MODEL,
            list(labels),
            head_fields(job),
            finetune="full",
            max_length=job.prompt.max_length,
            device=job.model.device,
            seed=job.train.seed,
        )

    return build


def _record(
    job: JobConfig, patterns: Sequence[Pattern], config: PetConfig, pool: str | Path
) -> dict[str, Any]:
    d = job.to_dict()
    d.pop("output")
    d["train"].pop("progress")
    return {
        "job": d,
        "patterns": [p.to_dict() for p in patterns],
        "pet": config.to_dict(),
        "pool": str(pool) if str(pool).startswith(HF_PREFIX) else str(Path(pool).resolve()),
    }


def _check_run_dir(run_dir: Path, record: Mapping[str, Any]) -> None:
    """A new or empty folder, or an interrupted PET run of the same settings (resumed)."""
    check_writable(run_dir, "the run folder")
    if (run_dir / FINAL).exists():
        raise RunDirError(
            f"{run_dir} already holds a finished run ({FINAL}); promptft never overwrites one: choose another "
            f"--output. To score it: promptft eval {run_dir} --data TEST"
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"--output {run_dir} is a file: give a folder for the run")
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return
    saved_path = run_dir / CONFIG_FILE
    if not saved_path.exists():
        raise RunDirError(
            f"{run_dir} is not empty and holds no PET run to resume: choose an empty or new --output folder"
        )
    saved = json.loads(saved_path.read_text())
    if saved != json.loads(json.dumps(record)):
        changed = [k for k in record if saved.get(k) != json.loads(json.dumps(record[k]))]
        raise RunDirError(
            f"{run_dir} holds an unfinished PET run with other settings ({', '.join(changed)}): repeat the "
            "same command to resume it, or choose another --output"
        )
    log.warning("resuming the PET run in %s", run_dir)
