"""The methods the benchmark compares, as a registry: name -> function(task, data, model, seed, config).

A method function trains (or not) on `data.train`, may select on `data.dev`, and returns a `Fitted`: an
object with `predict(examples, batch_size) -> label names`, its training time, and what it selected.
Adding a method takes a few lines:

    @method("my_method")
    def my_method(task, data, model, seed, config):
        clf = ...                      # anything with predict(examples, batch_size=...)
        return Fitted(clf, train_time_s=...)

plus (optionally) a block of options under `methods.my_method` in the bench config. A method that runs a
prompt (or head) job registers `job=(method, adapter)`: its options are then a partial job config,
validated by the job schema before any cell runs (`promptft.config.bench.method_job`).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from promptft.bench.tasks import PromptSpec, TaskSpec
from promptft.config.base import check_keys
from promptft.config.bench import method_job
from promptft.config.job import JobConfig
from promptft.data import Example
from promptft.errors import ConfigError, ModelError

# ---------------------------------------------------------------------------------------------------------
# what a method receives and returns


@dataclass
class SplitData:
    """One seed's few-shot split, and the task's unlabelled pool file when it has one (PET, iPET)."""

    train: list[Example]
    dev: list[Example]
    pool: Path | None = None


class Predictor(Protocol):
    def predict(self, inputs: Sequence[Example], batch_size: int = 32) -> list[str]: ...


@dataclass
class Fitted:
    predictor: Predictor
    train_time_s: float = 0.0
    steps: int = 0
    best_step: int = 0
    dev: dict[str, float] | None = None  # dev metrics of the selected model; None: the runner computes them
    info: dict[str, Any] = field(default_factory=dict)  # anything worth recording in the cell JSON


class ModelRef:
    """The benchmarked model: its name, resolved folder and kind; loads fresh backbones on demand."""

    def __init__(self, name: str, *, device: str | None = None) -> None:
        from transformers import AutoConfig

        from promptft.models.loading import detect_kind
        from promptft.models.registry import resolve_model

        self.name = name
        self.path = resolve_model(name)
        try:
            config = AutoConfig.from_pretrained(self.path)
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"could not read the config of {name!r} ({str(exc).splitlines()[0]}): "
                "give a local model folder or an offline alias (see `promptft models`)"
            ) from exc
        self.kind = detect_kind(config)
        self.device = device
        self._frozen = None

    def load_backbone(self):
        """A fresh backbone (training changes its weights, so every training run gets its own)."""
        from promptft.models.loading import load_backbone

        return load_backbone(self.path, kind=self.kind, device=self.device)

    def frozen_backbone(self):
        """One shared backbone for methods that never train it (zero-shot)."""
        if self._frozen is None:
            self._frozen = self.load_backbone()
            for p in self._frozen.parameters():
                p.requires_grad_(False)
        return self._frozen


MethodFn = Callable[[TaskSpec, SplitData, ModelRef, int, dict[str, Any]], Fitted]
METHODS: dict[str, MethodFn] = {}


ALL_TASK_TYPES = ("single_label", "multi_label", "regression")


def method(
    name: str,
    *,
    seed_independent: bool = False,
    needs_lm: bool = True,
    job: tuple[str, str] | None = None,
    task_types: tuple[str, ...] = ALL_TASK_TYPES,
    needs_pool: bool = False,
    check_options: Callable[[dict[str, Any], str], None] | None = None,
    composite: bool = False,
):
    """Register a method. seed_independent: its test predictions do not depend on the seed (computed once,
    reused for every seed). needs_lm: it uses the benchmarked LM (an encoder-only model cannot).
    job: (model.method, model.finetune) of the job its options stand for; None: it checks them itself.
    task_types: the task types it runs on (the runner skips the others). needs_pool: it labels the
    task's unlabelled pool (`pool:` in tasks.yaml; the runner skips tasks without one, and says so).
    check_options: checks the options of a method with no `job`, for every task block, before any cell runs
        (called with the options and where they are, e.g. "methods.method_ensemble").
    composite: its `members:` option names other methods; the runner hands it each one's cell options."""

    def register(fn: MethodFn) -> MethodFn:
        fn.task_types = task_types  # type: ignore[attr-defined]
        fn.needs_pool = needs_pool  # type: ignore[attr-defined]
        fn.seed_independent = seed_independent  # type: ignore[attr-defined]
        fn.needs_lm = needs_lm  # type: ignore[attr-defined]
        fn.job = job  # type: ignore[attr-defined]
        fn.check_options = check_options  # type: ignore[attr-defined]
        fn.composite = composite  # type: ignore[attr-defined]
        METHODS[name] = fn
        return fn

    return register


# ---------------------------------------------------------------------------------------------------------
# options shared by the training methods


def job_of(config: dict[str, Any], seed: int, method: str = "prompt", finetune: str = "full") -> JobConfig:
    """The partial job a method's options stand for, seeded with the cell's seed (progress off)."""
    job = method_job(config, method, finetune, "options")
    job.train = job.train.replace(seed=seed, progress=False)
    return job


class _PreparedPredictor:
    """A prompt classifier whose inputs first go through the prompt's field transforms."""

    def __init__(self, classifier, prepare: Callable[[Sequence[Example]], list[Example]]) -> None:
        self.classifier = classifier
        self.prepare = prepare

    @property
    def labels(self) -> list[str]:
        return list(self.classifier.labels)

    def predict(self, inputs: Sequence[Example], batch_size: int = 32) -> list[str]:
        return self.classifier.predict(self.prepare(inputs), batch_size=batch_size)

    def predict_proba(self, inputs: Sequence[Example], batch_size: int = 32) -> np.ndarray:
        return self.classifier.predict_proba(self.prepare(inputs), batch_size=batch_size)


def _prompt_method(
    task: TaskSpec,
    data: SplitData,
    model: ModelRef,
    seed: int,
    config: dict[str, Any],
    finetune: str,
    prompt: PromptSpec | None = None,
) -> Fitted:
    """The task's prompt (or `prompt`, e.g. a searched one), zero-shot or fine-tuned with `finetune`."""
    from promptft.classifiers import PromptClassifier
    from promptft.training import Trainer, set_seed

    spec = prompt or task.prompt_for(model.kind)
    info = {"prompt": spec.to_dict(), "kind": model.kind}
    job = job_of(config, seed, "prompt", finetune)
    max_length = job.prompt.max_length
    calibration = {  # prompt.calibrate / content_free: prediction-time calibration (calibrated_zero_shot)
        "calibrate": None if job.prompt.calibrate == "none" else job.prompt.calibrate,
        "content_free": job.prompt.content_free,
    }
    if calibration["calibrate"]:
        info["calibrate"] = calibration["calibrate"]
    if job.prompt.demonstrations is not None:
        info["demonstrations"] = job.prompt.demonstrations.to_dict()
    if finetune == "none":
        zero_shot_options = {"max_length", "eval_batch_size", "demonstrations", "calibrate", "content_free"}
        unknown = sorted(set(config) - zero_shot_options)
        if unknown:
            raise ConfigError(f"zero_shot takes no training options, got {unknown}: remove them")
        clf = PromptClassifier(
            model.frozen_backbone(),
            spec.template,
            spec.label_words,
            max_length=max_length,
            base_model=model.name,
            objective=task.objective(),
            demonstrations=job.prompt.demonstrations,
            **calibration,
        )
        if clf.demonstrations is not None:
            clf.set_demonstration_pool(spec.prepare(data.train))
        clf.set_finetune("none")
        # multi-label: thresholds on dev; calibrate=...temperature: the temperature on dev
        clf.tune(spec.prepare(data.dev), job.train.eval_batch_size)
        if hasattr(clf.objective, "thresholds"):
            info["thresholds"] = clf.objective.thresholds
        _record_calibration(clf, info)
        return Fitted(_PreparedPredictor(clf, spec.prepare), info=info)
    cfg = job.train
    set_seed(seed)
    clf = PromptClassifier(
        model.load_backbone(),
        spec.template,
        spec.label_words,
        max_length=max_length,
        base_model=model.name,
        objective=task.objective(),
        demonstrations=job.prompt.demonstrations,
        **calibration,
    )
    clf.set_finetune(job.model.adapter_settings())
    trainable, total = clf.parameter_counts()
    info.update(adapter=clf.adapter.to_dict(), trainable_parameters=trainable, total_parameters=total)
    result = Trainer(clf, cfg).train(spec.prepare(data.train), spec.prepare(data.dev))
    info.update(stopped_early=result.stopped_early, history=result.history)
    if result.refit:  # the model tested trained again on train + dev; `dev` is the selection run's
        info["refit"] = result.refit
    if result.refit_skipped:
        info["refit_skipped"] = result.refit_skipped
    _record_calibration(clf, info)
    return Fitted(
        _PreparedPredictor(clf, spec.prepare),
        train_time_s=result.train_time_s,
        steps=result.steps,
        best_step=result.best_step,
        dev=result.best_dev,
        info=info,
    )


def require_single_label(task: TaskSpec, name: str) -> None:
    """Methods that compare mutually exclusive labels refuse other task types with a clear error (the
    runner already skips them by `task_types`; this guards direct calls)."""
    if task.type != "single_label":
        raise ConfigError(f"{name} is for single-label tasks, and {task.name} is {task.type}: leave it out")


def _record_calibration(clf, info: dict[str, Any]) -> None:
    """What a calibrated classifier divided out (p_cf over the labels) and the temperature it fitted."""
    if clf.contextual is not None:
        info["content_free_prior"] = dict(zip(clf.labels, clf.content_free_prior(), strict=True))
    if getattr(clf.objective, "tune_temperature", False):
        info["calibration_temperature"] = clf.objective.calibration_temperature


# ---------------------------------------------------------------------------------------------------------
# the methods


@method("zero_shot", seed_independent=True, job=("prompt", "none"))
def zero_shot(task: TaskSpec, data: SplitData, model: ModelRef, seed: int, config: dict[str, Any]) -> Fitted:
    """The starting prompt as is: no training."""
    return _prompt_method(task, data, model, seed, config, "none")


@method("calibrated_zero_shot", seed_independent=True, job=("prompt", "none"), task_types=("single_label",))
def calibrated_zero_shot(
    task: TaskSpec, data: SplitData, model: ModelRef, seed: int, config: dict[str, Any]
) -> Fitted:
    """The starting prompt with contextual calibration (Zhao et al. 2021): no training; the label bias of
    content-free inputs is divided out (`calibrate:` in its options; seed-independent unless a temperature
    is fitted on dev, which never changes a prediction)."""
    return _prompt_method(task, data, model, seed, {"calibrate": "contextual", **config}, "none")


@method("standard_ft", needs_lm=False, job=("head", "full"))
def standard_ft(
    task: TaskSpec, data: SplitData, model: ModelRef, seed: int, config: dict[str, Any]
) -> Fitted:
    """Standard fine-tuning: a new classification head on the same backbone, all weights trained."""
    from promptft.classifiers import HeadClassifier
    from promptft.training import Trainer, set_seed

    job = job_of(config, seed, "head", "full")
    cfg = job.train
    set_seed(seed)
    labels = ["value"] if task.type == "regression" else task.label_names  # a regression head: one output
    clf = HeadClassifier.from_model(
        model.path,
        labels,
        task.field_names,
        objective=task.objective(labels),
        finetune="full",
        max_length=job.prompt.max_length,
        device=model.device,
        seed=seed,
    )
    clf.base_model = model.name
    result = Trainer(clf, cfg).train(data.train, data.dev)
    return Fitted(
        clf,
        train_time_s=result.train_time_s,
        steps=result.steps,
        best_step=result.best_step,
        dev=result.best_dev,
        info={
            "stopped_early": result.stopped_early,
            "history": result.history,
            **({"refit": result.refit} if result.refit else {}),
        },
    )


@method("prompt_ft", job=("prompt", "full"))
def prompt_ft(task: TaskSpec, data: SplitData, model: ModelRef, seed: int, config: dict[str, Any]) -> Fitted:
    """Prompt-based fine-tuning of the whole model (LM-BFF)."""
    return _prompt_method(task, data, model, seed, config, "full")


@method("prompt_ft_lora", job=("prompt", "lora"))
def prompt_ft_lora(
    task: TaskSpec, data: SplitData, model: ModelRef, seed: int, config: dict[str, Any]
) -> Fitted:
    """Prompt-based fine-tuning of LoRA adapters only."""
    return _prompt_method(task, data, model, seed, config, "lora")


def _adapter_method(name: str, adapter: str, summary: str) -> None:
    """Register prompt-based fine-tuning through one more adapter (options in the method's `adapter:` block)."""

    def run(task: TaskSpec, data: SplitData, model: ModelRef, seed: int, config: dict[str, Any]) -> Fitted:
        return _prompt_method(task, data, model, seed, config, adapter)

    run.__doc__ = summary
    method(name, job=("prompt", adapter))(run)


_adapter_method("prompt_ft_ia3", "ia3", "Prompt-based fine-tuning of (IA)3 scaling vectors only.")
_adapter_method(
    "prompt_tuning", "prompt_tuning", "Soft prompt tuning: virtual-token embeddings before the prompt."
)
_adapter_method("p_tuning", "p_tuning", "P-tuning: virtual tokens from a small trainable encoder.")
_adapter_method("prefix_tuning", "prefix_tuning", "Prefix tuning: trainable keys and values in every layer.")
_adapter_method(
    "prompt_ft_label_embeddings", "label_embeddings", "Only the label words' output-embedding rows train."
)


class SetFitPredictor:
    """A trained SetFitModel behind the benchmark's predict(examples) interface."""

    def __init__(self, model, labels: list[str], fields: tuple[str, ...], sep: str) -> None:
        self.model = model
        self.labels = labels
        self.fields = fields
        self.sep = sep
        # Multi-label only: per-label cuts on the one-vs-rest probabilities, tuned on dev like the prompt
        # methods' (SetFit's own 0.5 cut predicts no label at all when each label has ~8 positives in 160).
        self.thresholds: list[float] | None = None

    def probabilities(self, inputs: Sequence[Example], batch_size: int = 32) -> np.ndarray:
        return np.asarray(self.model.predict_proba(self.texts(inputs), batch_size=batch_size, as_numpy=True))

    def predict_proba(self, inputs: Sequence[Example], batch_size: int = 32) -> np.ndarray:
        """Single-label: the head's class probabilities, in `labels` order (what method_ensemble combines)."""
        return self.probabilities(inputs, batch_size)

    def tune_thresholds(self, dev: Sequence[Example]) -> None:
        """The F1-best cut per label on dev (the rule the multi-label objective uses); 0.5 without dev."""
        from promptft.objectives.multi_label import best_threshold  # torch: imported when a model trains

        self.thresholds = [0.5] * len(self.labels)
        if not dev:
            return
        probs = self.probabilities(dev)
        gold = np.array([[int(label in ex.label) for label in self.labels] for ex in dev])  # type: ignore[operator]
        self.thresholds = [best_threshold(probs[:, j], gold[:, j], 0.5) for j in range(len(self.labels))]

    def texts(self, examples: Sequence[Example]) -> list[str]:
        return [self.sep.join(ex.fields[f] for f in self.fields) for ex in examples]

    def predict(self, inputs: Sequence[Example], batch_size: int = 32) -> list:
        if not inputs:
            return []
        if self.thresholds is not None:  # one-vs-rest (multi-label): a label set per input
            on = self.probabilities(inputs, batch_size) >= np.array(self.thresholds)
            return [tuple(sorted(self.labels[j] for j in np.flatnonzero(row))) for row in on]
        out = self.model.predict(self.texts(inputs), batch_size=batch_size, as_numpy=True)
        return [self.labels[int(i)] for i in out]


_SETFIT_KEYS = {
    "encoder",
    "num_iterations",
    "num_epochs",
    "batch_size",
    "body_learning_rate",
    "head_learning_rate",
    "max_length",
    "max_steps",
    "eval_batch_size",
}


@method("setfit", needs_lm=False, task_types=("single_label", "multi_label"))
def setfit(task: TaskSpec, data: SplitData, model: ModelRef, seed: int, config: dict[str, Any]) -> Fitted:
    """SetFit (Tunstall et al. 2022) on its own sentence encoder (default: the offline MiniLM-L6)."""
    check_keys(config, sorted(_SETFIT_KEYS), "methods.setfit", "setfit option")
    from datasets import Dataset

    from promptft.optional import require

    setfit_pkg = require("setfit", "setfit", feature="the setfit method (or leave setfit out of --methods)")
    SetFitModel, TrainingArguments = setfit_pkg.SetFitModel, setfit_pkg.TrainingArguments
    SetFitTrainer = setfit_pkg.Trainer
    from promptft.models.registry import resolve_model
    from promptft.training import set_seed

    if task.type == "regression":
        raise ConfigError(f"setfit classifies; {task.name} is a regression task: use minilm_cosine instead")
    encoder = str(config.get("encoder", "minilm-l6"))
    set_seed(seed)
    multi = task.type == "multi_label"  # one-vs-rest: a logistic head per label on the shared encoder
    sf_model = SetFitModel.from_pretrained(
        resolve_model(encoder),
        device=model.device,
        **({"multi_target_strategy": "one-vs-rest"} if multi else {}),
    )
    tokenizer = getattr(sf_model.model_body, "tokenizer", None)
    sep = f" {tokenizer.sep_token} " if getattr(tokenizer, "sep_token", None) else " "
    labels = task.label_names
    predictor = SetFitPredictor(sf_model, labels, task.field_names, sep)
    index = {label: i for i, label in enumerate(labels)}
    if multi:
        targets = [[int(label in ex.label) for label in labels] for ex in data.train]  # type: ignore[operator]
    else:
        targets = [index[ex.label] for ex in data.train]  # type: ignore[index]
    train = Dataset.from_dict({"text": predictor.texts(data.train), "label": targets})
    with tempfile.TemporaryDirectory(prefix="promptft-setfit-") as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            batch_size=int(config.get("batch_size", 16)),
            num_epochs=int(config.get("num_epochs", 1)),
            num_iterations=int(config.get("num_iterations", 20)),
            max_steps=int(config.get("max_steps", -1)),
            body_learning_rate=float(config.get("body_learning_rate", 2e-5)),
            head_learning_rate=float(config.get("head_learning_rate", 1e-2)),
            max_length=int(config["max_length"]) if config.get("max_length") else None,
            seed=seed,
            report_to="none",
            save_strategy="no",
            logging_strategy="no",
            show_progress_bar=False,
        )
        trainer = SetFitTrainer(model=sf_model, args=args, train_dataset=train)
        start = time.perf_counter()
        trainer.train()
        train_time = time.perf_counter() - start
        steps = int(getattr(getattr(trainer, "state", None), "global_step", 0) or 0)
    if multi:
        predictor.tune_thresholds(data.dev)
    return Fitted(
        predictor,
        train_time_s=round(train_time, 3),
        steps=steps,
        best_step=steps,
        info={
            "encoder": encoder,
            "encoder_path": resolve_model(encoder),
            "pair_separator": sep.strip(),
            **({"thresholds": predictor.thresholds} if multi else {}),
        },
    )


# registers the multi-label and regression methods, and issue 11's demonstrations, channel, pet, ipet, the
# searched prompts (auto_label_words, auto_template, auto) and method_ensemble
from promptft.bench import (  # noqa: E402,F401
    context_methods,
    ensemble_methods,
    pet_methods,
    search_methods,
    task_methods,
)
