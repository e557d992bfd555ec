"""Benchmark methods for the other task types (issue 10): multi-label through a prompt, two ways, and the
sentence-embedding peer for sentence similarity. Registered when `promptft.bench.methods` is imported.

* `prompt_ft_multilabel_sigmoid` (approach b): one prompt; every label word's calibrated log-probability
  through a sigmoid (BCE), LoRA; thresholds tuned on dev.
* `prompt_ft_multilabel_yesno` (approach a): a yes/no question per label (`task.question`), the text's
  KV cache shared across labels on causal LMs, LoRA; thresholds tuned on dev. `train_negatives: N`: a
  training example asks its positive labels plus N sampled negatives (evaluation asks every label).
* `minilm_cosine`: the cosine similarity of the offline all-MiniLM-L6-v2 embeddings of the two sentences,
  mapped onto the task's range (no training; the peer a user reaches for on STS-B).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from promptft.bench.methods import Fitted, ModelRef, SplitData, _prompt_method, job_of, method
from promptft.bench.tasks import TaskSpec
from promptft.config.base import check_keys
from promptft.data import Example
from promptft.errors import ConfigError

DEFAULT_QUESTION = "{text}\nDoes it express {label}? {mask}"


def _require(task: TaskSpec, kind: str, name: str) -> None:
    if task.type != kind:
        raise ConfigError(
            f"{name} is for {kind} tasks, and {task.name} is {task.type}: leave it out of --methods"
        )


@method("prompt_ft_multilabel_sigmoid", job=("prompt", "lora"), task_types=("multi_label",))
def prompt_ft_multilabel_sigmoid(
    task: TaskSpec, data: SplitData, model: ModelRef, seed: int, config: dict[str, Any]
) -> Fitted:
    """Multi-label prompt FT (LoRA): a sigmoid per label word's calibrated score, thresholds tuned on dev."""
    _require(task, "multi_label", "prompt_ft_multilabel_sigmoid")
    return _prompt_method(task, data, model, seed, config, "lora")


@method("prompt_ft_multilabel_yesno", job=("yes_no", "lora"), task_types=("multi_label",))
def prompt_ft_multilabel_yesno(
    task: TaskSpec, data: SplitData, model: ModelRef, seed: int, config: dict[str, Any]
) -> Fitted:
    """Multi-label prompt FT (LoRA): a yes/no question per label, the text encoded once per example."""
    from promptft.classifiers import YesNoClassifier
    from promptft.training import Trainer, set_seed

    _require(task, "multi_label", "prompt_ft_multilabel_yesno")
    job = job_of(config, seed, "yes_no", "lora")
    question = task.question or DEFAULT_QUESTION
    set_seed(seed)
    clf = YesNoClassifier(
        model.load_backbone(),
        question,
        {label: label for label in task.label_names},
        answers=job.prompt.answers,
        max_length=job.prompt.max_length,
        base_model=model.name,
        objective=task.objective(),
        train_negatives=job.prompt.train_negatives,
    )
    clf.set_finetune(job.model.adapter_settings())
    trainable, total = clf.parameter_counts()
    result = Trainer(clf, job.train).train(data.train, data.dev)
    return Fitted(
        clf,
        train_time_s=result.train_time_s,
        steps=result.steps,
        best_step=result.best_step,
        dev=result.best_dev,
        info={
            "question": question,
            "answers": list(job.prompt.answers),
            "train_negatives": job.prompt.train_negatives,
            "thresholds": clf.objective.thresholds,  # type: ignore[attr-defined]
            "trainable_parameters": trainable,
            "total_parameters": total,
            "stopped_early": result.stopped_early,
            "history": result.history,
        },
    )


class CosinePredictor:
    """Sentence-pair similarity as the cosine of two sentence embeddings, mapped onto [low, high]."""

    def __init__(self, encoder, fields: tuple[str, ...], value_range: tuple[float, float]) -> None:
        if len(fields) != 2:
            raise ConfigError(f"minilm_cosine compares two sentences, but the task has fields {list(fields)}")
        self.encoder = encoder
        self.fields = fields
        self.value_range = value_range

    def predict(self, inputs: Sequence[Example], batch_size: int = 32) -> list[float]:
        if not inputs:
            return []
        a, b = (
            self.encoder.encode(
                [ex.fields[f] for ex in inputs], batch_size=batch_size, normalize_embeddings=True
            )
            for f in self.fields
        )
        low, high = self.value_range
        # Cosines of these embeddings fall in [0, 1] for nearly all pairs; a negative one means unrelated (low).
        return [low + (high - low) * float(min(max(c, 0.0), 1.0)) for c in (a * b).sum(1)]


@method("minilm_cosine", seed_independent=True, needs_lm=False, task_types=("regression",))
def minilm_cosine(
    task: TaskSpec, data: SplitData, model: ModelRef, seed: int, config: dict[str, Any]
) -> Fitted:
    """Cosine similarity of all-MiniLM-L6-v2 sentence embeddings (no training), scaled to the task's range."""
    check_keys(
        config, ["encoder", "eval_batch_size", "max_length"], "methods.minilm_cosine", "minilm_cosine option"
    )
    _require(task, "regression", "minilm_cosine")
    from promptft.models.registry import resolve_model
    from promptft.optional import require

    SentenceTransformer = require(
        "sentence_transformers", "setfit", feature="the minilm_cosine method"
    ).SentenceTransformer

    encoder_name = str(config.get("encoder", "minilm-l6"))
    path = resolve_model(encoder_name)
    encoder = SentenceTransformer(path, device=model.device or "cpu")
    if config.get("max_length"):
        encoder.max_seq_length = int(config["max_length"])
    assert task.value_range is not None
    predictor = CosinePredictor(encoder, task.field_names, task.value_range)
    return Fitted(predictor, info={"encoder": encoder_name, "encoder_path": path})
