"""Channel scoring for causal LMs (Min et al. 2022, "Noisy Channel Language Model Prompting").

A direct prompt scores P(label word | text); a channel prompt scores P(text | label): the label word comes
first, in a label-conditioned prefix, and the score of a label is the sum of the text tokens'
log-probabilities after it. The template convention is the direct one turned around: the `{mask}` slot
holds the label word and the field(s) after it are the scored text, e.g.

    "Sentiment: {mask}\\nReview: {text}"      (SST-2)      "Answer type: {mask}\\n{text}"   (TREC)

Fields before the slot condition the label without being scored (`"{premise}\\nAnswer: {mask}\\n{hypothesis}"`);
the template's own literal text after the slot is not scored either, only the fields' tokens.

Efficiency: the text is the same for every label, so one forward runs the example's `n_labels` sequences
as one batch, through the backbone's model forward (peft's when an adapter is attached). The output head
sees only the hidden states of the positions that predict a text token (the backbone's scoring hook), so
`[batch, seq, vocab]` logits are never built; the log-normaliser is computed in chunks of positions.
Zero-shot, or fine-tuned (LoRA, ...) with cross-entropy over the per-label channel log-likelihoods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from promptft.adapters import adapter_settings
from promptft.classifiers.prompt import PromptClassifier, load_saved_backbone, restore_adapter
from promptft.classifiers.saving import read_config
from promptft.data import Example
from promptft.data.inputs import as_examples
from promptft.errors import ConfigError, TemplateError
from promptft.models.backbones import Backbone
from promptft.objectives import Objective, SingleLabel, objective_from_dict
from promptft.prompts.encoding import PromptEncoder, token_spans
from promptft.prompts.template import Template
from promptft.prompts.verbalizer import Verbalizer

CHUNK = 256  # positions per log-normaliser chunk


@dataclass(frozen=True)
class ChannelPrompt:
    """One label word's sequence: the token ids, and the positions whose tokens are scored (text tokens,
    each predicted from the position before it)."""

    input_ids: tuple[int, ...]
    targets: tuple[int, ...]
    truncated: bool = False


@dataclass(frozen=True)
class ChannelInput:
    """One example: a sequence per label word, in the verbalizer's word order."""

    prompts: tuple[ChannelPrompt, ...]

    @property
    def input_ids(self) -> tuple[int, ...]:
        return max((p.input_ids for p in self.prompts), key=len)


def channel_template(direct: str | Template) -> str:
    """A channel template from a direct causal one: the cue before the slot, the label word, then the rest
    (`"Review: {text}\\nSentiment: {mask}"` -> `"Sentiment: {mask}\\nReview: {text}"`)."""
    template = direct if isinstance(direct, Template) else Template(direct)
    before = template.before_slot
    if not before or before[-1].kind != "literal" or not before[-1].value.strip():
        raise TemplateError(
            f"template {template.text!r} has no cue before {{mask}} to put first: write a channel template, "
            'e.g. "Sentiment: {mask}\\nReview: {text}"'
        )
    cue = before[-1].value.strip().replace("{", "{{").replace("}", "}}")
    rest = "".join(
        "{" + s.value + "}" if s.kind == "field" else s.value.replace("{", "{{").replace("}", "}}")
        for s in before[:-1]
    )
    return f"{cue} {{mask}}\n{rest.strip()}"


class ChannelEncoder(PromptEncoder):
    """Encodes an example once per label word; the input's fields are cut (never the label word or the
    template) so that the longest of the sequences fits `max_length`."""

    def __init__(self, tokenizer, template: Template, words: Sequence[str], *, max_length: int) -> None:
        super().__init__(tokenizer, template, slot_text="", max_length=max_length)
        self.causal = False
        self.words = list(words)
        slot = template._slot_index
        self.scored = tuple(
            dict.fromkeys(s.value for s in template.segments[slot + 1 :] if s.kind == "field")
        )
        if not self.scored:
            raise TemplateError(
                f"channel template {template.text!r} has no field after {{mask}}: the text scored after the "
                'label word must follow it, e.g. "Sentiment: {mask}\\nReview: {text}"'
            )

    def encode_all(self, fields: Mapping[str, str]) -> ChannelInput:
        self.template.check_fields(list(fields))
        values = {name: str(fields[name]) for name in self.template.fields}
        truncated = False
        for _ in range(8 + 2 * len(values)):
            encoded = [self._one(values, word) for word in self.words]
            longest = max(encoded, key=lambda e: len(e[0]))
            if len(longest[0]) <= self.max_length:
                return ChannelInput(
                    tuple(ChannelPrompt(tuple(ids), tuple(t), truncated) for ids, t, _ in encoded)
                )
            spans = longest[2]
            choice = self._pick_cut(spans, len(longest[0]) - self.max_length)
            if choice is None:
                raise TemplateError(self._too_long(len(longest[0])))
            name, amount = choice
            values[name] = self._cut(values[name], spans[name], amount)
            truncated = True
        raise TemplateError(
            "could not truncate the input to max_length; raise max_length"
        )  # pragma: no cover

    def _one(self, values: dict[str, str], word: str):
        parts: list[str] = []
        spans: dict[str, tuple[int, int]] = {}
        scored: list[tuple[int, int]] = []
        length = 0
        after = False
        for seg in self.template.segments:
            if seg.kind == "literal":
                text = seg.value
            elif seg.kind == "field":
                text = values[seg.value]
                spans.setdefault(seg.value, (length, length + len(text)))
                if after:
                    scored.append((length, length + len(text)))
            else:
                text, after = word, True
            parts.append(text)
            length += len(text)
        enc = self.tokenizer("".join(parts), add_special_tokens=True, return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
        eos = self.tokenizer.eos_token_id
        while len(ids) > 1 and eos is not None and ids[-1] == eos and offsets[-1][0] == offsets[-1][1]:
            ids.pop()
            offsets.pop()
        targets = [
            i
            for i, (s, e) in enumerate(offsets)
            if i > 0 and e > s and any(s < end and e > start for start, end in scored)
        ]
        return ids, targets, token_spans(offsets, spans)


class ChannelScorer(nn.Module):
    """Encoded examples -> each label's channel log-likelihood log P(text | label) `[batch, n_labels]`."""

    def __init__(self, backbone: Backbone, word_label: Sequence[int], n_labels: int, word_reduction: str):
        super().__init__()
        self.backbone = backbone
        self.word_label = tuple(word_label)
        self.n_labels = n_labels
        self.word_reduction = word_reduction
        self.calibration = None

    def word_scores(self, encoded: Sequence[ChannelInput]) -> torch.Tensor:
        """log P(text | label word) for every word `[batch, n_words]`: one forward over all sequences."""
        backbone = self.backbone
        rows = [p for e in encoded for p in e.prompts]
        ids, mask = backbone._pad([p.input_ids for p in rows])
        row_of, col, token = [], [], []
        for r, p in enumerate(rows):
            for t in p.targets:
                row_of.append(r)
                col.append(t - 1)  # the hidden state before a token predicts it
                token.append(p.input_ids[t])
        dev = ids.device
        if not token:  # no text at all (empty inputs): every label scores 0
            return torch.zeros(len(encoded), len(self.word_label), device=dev)
        r_t, c_t = torch.tensor(row_of, device=dev), torch.tensor(col, device=dev)
        cache = (
            backbone.prefix_cache.injected([p.input_ids for p in rows], backbone._pad)
            if getattr(backbone, "prefix_cache", None) is not None
            else nullcontext()
        )
        with cache:
            logits = backbone._scoring_logits(
                backbone.model.get_output_embeddings(),
                r_t,
                c_t,
                ids.shape[1],
                input_ids=ids,
                attention_mask=mask,
            )  # [n_text_positions, vocab]: only the positions that predict a text token
        target = torch.tensor(token, device=logits.device)
        pieces = []
        for start in range(0, logits.shape[0], CHUNK):
            chunk = logits[start : start + CHUNK].float()
            picked = chunk.gather(1, target[start : start + CHUNK, None]).squeeze(1)
            pieces.append(picked - torch.logsumexp(chunk, dim=-1))
        token_lp = torch.cat(pieces)
        per_row = token_lp.new_zeros(len(rows)).index_add(0, r_t.to(token_lp.device), token_lp)
        return per_row.view(len(encoded), len(self.word_label))

    def forward(self, encoded: Sequence[ChannelInput]) -> torch.Tensor:
        scores = self.word_scores(encoded)
        labels = torch.tensor(self.word_label, device=scores.device)
        member = labels[None, :] == torch.arange(self.n_labels, device=scores.device)[:, None]
        if self.word_reduction == "mean":
            weights = member.to(scores.dtype) / member.sum(1, keepdim=True)
            return scores @ weights.T
        masked = scores[:, None, :].masked_fill(~member[None], float("-inf"))
        return torch.logsumexp(masked, dim=-1)


class ChannelClassifier(PromptClassifier):
    """Classify by P(text | label) with a causal LM: the label word first, the text scored after it.

    `template`: a channel template (label slot first, text after, see the module notes); `channel_template`
    turns a direct one around. Label words as for PromptClassifier; single-label only."""

    def __init__(
        self,
        backbone: Backbone,
        template: Template | str,
        verbalizer: Verbalizer | Mapping[str, str | Sequence[str]],
        *,
        max_length: int = 256,
        base_model: str | None = None,
        objective: Objective | None = None,
    ) -> None:
        if backbone.kind != "causal":
            raise ConfigError(
                f"channel scoring reads P(text | label) left to right, so it needs a causal LM; "
                f"{backbone.name or 'this model'} is {backbone.kind}: use --method prompt"
            )
        self.backbone = backbone
        self.template = template if isinstance(template, Template) else Template(template)
        self.verbalizer = verbalizer if isinstance(verbalizer, Verbalizer) else Verbalizer(verbalizer)
        self.labels = self.verbalizer.labels
        self.fields = self.template.fields
        self.max_length = max_length = backbone.fit_length(max_length)
        self.base_model = base_model or backbone.name
        self.adapter = adapter_settings("full")
        self.demonstrations = None
        self.demonstration_pool = None
        self.embed = None
        self.words = self.verbalizer.tokenize(backbone.tokenizer, self.template.space_before_slot)
        flat = [word for words in self.verbalizer.label_words.values() for word in words]
        self.encoder = ChannelEncoder(backbone.tokenizer, self.template, flat, max_length=max_length)
        self.module = ChannelScorer(  # type: ignore[assignment]
            backbone, self.words.word_label, len(self.labels), self.verbalizer.word_reduction
        )
        if objective is not None:
            self.objective = objective

    def _objective_changed(self, objective: Objective) -> None:
        if not isinstance(objective, SingleLabel):
            raise ConfigError(
                f"channel scoring compares P(text | label) across labels: single-label only, not {objective.name}"
            )

    def prepare_training(self, encoded, targets) -> None:
        pass

    @classmethod
    def from_model(  # type: ignore[override]
        cls,
        model: str = "smollm2-135m",
        template: Template | str = "Sentiment: {mask}\nReview: {text}",
        label_words: Verbalizer | Mapping[str, str | Sequence[str]] | None = None,
        *,
        kind: str | None = None,
        finetune="full",
        lora=None,
        max_length: int = 256,
        device=None,
        dtype=None,
        objective: Objective | None = None,
    ) -> ChannelClassifier:
        """Load a causal LM (alias, folder or hub id); `finetune` as for PromptClassifier ("none":
        zero-shot channel scoring, "lora": channel fine-tuning of LoRA adapters)."""
        from promptft.models.loading import load_backbone

        if label_words is None:
            raise ConfigError(
                'label_words is required, e.g. {"negative": "negative", "positive": "positive"}'
            )
        backbone = load_backbone(model, kind=kind, device=device, dtype=dtype)
        clf = cls(
            backbone, template, label_words, max_length=max_length, base_model=model, objective=objective
        )
        clf.set_finetune(finetune, lora)
        return clf

    def encode(self, examples: Sequence[Example]) -> list[ChannelInput]:  # type: ignore[override]
        examples = as_examples(examples, self.fields)
        return [self.encoder.encode_all(ex.fields) for ex in examples]

    def encode_for_training(self, examples: Sequence[Example]) -> list[ChannelInput]:  # type: ignore[override]
        return self.encode(examples)

    @staticmethod
    def length_of(encoded) -> int:
        return sum(len(p.input_ids) for p in encoded.prompts)

    def saved_config(self) -> dict:
        return {**super().saved_config(), "type": "channel"}

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device=None, dtype=None) -> ChannelClassifier:
        directory = Path(directory)
        config = read_config(directory, "channel")
        backbone = load_saved_backbone(directory, config, device, dtype)
        clf = cls(
            backbone,
            config["template"],
            Verbalizer.from_dict(config["verbalizer"]),
            max_length=config["max_length"],
            base_model=config["base_model"],
            objective=objective_from_dict(config.get("objective"), config["labels"]),
        )
        restore_adapter(clf, directory, config)
        return clf

    def describe(self) -> str:
        return (
            f"channel {self.template.text!r} words={dict(self.verbalizer.label_words)} on {self.base_model}"
        )
