"""Multi-label classification by a yes/no question per label (approach (a) of issue 10).

Every example is asked one question per label, e.g. `"{text}\\nDoes it express {label}? {mask}"` with the
answer words no/yes at the slot. A label's score is the log-odds `log p(yes) - log p(no)`, so its sigmoid
is p(yes | the answer is yes or no): independent per label, with no extra parameters, which is what the
multi-label objective's BCE and per-label thresholds need. For a causal LM the text comes first, so its
KV cache is computed once per example and only the short per-label suffixes run (`shared_prefix.py`).
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


class YesNoScorer(nn.Module):
    """Encoded questions `[batch]` -> per-label log-odds of yes over no `[batch, n_labels]`."""

    def __init__(self, backbone: Backbone, words, token_reduction: str, share_prefix: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.words = words
        self.token_reduction = token_reduction
        self.share_prefix = share_prefix
        self.calibration = None  # the prompt classifier's multi-label calibration is not needed here

    def forward(self, encoded: Sequence[Questions]) -> torch.Tensor:
        n_labels = len(encoded[0].prompts)
        if self.share_prefix and can_share_prefix(self.backbone):
            groups = [[p.input_ids for p in q.prompts] for q in encoded]
            scores = shared_prefix_scores(self.backbone, groups, self.words, self.token_reduction)
        else:
            flat = [p for q in encoded for p in q.prompts]
            scores = self.backbone(flat, self.words, self.token_reduction)
        scores = scores.view(len(encoded), n_labels, 2)  # words: no, yes
        return scores[..., 1] - scores[..., 0]


class YesNoClassifier(PromptClassifier):
    """Ask the LM one yes/no question per label. `template` has a `{label}` field and the `{mask}` slot;
    `labels` maps each label to the text put in the question (or is a list of labels, used as they are);
    `answers` are the (no, yes) words. The objective is multi-label (thresholds tuned on dev)."""

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
    ) -> None:
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
        self.module = YesNoScorer(backbone, self.words, self.verbalizer.token_reduction, share_prefix)
        self._objective = None
        self.objective = objective or MultiLabel(self.labels)

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
    ) -> YesNoClassifier:
        """Load a model (alias, folder or hub id) and ask about `labels`; `finetune` as for PromptClassifier."""
        from promptft.models.loading import load_backbone

        if not labels:
            raise ConfigError("labels is required: the labels to ask about, e.g. ['joy', 'anger']")
        backbone = load_backbone(model, kind=kind, device=device, dtype=dtype)
        clf = cls(
            backbone,
            template,
            labels,
            answers=answers,
            max_length=max_length,
            base_model=model,
            objective=objective,
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
        )
        restore_adapter(clf, directory, config)
        return clf

    def describe(self) -> str:
        return f"yes/no per label {self.template.text!r} answers={self.answers} on {self.base_model}"
