"""The train recipe: a `JobConfig` in, a trained (or zero-shot) classifier in a run folder out.

    from promptft.config import JobConfig
    from promptft.recipes import train

    result = train(JobConfig.from_yaml("examples/sst2_prompt_lora.yaml"))

Checks everything it can before loading data or a model (`check_job`), then the data against the prompt
(`check_data`), then trains under the run folder's lock, resumes an interrupted run, and scores the best
model on the test file. `promptft train` is this function behind flags.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from promptft.classifiers.card import update_model_card
from promptft.config import JobConfig, PromptConfig
from promptft.data import Example, label_names
from promptft.data.splits import SPLITS, load_split
from promptft.errors import ConfigError, DataError, TemplateError, VerbalizerError
from promptft.objectives.regression import VALUE_LABEL
from promptft.prompts.template import Template
from promptft.prompts.verbalizer import Verbalizer
from promptft.recipes.run_dir import (
    BEST_DIR,
    JOB_FILE,
    TEST_FILE,
    check_resume,
    check_writable,
    run_dir_state,
    run_lock,
    write_job,
    write_json,
)
from promptft.training.distributed import is_main_process
from promptft.training.trainer import FINAL, Trainer, TrainResult

log = logging.getLogger(__name__)

__all__ = ["JobResult", "build_classifier", "check_data", "check_job", "train"]


def job_labels(job: JobConfig, examples: Sequence[Example] = ()) -> list[str]:
    """The classifier's labels, in order: the label words' labels, else the label map's names, else
    the labels found in `examples`. A regression head has one output, `value`."""
    if job.task.type == "regression" and job.model.method == "head":
        return [VALUE_LABEL]
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
            "(or prompt.label_words in the config), or let `promptft train --auto` search them"
        )
    return Verbalizer(prompt.label_words, prompt.token_reduction, prompt.word_reduction)


def check_job(job: JobConfig, *, needs_output: bool = True, examples_given: bool = False) -> None:
    """Catch configuration mistakes before any data or model is loaded. examples_given: the caller holds
    the train and dev examples in memory (the benchmark), so the job names no data files."""
    m = job.model
    has_train = examples_given or bool(job.data.train)
    has_dev = examples_given or bool(job.data.dev)
    if m.method == "yes_no":
        if "label" not in Template(job.prompt.template).fields:
            raise ConfigError(
                "--method yes_no asks a question per label: the template needs a {label} field, e.g. "
                '"{text}\nDoes it express {label}? {mask}"'
            )
        if job.task.type != "multi_label":
            raise ConfigError("--method yes_no is for multi-label tasks: add --task multi_label")
        if not job.prompt.label_words and not job.data.label_map:
            raise ConfigError("--method yes_no needs the label names: give --label-map (or --label-words)")
    elif m.method in ("prompt", "channel"):
        template = Template(job.prompt.template)  # no slot, bad braces, ... raise TemplateError here
        verbalizer = make_verbalizer(job.prompt)
        if job.prompt.calibrate != "none" and job.task.type != "single_label":
            raise ConfigError(
                f"--calibrate {job.prompt.calibrate} divides out a bias over mutually exclusive labels: it is "
                f"for single-label tasks, not {job.task.type}; drop it"
            )
        if "temperature" in job.prompt.calibrate and not has_dev:
            raise ConfigError(
                f"--calibrate {job.prompt.calibrate} fits the temperature on labelled dev examples: give --dev "
                "(a few dozen examples are enough)"
            )
        if m.method == "channel" and "contextual" in job.prompt.calibrate:
            raise ConfigError(
                "--method channel scores P(text | label), where contextual calibration does not apply: use "
                "--calibrate temperature, or drop --calibrate"
            )
        if m.method == "channel" and job.task.type != "single_label":
            raise ConfigError(
                f"--method channel compares P(text | label) across labels: single-label only, not {job.task.type}"
            )
        if m.method == "channel" and not any(s.kind == "field" for s in template.after_slot):
            raise ConfigError(
                f"--method channel scores the text after the label word: the template {template.text!r} needs "
                'a field after {mask}, e.g. "Sentiment: {mask}\nReview: {text}"'
            )
        if job.task.type == "regression" and len(verbalizer.labels) != 2:
            raise ConfigError(
                f"regression through a prompt takes two label words, the lower pole first (e.g. --label-words "
                f"low=no,high=yes); got {len(verbalizer.labels)}: {verbalizer.labels}"
            )
    elif m.finetune == "none":
        raise ConfigError(
            "--finetune none (zero-shot) needs a prompt: the head baseline's new head must be trained; "
            "use --method prompt, or --finetune full|lora"
        )
    elif m.finetune not in ("full", "lora"):
        raise ConfigError(
            f"the head baseline trains a new head in full or with LoRA, not with {m.finetune}: use "
            "--finetune full|lora, or --method prompt"
        )
    if job.prompt.demonstrations is not None:
        if m.method != "prompt":
            raise ConfigError(
                f"demonstrations are for --method prompt, not {m.method}: drop --demonstrations"
            )
        if job.task.type != "single_label":
            raise ConfigError(
                f"demonstrations fill in one label word per example: single-label only, not {job.task.type}"
            )
        if not has_train:
            raise ConfigError(
                "demonstrations are drawn from the training set: pass --train PATH (zero-shot too)"
            )
    if m.finetune != "none" and not has_train:
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


def check_data(
    job: JobConfig, splits: Mapping[str, Sequence[Example] | None], labels: Sequence[str] | None = None
) -> None:
    """Fail early when the data and the prompt do not fit: every label has words, every field a column.

    `labels`: the head baseline's labels (default: `job_labels` of the train split)."""
    named = {which: ex for which, ex in splits.items() if ex}
    if job.model.method == "yes_no":
        labels = job_labels(job)
        check_label_words(job, label_names(ex for examples in named.values() for ex in examples))
        for which, examples in named.items():
            path = getattr(job.data, which, which)
            unknown = sorted(set(label_names(examples)) - set(labels))
            if unknown:
                raise DataError(
                    f"{path} has label(s) {unknown} that are not among {labels}: fix the label map"
                )
            missing = [
                f
                for f in Template(job.prompt.template).fields
                if f != "label" and f not in examples[0].fields
            ]
            if missing:
                raise TemplateError(
                    f"{path}: the template's field(s) {missing} are not in the data (--field NAME=COLUMN)"
                )
    elif job.model.method in ("prompt", "channel"):
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
                if job.task.type != "regression":  # a regression prompt's labels are its two poles
                    verbalizer.check_labels(label_names(examples))
            except VerbalizerError as err:
                raise VerbalizerError(f"{path}: {err} (--label-words, --label-map)") from None
    else:
        labels = list(labels) if labels else job_labels(job, named.get("train", ()))
        wanted = head_fields(job)
        for which, examples in named.items():
            path = getattr(job.data, which, which)
            unknown = sorted(set(label_names(examples)) - set(labels))
            if unknown:
                raise DataError(
                    f"{path} has label(s) {unknown} that the classifier does not know ({labels}): "
                    "fix the label map (--label-map) or the data"
                )
            missing = [f for f in wanted if f not in examples[0].fields]
            if missing:
                raise DataError(f"{path} has no field(s) {missing}: map them with --field NAME=COLUMN")


def build_classifier(job: JobConfig, labels: Sequence[str] | None = None):
    """The untrained classifier a job describes (PromptClassifier or, for `method: head`, HeadClassifier).

    `labels` is only used by the head baseline when neither label words nor a label map name them.
    The adapter's random initialisation (LoRA, soft prompts, ...) is seeded with `train.seed`.
    """
    import torch

    from promptft.classifiers import HeadClassifier, PromptClassifier

    m = job.model
    settings = m.adapter_settings()  # a fresh copy: the head adds its modules to LoRA's
    lora = settings if m.finetune == "lora" else None
    torch.manual_seed(job.train.seed)
    if m.method == "yes_no":
        from promptft.classifiers import YesNoClassifier

        texts = job.prompt.label_words or {label: label for label in job_labels(job)}
        return YesNoClassifier.from_model(
            m.name,
            job.prompt.template,
            {label: text if isinstance(text, str) else text[0] for label, text in texts.items()},
            answers=job.prompt.answers,
            kind=m.kind,
            finetune=settings,
            max_length=job.prompt.max_length,
            device=m.device,
            objective=job.task.objective(list(texts)),
            train_negatives=job.prompt.train_negatives,
        )
    if m.method == "channel":
        from promptft.classifiers import ChannelClassifier

        verbalizer = make_verbalizer(job.prompt)
        channel = ChannelClassifier.from_model(
            m.name,
            job.prompt.template,
            verbalizer,
            kind=m.kind,
            finetune=settings,
            max_length=job.prompt.max_length,
            device=m.device,
            objective=job.task.objective(verbalizer.labels),
        )
        if job.prompt.calibrate != "none":  # temperature only: check_job refuses contextual here
            channel.set_calibration(job.prompt.calibrate)
        return channel
    if m.method == "prompt":
        verbalizer = make_verbalizer(job.prompt)
        return PromptClassifier.from_model(
            m.name,
            job.prompt.template,
            verbalizer,
            kind=m.kind,
            finetune=settings,
            max_length=job.prompt.max_length,
            device=m.device,
            objective=job.task.objective(verbalizer.labels),
            calibrate=job.prompt.calibrate,
            content_free=job.prompt.content_free,
            demonstrations=job.prompt.demonstrations,
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
        objective=job.task.objective(labels),
        finetune=m.finetune,
        lora=lora,
        max_length=job.prompt.max_length,
        device=m.device,
        seed=job.train.seed,
    )


@dataclass
class JobResult:
    run_dir: str
    steps: int
    best_step: int
    best_dev: dict[str, float] | None
    test: dict[str, float] | None
    train_time_s: float
    zero_shot: bool = False
    metric: str = "accuracy"  # the dev metric that picked the best step (the task's, e.g. pearson)
    refit: dict[str, Any] | None = None  # train.refit: the second run on train + dev (the saved model)
    time_limited: bool = False  # train.max_minutes stopped training before max_steps
    refit_skipped: str | None = None  # train.refit, but train.max_minutes left no time for it: why

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train(job: JobConfig) -> JobResult:
    """Run a job: train (or, with `finetune: none`, only evaluate) into `job.output`, then test.

    The run folder gets the Trainer's files (train_config.json, metrics.jsonl, final_metrics.json, best/),
    job.yaml, and test_metrics.json when the job has a test file. An interrupted run resumes where its last
    checkpoint left off when run again with the same job; a finished run is never overwritten.
    """
    check_job(job)
    run_dir = Path(str(job.output))
    run_dir_state(run_dir)  # a finished run or a foreign folder: say so before reading any data
    zero_shot = job.model.finetune == "none"
    demos = job.prompt.demonstrations is not None
    if zero_shot and job.data.train and not demos:
        log.info("--finetune none: no training, the train file is not read")
    paths = {which: getattr(job.data, which) for which in SPLITS}
    spec = job.reader_options()
    splits = {
        which: None if zero_shot and which == "train" and not demos else load_split(paths, which, spec)
        for which in SPLITS
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
    if job.model.method == "head" or first is None:
        return
    fields = dict(first.fields)
    if job.model.method == "yes_no":  # one question per label: show the first
        fields["label"] = (
            next(iter(job.prompt.label_words.values())) if job.prompt.label_words else job_labels(job)[0]
        )
    prompt = Template(job.prompt.template).render(fields)
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
    clf.note_for_card(
        data={
            split: str(getattr(job.data, split))
            for split in ("train", "dev", "test")
            if getattr(job.data, split)
        },
        command=invoking_command(),
        job=str(run_dir / JOB_FILE),
    )

    if zero_shot:
        start = time.perf_counter()
        if splits["train"] and getattr(clf, "demonstrations", None) is not None:
            clf.set_demonstration_pool(splits["train"])  # zero-shot with demonstrations: drawn from train
        if splits["dev"]:
            clf.tune(splits["dev"], cfg.eval_batch_size, cfg.progress)  # e.g. multi-label thresholds
        best_dev = clf.evaluate(splits["dev"], cfg.eval_batch_size, cfg.progress) if splits["dev"] else None
        clf.note_for_card(dev=best_dev, training={"n_dev": len(splits["dev"] or []), "steps": 0})
        if is_main_process():  # under `accelerate launch`, one process writes
            run_dir.mkdir(parents=True, exist_ok=True)
            write_job(job)
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
            write_json(run_dir / FINAL, {**result.to_dict(), "zero_shot": True})
    else:
        # job.yaml goes in once the Trainer has set up (or resumed) the folder: a fresh run must start empty.
        trainer = Trainer(clf, cfg, run_dir=job.output, on_run_dir=lambda _: write_job(job))
        result = trainer.train(splits["train"], splits["dev"])

    test = None
    if splits["test"]:
        test = clf.evaluate(splits["test"], cfg.eval_batch_size, cfg.progress)
        if is_main_process():
            write_json(run_dir / TEST_FILE, test)
            update_model_card(run_dir / BEST_DIR, test=test)
    return JobResult(
        run_dir=str(run_dir),
        steps=result.steps,
        best_step=result.best_step,
        best_dev=result.best_dev,
        test=test,
        train_time_s=result.train_time_s,
        zero_shot=zero_shot,
        metric=clf.objective.check_metric(cfg.metric),
        refit=result.refit,
        time_limited=result.time_limited,
        refit_skipped=result.refit_skipped,
    )


def invoking_command() -> str | None:
    """The `promptft ...` command line this process runs, for the model card; None from Python."""
    import shlex
    import sys

    program = Path(sys.argv[0]).name if sys.argv else ""
    if program == "promptft" or sys.argv[0].endswith(("promptft/__main__.py", "-m")):
        return shlex.join(["promptft", *sys.argv[1:]])
    return None
