"""Backbones: a Hugging Face model that returns only the label-word scores at the scoring position.

The full `[batch, seq, vocab]` logits are never built. The model body runs once; the output head is
applied only to the hidden states at the scoring positions (`[n_positions, vocab]`, for the softmax
normaliser), and the label words' log-probabilities are read from there. For a causal LM that is the
last prompt position; for a masked LM the mask position(s), through the model's own MLM head transform;
for seq2seq the decoder's first step(s), whose logits are the only ones computed anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from promptft.errors import ModelError
from promptft.models.prefix_cache import PrefixCache, decoder_layers, frozen_prefix_length
from promptft.prompts.encoding import EncodedPrompt, PromptEncoder, token_spans
from promptft.prompts.template import Template
from promptft.prompts.verbalizer import TokenizedWords

log = logging.getLogger(__name__)

KINDS = ("causal", "masked", "seq2seq")


class Backbone(nn.Module):
    """Base class: holds the model and tokenizer, and scores label words for encoded prompts."""

    kind: str = ""

    def __init__(self, model: nn.Module, tokenizer, name: str = "") -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.name = name or getattr(model.config, "_name_or_path", "")
        self.pad_id = pad_token_id(tokenizer, model.config)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def slot_text(self) -> str | None:
        return None

    def leading_space(self, template: Template) -> bool:
        return template.space_before_slot

    def make_encoder(self, template: Template, max_length: int, reserve: int = 0) -> PromptEncoder:
        return PromptEncoder(
            self.tokenizer, template, slot_text=self.slot_text, max_length=max_length, reserve=reserve
        )

    def enable_prefix_cache(self) -> bool:
        """Only causal backbones cache frozen layers; others report False."""
        return False

    def disable_prefix_cache(self) -> None:
        pass

    def forward(
        self, prompts: Sequence[EncodedPrompt], words: TokenizedWords, token_reduction: str = "sum"
    ) -> torch.Tensor:
        """Log-probability of every label word for every prompt: `[len(prompts), n_words]`."""
        return self.score(prompts, words, token_reduction)

    def score(
        self, prompts: Sequence[EncodedPrompt], words: TokenizedWords, token_reduction: str = "sum"
    ) -> torch.Tensor:
        raise NotImplementedError

    # Shared by all kinds: gather per-token log-probs and reduce them per word.
    @staticmethod
    def _reduce(
        token_logprobs: torch.Tensor,
        target_example: list[int],
        target_word: list[int],
        n_examples: int,
        words: TokenizedWords,
        token_reduction: str,
    ) -> torch.Tensor:
        out = token_logprobs.new_zeros(n_examples * len(words.word_ids))
        flat = torch.tensor(
            [e * len(words.word_ids) + w for e, w in zip(target_example, target_word, strict=True)],
            device=token_logprobs.device,
        )
        out = out.index_add(0, flat, token_logprobs)
        out = out.view(n_examples, len(words.word_ids))
        if token_reduction == "mean":
            lengths = torch.tensor([len(w) for w in words.word_ids], dtype=out.dtype, device=out.device)
            out = out / lengths
        return out

    def _pad(self, rows: list[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = 1
        return ids.to(self.device), mask.to(self.device)


class CausalBackbone(Backbone):
    """Decoder-only LM: the label word is the continuation of the prompt."""

    kind = "causal"
    prefix_cache: PrefixCache | None = None

    def enable_prefix_cache(self) -> bool:
        """Cache the frozen bottom layers' output (see prefix_cache.py); False when nothing is frozen."""
        split = frozen_prefix_length(self.model)
        if split < 1:
            return False
        if split >= len(decoder_layers(self.model)):
            return False  # nothing trainable in the layers at all (e.g. zero-shot): no training to speed up
        self.prefix_cache = PrefixCache(self.model, split)
        return True

    def disable_prefix_cache(self) -> None:
        self.prefix_cache = None

    def score(self, prompts, words, token_reduction="sum"):
        rows: list[tuple[int, ...]] = []
        row_pos: list[tuple[int, int]] = []  # scoring (row, position) pairs, deduplicated below
        target_pos: list[int] = []
        target_token: list[int] = []
        target_example: list[int] = []
        target_word: list[int] = []
        pos_index: dict[tuple[int, int], int] = {}

        def position(row: int, pos: int) -> int:
            key = (row, pos)
            if key not in pos_index:
                pos_index[key] = len(row_pos)
                row_pos.append(key)
            return pos_index[key]

        for e, prompt in enumerate(prompts):
            base = len(rows)
            rows.append(prompt.input_ids)
            last = len(prompt.input_ids) - 1
            for j, word in enumerate(words.word_ids):
                row = base
                if len(word) > 1:  # later tokens are conditioned on the earlier ones: one extra row
                    row = len(rows)
                    rows.append(prompt.input_ids + word[:-1])
                for t, token in enumerate(word):
                    target_pos.append(position(row, last + t))
                    target_token.append(token)
                    target_example.append(e)
                    target_word.append(j)
        if self.prefix_cache is not None:
            hidden = self.prefix_cache.forward(list(rows), self._pad)
        else:
            ids, mask = self._pad(list(rows))
            hidden = self.model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        r = torch.tensor([p[0] for p in row_pos], device=hidden.device)
        c = torch.tensor([p[1] for p in row_pos], device=hidden.device)
        logprobs = self._head_logprobs(hidden[r, c])
        picked = logprobs[
            torch.tensor(target_pos, device=hidden.device), torch.tensor(target_token, device=hidden.device)
        ]
        return self._reduce(picked, target_example, target_word, len(prompts), words, token_reduction)

    def _head_logprobs(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.model.get_output_embeddings()(hidden)
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        scale = getattr(self.model.config, "logit_scale", None)
        if isinstance(scale, float):
            logits = logits * scale
        return torch.log_softmax(logits.float(), dim=-1)


class MaskedBackbone(Backbone):
    """Masked LM (BERT/RoBERTa family): the label word fills the mask; k-token words get k masks."""

    kind = "masked"

    def __init__(self, model, tokenizer, name=""):
        super().__init__(model, tokenizer, name)
        if tokenizer.mask_token is None:
            raise ModelError(
                f"{self.name}: the tokenizer has no mask token, so it cannot be used as a masked LM"
            )
        self.head = _mlm_head(model)
        if self.head is None:
            log.warning("%s: MLM head not recognised; scoring falls back to the full logits", self.name)

    @property
    def slot_text(self) -> str:
        return self.tokenizer.mask_token

    def score(self, prompts, words, token_reduction="sum"):
        mask_id = self.tokenizer.mask_token_id
        rows: list[list[int]] = []
        row_pos: list[tuple[int, int]] = []
        target_pos: list[int] = []
        target_token: list[int] = []
        target_example: list[int] = []
        target_word: list[int] = []
        lengths = sorted({len(w) for w in words.word_ids})
        for e, prompt in enumerate(prompts):
            s = prompt.slot_index
            for n in lengths:
                row = len(rows)
                rows.append(list(prompt.input_ids[:s]) + [mask_id] * n + list(prompt.input_ids[s + 1 :]))
                first = len(row_pos)
                row_pos.extend((row, s + t) for t in range(n))
                for j, word in enumerate(words.word_ids):
                    if len(word) != n:
                        continue
                    for t, token in enumerate(word):
                        target_pos.append(first + t)
                        target_token.append(token)
                        target_example.append(e)
                        target_word.append(j)
        ids, mask = self._pad(rows)
        r = torch.tensor([p[0] for p in row_pos], device=ids.device)
        c = torch.tensor([p[1] for p in row_pos], device=ids.device)
        if self.head is not None:
            hidden = self.model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
            logits = self.head(hidden[r, c])
        else:
            logits = self.model(input_ids=ids, attention_mask=mask).logits[r, c]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        picked = logprobs[
            torch.tensor(target_pos, device=ids.device), torch.tensor(target_token, device=ids.device)
        ]
        return self._reduce(picked, target_example, target_word, len(prompts), words, token_reduction)


class Seq2SeqBackbone(Backbone):
    """Encoder-decoder (T5 family): the label word is the decoder's first token(s).

    With a T5-style sentinel the slot becomes `<extra_id_0>` in the input and the decoder starts with
    it (the span-corruption format T5 was trained on); otherwise the slot is left out of the input.
    """

    kind = "seq2seq"

    @property
    def slot_text(self) -> str | None:
        return self._sentinel

    def __init__(self, model, tokenizer, name=""):
        super().__init__(model, tokenizer, name)
        vocab = tokenizer.get_vocab()
        self._sentinel = "<extra_id_0>" if "<extra_id_0>" in vocab else None
        start = model.config.decoder_start_token_id
        if start is None:
            raise ModelError(f"{self.name}: config has no decoder_start_token_id; set it before use")
        self.decoder_prefix = [start] + ([vocab[self._sentinel]] if self._sentinel else [])

    def make_encoder(self, template, max_length, reserve=0):
        if self._sentinel is None:
            return _SlotFreeEncoder(self.tokenizer, template, max_length=max_length)
        return super().make_encoder(template, max_length, reserve=0)

    def score(self, prompts, words, token_reduction="sum"):
        enc_ids, enc_mask = self._pad([p.input_ids for p in prompts])
        encoder_hidden = self.model.get_encoder()(
            input_ids=enc_ids, attention_mask=enc_mask
        ).last_hidden_state
        prefix = self.decoder_prefix
        rows: list[list[int]] = []
        row_example: list[int] = []
        target_row: list[int] = []
        target_col: list[int] = []
        target_token: list[int] = []
        target_example: list[int] = []
        target_word: list[int] = []
        for e in range(len(prompts)):
            base = len(rows)
            rows.append(list(prefix))
            row_example.append(e)
            for j, word in enumerate(words.word_ids):
                row = base
                if len(word) > 1:
                    row = len(rows)
                    rows.append(list(prefix) + list(word[:-1]))
                    row_example.append(e)
                for t, token in enumerate(word):
                    target_row.append(row)
                    target_col.append(len(prefix) - 1 + t)
                    target_token.append(token)
                    target_example.append(e)
                    target_word.append(j)
        dec_ids, dec_mask = self._pad(rows)
        index = torch.tensor(row_example, device=enc_ids.device)
        from transformers.modeling_outputs import BaseModelOutput

        out = self.model(
            encoder_outputs=BaseModelOutput(last_hidden_state=encoder_hidden.index_select(0, index)),
            attention_mask=enc_mask.index_select(0, index),
            decoder_input_ids=dec_ids,
            decoder_attention_mask=dec_mask,
        )
        # Decoder logits exist only for the few decoder positions, all of them scoring positions.
        logprobs = torch.log_softmax(out.logits.float(), dim=-1)
        dev = logprobs.device
        picked = logprobs[
            torch.tensor(target_row, device=dev),
            torch.tensor(target_col, device=dev),
            torch.tensor(target_token, device=dev),
        ]
        return self._reduce(picked, target_example, target_word, len(prompts), words, token_reduction)


class _SlotFreeEncoder(PromptEncoder):
    """For seq2seq models without sentinels: the input is the template with the slot removed."""

    def __init__(self, tokenizer, template, *, max_length):
        super().__init__(tokenizer, template, slot_text="", max_length=max_length)
        self.causal = False

    def _tokenize(self, values):
        text, char_spans = self._render(values)
        enc = self.tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
        return list(enc["input_ids"]), 0, token_spans(enc["offset_mapping"], char_spans)


def _mlm_head(model: nn.Module) -> nn.Module | None:
    """The module mapping hidden states to vocabulary logits (transform + decoder), if it is one child."""
    base = model.base_model
    candidates = [
        m for name, m in model.named_children() if m is not base and any(True for _ in m.parameters())
    ]
    out_emb = model.get_output_embeddings()
    if len(candidates) == 1 and any(sub is out_emb for sub in candidates[0].modules()):
        return candidates[0]
    return None


def pad_token_id(tokenizer, config=None) -> int:
    """The id to pad with: the tokenizer's pad token, else the model config's, else EOS, else 0."""
    for value in (tokenizer.pad_token_id, getattr(config, "pad_token_id", None), tokenizer.eos_token_id):
        if value is not None:
            return int(value)
    return 0  # padded positions are masked out, so any id works


BACKBONES: dict[str, type[Backbone]] = {
    "causal": CausalBackbone,
    "masked": MaskedBackbone,
    "seq2seq": Seq2SeqBackbone,
}
