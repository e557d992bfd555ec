"""Prompt evaluation: score candidate prompts (template + label words) on labelled data and rank them.

Each candidate is scored zero-shot through one loaded backbone (a template change costs no reload), and
optionally after a short LoRA fine-tune on the training examples (a fresh model per candidate). Each row
reports accuracy, macro-F1, expected calibration error (ECE) and the label the model leans to (the label
it predicts most, with its share: 0.9 for a binary task means it says one thing nine times in ten). With
`calibrate="contextual"` each row also reports the same numbers after contextual calibration and the
ranking uses those.

    from promptft.search.prompt_eval import PromptCandidate, evaluate_prompts

    result = evaluate_prompts(
        "smollm2-135m",
        [PromptCandidate("Review: {text}\\nSentiment: {mask}", {"negative": "negative", "positive": "positive"}),
         PromptCandidate("{text} It was {mask}.", {"negative": "terrible", "positive": "great"})],
        dev,
    )
    print(result.best.template, result.rows[0].accuracy)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from promptft.data import Example
from promptft.errors import ConfigError, DataError, TemplateError, VerbalizerError
from promptft.evaluation import classification_metrics, expected_calibration_error
from promptft.prompts.template import Template
from promptft.prompts.verbalizer import Verbalizer

log = logging.getLogger(__name__)

ModelSource = str | Callable[[], Any]  # a model name, or a function returning a fresh Backbone (tests)


@dataclass(frozen=True)
class PromptCandidate:
    """One prompt to score: a template and the label words (label -> word or words)."""

    template: str
    label_words: Mapping[str, str | Sequence[str]]
    name: str = ""

    def words_dict(self) -> dict[str, str | list[str]]:
        return {k: v if isinstance(v, str) else list(v) for k, v in self.label_words.items()}


@dataclass
class PromptScore:
    """One candidate's numbers on the evaluation data (zero-shot, and after a fine-tune when asked)."""

    name: str
    template: str
    label_words: dict[str, Any]
    accuracy: float
    macro_f1: float
    ece: float
    lean_label: str  # the label predicted most often
    lean_share: float  # its share of the predictions
    calibrated: dict[str, Any] | None = None  # the same numbers after contextual calibration
    finetuned: dict[str, Any] | None = None  # the same numbers after a short fine-tune (+ steps, time)
    n: int = 0
    seconds: float = 0.0

    @property
    def rank_key(self) -> tuple[float, float]:
        """What the ranking sorts by: the fine-tuned numbers, else the calibrated, else zero-shot."""
        for numbers in (self.finetuned, self.calibrated):
            if numbers is not None:
                return numbers["accuracy"], numbers["macro_f1"]
        return self.accuracy, self.macro_f1

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rank_accuracy": self.rank_key[0]}


@dataclass
class PromptEvaluation:
    rows: list[PromptScore]  # best first
    n: int
    finetune_steps: int = 0
    calibrate: str | None = None
    ranked_by: str = "zero-shot accuracy, then macro-F1"
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> PromptScore:
        return self.rows[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [r.to_dict() for r in self.rows],
            "best": self.best.to_dict() if self.rows else None,
            "n": self.n,
            "finetune_steps": self.finetune_steps,
            "calibrate": self.calibrate,
            "ranked_by": self.ranked_by,
            "notes": self.notes,
        }


# ---------------------------------------------------------------------------------------------------------
# numbers from probabilities


def prediction_scores(probs: np.ndarray, gold: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, ECE (10 bins) and the lean (most predicted label, its share) of probabilities
    `[n, n_labels]` in `labels` order against gold label names."""
    probs = np.asarray(probs, dtype=float)
    if probs.shape != (len(gold), len(labels)):
        raise DataError(
            f"probabilities {probs.shape} do not match {len(gold)} examples x {len(labels)} labels"
        )
    predicted = [labels[i] for i in probs.argmax(1)]
    metrics = classification_metrics(list(gold), predicted, list(labels))
    correct = np.array([p == g for p, g in zip(predicted, gold, strict=True)])
    ece, _ = expected_calibration_error(probs.max(1), correct)
    counts = {label: predicted.count(label) for label in labels}
    lean = max(labels, key=lambda label: counts[label])
    return {
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "ece": ece,
        "lean_label": lean,
        "lean_share": counts[lean] / max(len(predicted), 1),
    }


# ---------------------------------------------------------------------------------------------------------
# candidates


def pair_candidates(
    templates: Sequence[str], label_word_sets: Sequence[Mapping[str, str | Sequence[str]]]
) -> list[PromptCandidate]:
    """Templates x label-word sets: one set shared by all templates, one template tried with every set, or
    as many sets as templates (paired in order)."""
    if not templates:
        raise ConfigError('no template to evaluate: give --template, e.g. --template "{text} It was {mask}."')
    if not label_word_sets:
        raise ConfigError(
            "no label words: give --label-words 'negative=terrible,positive=great' or --label-words-file FILE"
        )
    if len(label_word_sets) == 1:
        pairs = [(t, label_word_sets[0]) for t in templates]
    elif len(templates) == 1:
        pairs = [(templates[0], w) for w in label_word_sets]
    elif len(templates) == len(label_word_sets):
        pairs = list(zip(templates, label_word_sets, strict=True))
    else:
        raise ConfigError(
            f"{len(templates)} templates and {len(label_word_sets)} label-word sets: give one set for all "
            "templates, one template for all sets, or one set per template (paired in order)"
        )
    return [PromptCandidate(t, w, name=f"P{i + 1}") for i, (t, w) in enumerate(pairs)]


def check_candidates(candidates: Sequence[PromptCandidate], tokenizer=None, leading_space=None) -> None:
    """Every template parses and has a slot; every label-word set is valid (and, given a tokenizer, each
    word is one the tokenizer can represent). Raises with the candidate named."""
    for c in candidates:
        where = f"{c.name or 'candidate'} ({c.template!r})"
        try:
            template = Template(c.template)
            verbalizer = Verbalizer(c.label_words)
            if tokenizer is not None:
                space = leading_space(template) if leading_space else template.space_before_slot
                verbalizer.tokenize(tokenizer, space)
        except TemplateError as err:
            raise TemplateError(f"{where}: {err}") from None
        except VerbalizerError as err:
            raise VerbalizerError(f"{where}: {err}") from None


def check_data(candidates: Sequence[PromptCandidate], examples: Sequence[Example], what: str) -> None:
    """Every example's label has label words and every template field is in the data."""
    if not examples:
        raise DataError(f"the {what} data is empty: check the file and its label column")
    labels = sorted({str(ex.label) for ex in examples if ex.label is not None})
    if len(labels) < len({ex.label for ex in examples}):
        raise DataError(f"some {what} examples have no label: prompts are scored on labelled data")
    for c in candidates:
        where = f"{c.name or 'candidate'} ({c.template!r})"
        try:
            Template(c.template).check_fields(set(examples[0].fields))
            Verbalizer(c.label_words).check_labels(labels)
        except (TemplateError, VerbalizerError) as err:
            raise type(err)(f"{where}: {err} (--field NAME=COLUMN, --label-words, --label-map)") from None


# ---------------------------------------------------------------------------------------------------------
# scoring


def load_model(model: ModelSource, *, kind: str | None = None, device: str | None = None):
    """A backbone: `model` called (a factory), or loaded by name."""
    if callable(model):
        return model()
    from promptft.models.loading import load_backbone

    return load_backbone(model, kind=kind, device=device)


def zero_shot_classifier(backbone, candidate: PromptCandidate, max_length: int = 256, calibrate=None):
    """A frozen PromptClassifier on a shared backbone (no weights change, so classifiers can share it)."""
    from promptft.classifiers import PromptClassifier

    return PromptClassifier(
        backbone, candidate.template, candidate.label_words, max_length=max_length, calibrate=calibrate
    )


def score_classifier(clf, examples: Sequence[Example], batch_size: int = 32, calibrate: bool = False):
    """(raw numbers, calibrated numbers or None) of one classifier from one pass over the examples."""
    from promptft.prompts.calibration import apply_prior

    gold = [str(ex.label) for ex in examples]
    was = clf.calibrate
    clf.set_calibration(None)
    logits = clf._logits(examples, batch_size)
    raw = prediction_scores(logits.softmax(-1).numpy(), gold, clf.labels)
    calibrated = None
    if calibrate:
        clf.set_calibration("contextual")
        prior = clf.module.content_free_prior()
        probs = apply_prior(logits, prior).softmax(-1).numpy()
        calibrated = {
            **prediction_scores(probs, gold, clf.labels),
            "content_free_prior": [round(float(p), 6) for p in prior],
        }
    clf.set_calibration(was)
    return raw, calibrated


def short_finetune(
    model: ModelSource,
    candidate: PromptCandidate,
    train: Sequence[Example],
    dev: Sequence[Example],
    *,
    steps: int,
    learning_rate: float = 3e-4,
    batch_size: int = 8,
    seed: int = 42,
    kind: str | None = None,
    device: str | None = None,
    max_length: int = 256,
    calibrate: str | None = None,
):
    """A fresh model, LoRA prompt fine-tuning for `steps` on `train` (best step chosen on `dev`, the
    untrained model competing too); returns the classifier and its numbers on `dev`."""
    import torch

    from promptft.adapters import LoraSettings
    from promptft.classifiers import PromptClassifier
    from promptft.training import TrainConfig

    start = time.perf_counter()
    torch.manual_seed(seed)
    clf = PromptClassifier(
        load_model(model, kind=kind, device=device),
        candidate.template,
        candidate.label_words,
        max_length=max_length,
        base_model=model if isinstance(model, str) else None,
        calibrate=calibrate,
    )
    clf.set_finetune(LoraSettings())
    config = TrainConfig(
        learning_rate=learning_rate,
        max_steps=steps,
        eval_every=max(1, steps // 2),
        batch_size=batch_size,
        seed=seed,
        progress=False,
        early_stopping_patience=None,
    )
    result = clf.fit(train, dev, config)
    gold = [str(ex.label) for ex in dev]
    numbers = prediction_scores(clf.predict_proba(dev), gold, clf.labels)
    numbers.update(steps=steps, best_step=result.best_step, seconds=round(time.perf_counter() - start, 2))
    return clf, numbers


def evaluate_prompts(
    model: ModelSource,
    candidates: Sequence[PromptCandidate],
    examples: Sequence[Example],
    *,
    train: Sequence[Example] | None = None,
    finetune_steps: int = 0,
    calibrate: str | None = None,
    kind: str | None = None,
    device: str | None = None,
    max_length: int = 256,
    batch_size: int = 32,
    learning_rate: float = 3e-4,
    seed: int = 42,
    on_progress: Callable[[str], None] | None = None,
) -> PromptEvaluation:
    """Score every candidate on `examples` zero-shot (and, with `finetune_steps` > 0 and `train`, after a
    short LoRA fine-tune each); rows ranked best first. `calibrate="contextual"` adds calibrated numbers."""
    from promptft.prompts.calibration import check_calibration

    calibrate = check_calibration(calibrate)
    candidates = [c if c.name else replace(c, name=f"P{i + 1}") for i, c in enumerate(candidates)]
    check_candidates(candidates)
    check_data(candidates, examples, "evaluation")
    if finetune_steps < 0:
        raise ConfigError(f"--finetune-steps must be 0 or more, got {finetune_steps}")
    if finetune_steps and not train:
        raise ConfigError("--finetune-steps needs training examples: pass --train FILE")
    if train:
        check_data(candidates, train, "training")
    backbone = load_model(model, kind=kind, device=device)
    check_candidates(candidates, backbone.tokenizer, backbone.leading_space)
    rows: list[PromptScore] = []
    for i, c in enumerate(candidates):
        if on_progress:
            on_progress(f"zero-shot {i + 1}/{len(candidates)}: {c.template!r}")
        start = time.perf_counter()
        clf = zero_shot_classifier(backbone, c, max_length)
        raw, calibrated = score_classifier(clf, examples, batch_size, calibrate is not None)
        rows.append(
            PromptScore(
                name=c.name,
                template=c.template,
                label_words=c.words_dict(),
                calibrated=calibrated,
                n=len(examples),
                seconds=round(time.perf_counter() - start, 2),
                **raw,
            )
        )
    if finetune_steps:
        del backbone
        for i, (c, row) in enumerate(zip(candidates, rows, strict=True)):
            if on_progress:
                on_progress(f"fine-tuning {i + 1}/{len(candidates)} ({finetune_steps} steps): {c.template!r}")
            _, row.finetuned = short_finetune(
                model,
                c,
                train or [],
                examples,
                steps=finetune_steps,
                learning_rate=learning_rate,
                seed=seed,
                kind=kind,
                device=device,
                max_length=max_length,
                calibrate=calibrate,
            )
    rows.sort(key=lambda r: r.rank_key, reverse=True)
    ranked_by = (
        f"accuracy after {finetune_steps} LoRA steps (best step on these data)"
        if finetune_steps
        else "calibrated zero-shot accuracy"
        if calibrate
        else "zero-shot accuracy"
    ) + ", then macro-F1"
    notes = []
    if finetune_steps:
        notes.append(
            "the fine-tuned numbers are measured on the data that chose each run's best step: compare "
            "candidates with them, but report a final number on held-out data"
        )
    return PromptEvaluation(rows, len(examples), finetune_steps, calibrate, ranked_by, notes)
