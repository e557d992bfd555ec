"""Multi-label classification by a yes/no question per label (approach (a) of issue 10).

Every example is asked one question per label, e.g. `"{text}\\nDoes it express {label}? {mask}"` with the
answer words no/yes at the slot. A label's score is the log-odds `log p(yes) - log p(no)`, so its sigmoid
is p(yes | the answer is yes or no): independent per label, with no extra parameters, which is what the
multi-label objective's BCE and per-label thresholds need. For a causal LM the text comes first, so its
KV cache is computed once per example and only the short per-label suffixes run (`shared_prefix.py`).

Training asks every label by default, so a step costs n_labels questions per example. With
`train_negatives=N` each training example asks its positive labels plus N negative labels drawn afresh
every step (torch's seeded generator, so a run repeats and a resumed run continues the draw); only the
asked questions run, and the binary loss covers only them (the labels not asked score NaN, which the
multi-label loss leaves out). Evaluation, dev selection and prediction always ask every label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from promptft.classifiers.prompt import (
    PromptClassifier,
    load_saved_backbone,
    restore_adapter,
)
from promptft.classifiers.saving import read_config
from promptft.data import Example
from promptft.data.inputs import as_examples
from promptft.errors import ConfigError, TemplateError
from promptft.models.backbones import Backbone
from promptft.models.shared_prefix import can_share_prefix, shared_prefix_scores
from promptft.objectives import MultiLabel, Objective, objective_from_dict
from promptft.prompts.encoding import EncodedPrompt
from promptft.prompts.template import Template
from promptft.prompts.verbalizer import Verbalizer

LABEL_FIELD = "label"


@dataclass(frozen=True)
class Questions:
    """One example's encoded questions, one per label (in the classifier's label order)."""

    prompts: tuple[EncodedPrompt, ...]

    @property
    def input_ids(self) -> tuple[int, ...]:  # for length-based batching: the longest question
        return max((p.input_ids for p in self.prompts), key=len)


@dataclass(frozen=True)
class TrainingQuestions(Questions):
    """A training example's questions and the indices of its positive labels (always asked)."""

    positives: tuple[int, ...] = ()


def check_train_negatives(value: object) -> int | None:
    """None (ask every label) or a whole number >= 0, else a ConfigError naming the fix."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(
            f"train_negatives must be a whole number >= 0 (the negative labels each training example asks "
            f"besides its positive ones, e.g. 4) or None to ask every label, got {value!r}"
        )
    return int(value)


def ask_labels(
    positives: Sequence[int], n_labels: int, negatives: int, generator: torch.Generator | None = None
) -> list[int]:
    """The labels one training example asks (sorted): its positives plus `negatives` others drawn
    without replacement, at least one question in all; every label when `negatives` covers the rest
    (then nothing is drawn)."""
    positive = set(positives)
    others = [j for j in range(n_labels) if j not in positive]
    if negatives >= len(others):
        return list(range(n_labels))
    k = max(negatives, 0 if positive else 1)  # an example without positives still asks one question
    drawn = torch.randperm(len(others), generator=generator)[:k].tolist()
    return sorted(positive | {others[i] for i in drawn})


class YesNoScorer(nn.Module):
    """Encoded questions `[batch]` -> per-label log-odds of yes over no `[batch, n_labels]`. In training
    with `train_negatives` set, `TrainingQuestions` ask only some labels; the others are NaN."""

    def __init__(
        self,
        backbone: Backbone,
        words,
        token_reduction: str,
        share_prefix: bool = True,
        train_negatives: int | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.words = words
        self.token_reduction = token_reduction
        self.share_prefix = share_prefix
        self.train_negatives = check_train_negatives(train_negatives)
        self.calibration = None  # the prompt classifier's multi-label calibration is not needed here

    def asked(self, encoded: Sequence[Questions]) -> list[list[int]] | None:
        """Per example, the labels asked in this forward; None: every label (evaluation, prediction,
        or no subsampling)."""
        n = self.train_negatives
        if not self.training or n is None or not all(isinstance(q, TrainingQuestions) for q in encoded):
            return None
        n_labels = len(encoded[0].prompts)
        asked = [ask_labels(q.positives, n_labels, n) for q in encoded]  # type: ignore[attr-defined]
        return None if all(len(a) == n_labels for a in asked) else asked

    def log_odds(self, groups: Sequence[Sequence[EncodedPrompt]]) -> torch.Tensor:
        """Log-odds of yes over no `[total questions]`, the groups (one example's questions each) in turn."""
        if self.share_prefix and can_share_prefix(self.backbone):
            rows = [[p.input_ids for p in g] for g in groups]
            scores = shared_prefix_scores(self.backbone, rows, self.words, self.token_reduction)
        else:
            scores = self.backbone([p for g in groups for p in g], self.words, self.token_reduction)
        return scores[:, 1] - scores[:, 0]  # words: no, yes

    def forward(self, encoded: Sequence[Questions]) -> torch.Tensor:
        n_labels = len(encoded[0].prompts)
        asked = self.asked(encoded)
        if asked is None:
            return self.log_odds([q.prompts for q in encoded]).view(len(encoded), n_labels)
        # Only the asked questions run: the saving is in the forward and backward, not just the loss.
        odds = self.log_odds([[q.prompts[j] for j in a] for q, a in zip(encoded, asked, strict=True)])
        rows = torch.tensor([i for i, a in enumerate(asked) for _ in a], device=odds.device)
        cols = torch.tensor([j for a in asked for j in a], device=odds.device)
        out = odds.new_full((len(encoded), n_labels), float("nan"))
        return out.index_put((rows, cols), odds)


class YesNoClassifier(PromptClassifier):
    """Ask the LM one yes/no question per label. `template` has a `{label}` field and the `{mask}` slot;
    `labels` maps each label to the text put in the question (or is a list of labels, used as they are);
    `answers` are the (no, yes) words. The objective is multi-label (thresholds tuned on dev).
    `train_negatives`: each training example asks its positive labels plus this many negative labels,
    drawn afresh every step (None: every label); evaluation and prediction ask every label."""

    def __init__(
        self,
        backbone: Backbone,
        template: Template | str,
        labels: Mapping[str, str] | Sequence[str],
        *,
        answers: tuple[str, str] = ("no", "yes"),
        max_length: int = 256,
        base_model: str | None = None,
        objective: Objective | None = None,
        share_prefix: bool = True,
        train_negatives: int | None = None,
    ) -> None:
        train_negatives = check_train_negatives(train_negatives)
        template = template if isinstance(template, Template) else Template(template)
        if LABEL_FIELD not in template.fields:
            raise TemplateError(
                f"template {template.text!r} has no {{label}} field: a yes/no question names the label, e.g. "
                '"{text}\\nDoes it express {label}? {mask}"'
            )
        self.label_texts = dict(labels) if isinstance(labels, Mapping) else {str(x): str(x) for x in labels}
        if not self.label_texts:
            raise ConfigError("no labels: give the labels to ask about, e.g. ['joy', 'anger']")
        self.answers = (str(answers[0]), str(answers[1]))
        super().__init__(
            backbone,
            template,
            Verbalizer({"no": self.answers[0], "yes": self.answers[1]}),
            max_length=max_length,
            base_model=base_model,
        )
        self.labels = list(self.label_texts)
        self.fields = tuple(f for f in self.template.fields if f != LABEL_FIELD)
        self.module = YesNoScorer(
            backbone, self.words, self.verbalizer.token_reduction, share_prefix, train_negatives
        )
        self._objective = None
        self.objective = objective or MultiLabel(self.labels)

    @property
    def train_negatives(self) -> int | None:
        """Negative labels asked per training example besides its positives (None: every label)."""
        return self.module.train_negatives

    @train_negatives.setter
    def train_negatives(self, value: int | None) -> None:
        self.module.train_negatives = check_train_negatives(value)

    @classmethod
    def from_model(  # type: ignore[override]
        cls,
        model: str = "smollm2-135m",
        template: Template | str = "{text}\nDoes it express {label}? {mask}",
        labels: Mapping[str, str] | Sequence[str] | None = None,
        *,
        answers: tuple[str, str] = ("no", "yes"),
        kind: str | None = None,
        finetune="full",
        lora=None,
        max_length: int = 256,
        device=None,
        dtype=None,
        objective: Objective | None = None,
        train_negatives: int | None = None,
    ) -> YesNoClassifier:
        """Load a model (alias, folder or hub id) and ask about `labels`; `finetune` as for PromptClassifier;
        `train_negatives` as for the constructor."""
        from promptft.models.loading import load_backbone

        if not labels:
            raise ConfigError("labels is required: the labels to ask about, e.g. ['joy', 'anger']")
        check_train_negatives(train_negatives)  # before the model loads
        backbone = load_backbone(model, kind=kind, device=device, dtype=dtype)
        clf = cls(
            backbone,
            template,
            labels,
            answers=answers,
            max_length=max_length,
            base_model=model,
            objective=objective,
            train_negatives=train_negatives,
        )
        clf.set_finetune(finetune, lora)
        return clf

    def _objective_changed(self, objective: Objective) -> None:
        if not isinstance(objective, MultiLabel):
            raise ConfigError(f"yes/no questions per label are multi-label, not {objective.name}")

    def prepare_training(self, encoded, targets) -> None:
        pass  # log-odds of yes over no need no calibration

    @staticmethod
    def length_of(encoded: Questions) -> int:
        return sum(len(p.input_ids) for p in encoded.prompts)

    def encode_for_training(self, examples: Sequence[Example]) -> list[TrainingQuestions]:  # type: ignore[override]
        """The questions plus each example's positive labels (asked every step when subsampling)."""
        examples = as_examples(examples, self.fields)
        index = {label: j for j, label in enumerate(self.labels)}
        return [
            TrainingQuestions(
                q.prompts,
                tuple(index[x] for x in (ex.label if isinstance(ex.label, tuple) else ()) if x in index),
            )
            for q, ex in zip(self.encode(examples), examples, strict=True)
        ]

    def encode(self, examples: Sequence[Example]) -> list[Questions]:
        examples = as_examples(examples, self.fields)
        return [
            Questions(
                tuple(
                    self.encoder.encode({**ex.fields, LABEL_FIELD: text})
                    for text in self.label_texts.values()
                )
            )
            for ex in examples
        ]

    def saved_config(self) -> dict:
        return {
            **super().saved_config(),
            "type": "yes_no",
            "label_texts": self.label_texts,
            "answers": list(self.answers),
            "train_negatives": self.train_negatives,
        }

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device=None, dtype=None) -> YesNoClassifier:
        directory = Path(directory)
        config = read_config(directory, "yes_no")
        backbone = load_saved_backbone(directory, config, device, dtype)
        clf = cls(
            backbone,
            config["template"],
            config["label_texts"],
            answers=tuple(config["answers"]),
            max_length=config["max_length"],
            base_model=config["base_model"],
            objective=objective_from_dict(config.get("objective"), config["labels"]),
            train_negatives=config.get("train_negatives"),  # absent in classifiers saved before it existed
        )
        restore_adapter(clf, directory, config)
        return clf

    def describe(self) -> str:
        negatives = "" if self.train_negatives is None else f" train_negatives={self.train_negatives}"
        return (
            f"yes/no per label {self.template.text!r} answers={self.answers}{negatives} on {self.base_model}"
        )
