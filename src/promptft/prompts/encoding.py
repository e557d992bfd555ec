"""Turn (template, example) into token ids, truncating the input text but never the template or slot.

The prompt is rendered and tokenized as one string, so the model sees the same tokens it saw in
pre-training (tokenizing pieces separately changes tokens at the joins for many tokenizers). When it is
too long, the longest field is cut at a token boundary (found through the offsets) and the prompt is
tokenized again.
"""

from __future__ import annotations

from dataclasses import dataclass

from promptft.errors import TemplateError
from promptft.prompts.template import Template


@dataclass(frozen=True)
class EncodedPrompt:
    input_ids: tuple[int, ...]
    slot_index: int  # index of the slot token in input_ids; == len(input_ids) for causal models
    truncated: bool = False


class PromptEncoder:
    """Encodes examples for one backbone kind.

    slot_text: the token text that stands for the slot (mask token, T5 sentinel), or None for causal
    models, whose prompt simply ends before the slot. `reserve` extra tokens are kept free for
    multi-token label words (extra mask tokens).
    """

    def __init__(
        self, tokenizer, template: Template, *, slot_text: str | None, max_length: int, reserve: int = 0
    ):
        self.tokenizer = tokenizer
        self.template = template
        self.slot_text = slot_text
        self.max_length = max_length
        self.reserve = reserve
        self.causal = slot_text is None
        if self.causal and not template.before_slot:
            raise TemplateError(
                f"template {template.text!r} starts with the slot, but a causal LM predicts the slot from the "
                'text before it: move {mask} to the end, e.g. "{text} Topic: {mask}"'
            )

    def encode(self, fields: dict[str, str]) -> EncodedPrompt:
        self.template.check_fields(list(fields))
        values = {name: str(fields[name]) for name in self.template.fields}
        budget = self.max_length - self.reserve
        truncated = False
        for _ in range(8 + 2 * len(values)):
            ids, slot_index, spans = self._tokenize(values)
            if len(ids) <= budget:
                return EncodedPrompt(tuple(ids), slot_index, truncated)
            excess = len(ids) - budget
            choice = self._pick_cut(spans, excess)
            if choice is None:
                raise TemplateError(self._too_long(len(ids)))
            name, amount = choice
            values[name] = self._cut(values[name], spans[name], amount)
            truncated = True
        raise TemplateError(
            "could not truncate the input to max_length; raise max_length"
        )  # pragma: no cover

    def _pick_cut(self, spans: dict[str, tuple[int, int]], excess: int) -> tuple[str, int] | None:
        """Which field to shorten, and by how many tokens: the longest, by the excess (None: nothing left
        to cut). Subclasses order the fields differently (demonstrations cut the input first)."""
        name = max(spans, key=lambda n: spans[n][1] - spans[n][0]) if spans else None
        if name is None or spans[name][1] - spans[name][0] == 0:
            return None
        return name, excess

    def _too_long(self, n_template: int) -> str:
        if n_template <= self.max_length:  # the room went to the label words' tokens
            room = max(self.max_length - self.reserve, 0)
            return (
                f"the longest label word takes {self.reserve + 1} tokens, which leaves {room} "
                f"of max_length={self.max_length} for a prompt that needs at least {n_template}: shorten the "
                "label word (a word or a few, not a sentence), or raise max_length"
            )
        return (
            f"the template alone needs {n_template} tokens, more than max_length={self.max_length}: "
            "shorten the template or raise max_length"
        )

    def _render(self, values: dict[str, str]) -> tuple[str, dict[str, tuple[int, int]]]:
        parts: list[str] = []
        spans: dict[str, tuple[int, int]] = {}
        length = 0
        segments = self.template.before_slot if self.causal else self.template.segments
        last_before_slot = len(self.template.before_slot) - 1
        for i, seg in enumerate(segments):
            if seg.kind == "literal":
                text = seg.value
                if i == last_before_slot and self.template.space_before_slot:
                    text = text[:-1]  # the label word carries the space, as in pre-training text
            elif seg.kind == "field":
                text = values[seg.value]
                spans.setdefault(seg.value, (length, length + len(text)))
            else:
                text = self.slot_text or ""
            parts.append(text)
            length += len(text)
        return "".join(parts), spans

    def _tokenize(self, values: dict[str, str]) -> tuple[list[int], int, dict[str, tuple[int, int]]]:
        text, char_spans = self._render(values)
        enc = self.tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        offsets = list(enc["offset_mapping"])
        if self.causal:
            eos = self.tokenizer.eos_token_id
            # Some tokenizers append EOS; a causal prompt must end right before the slot.
            while (
                ids
                and eos is not None
                and ids[-1] == eos
                and len(ids) > 1
                and offsets[-1][0] == offsets[-1][1]
            ):
                ids.pop()
                offsets.pop()
            slot_index = len(ids)
        else:
            slot_id = self.tokenizer.convert_tokens_to_ids(self.slot_text)
            positions = [i for i, t in enumerate(ids) if t == slot_id]
            if len(positions) != 1:
                raise TemplateError(
                    f"the slot token {self.slot_text!r} appears {len(positions)} times in the encoded prompt "
                    f"(it must appear once): does the input text contain {self.slot_text!r}?"
                )
            slot_index = positions[0]
        return ids, slot_index, token_spans(offsets, char_spans)

    def _cut(self, value: str, span: tuple[int, int], excess: int) -> str:
        """Drop about `excess` tokens from the end of a field's text."""
        n_tokens = span[1] - span[0]
        keep = max(n_tokens - excess, 0)
        if keep == 0:
            return ""
        enc = self.tokenizer(value, add_special_tokens=False, return_offsets_mapping=True)
        offsets = [o for o in enc["offset_mapping"] if o[1] > o[0]]
        if keep >= len(offsets):
            keep = len(offsets) - 1
        if keep <= 0:
            return ""
        # Cut no later than where the first dropped token starts: a character that a byte-level tokenizer
        # splits into several tokens (stacked combining marks, some emoji) gives them all its one offset, and
        # cutting at the last kept token's end would keep the whole character, i.e. drop nothing.
        return value[: min(offsets[keep - 1][1], offsets[keep][0])]


def token_spans(offsets, char_spans: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """How many tokens each field's characters became (as (0, n)), from the tokenizer's offsets."""
    return {
        name: (0, sum(1 for s, e in offsets if e > s and s >= start and e <= end))
        for name, (start, end) in char_spans.items()
    }
