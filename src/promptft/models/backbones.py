"""Backbones: a Hugging Face model whose forward returns only the label-word scores at the scoring position.

One forward: `Backbone.forward` runs the model's own forward (the peft wrapper's when an adapter is
attached), so soft prompts and prefixes, DDP/FSDP gradient sync and ONNX tracing all see it. The full
`[batch, seq, vocab]` logits are still never built: a pre-hook on the output head hands it only the hidden
states at the scoring positions (`[n_positions, hidden]`), so the head (with the model's own soft-capping
and scaling after it) computes `[n_positions, vocab]`. For a causal LM that is the last prompt position; for
a masked LM the mask position(s), through the model's own MLM head; for seq2seq the decoder's first
step(s), whose logits are the only ones computed anyway. Soft prompts prepend virtual tokens, which shifts
every position: the hook reads the shift off the hidden states' length.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from promptft.errors import ModelError
from promptft.models.limits import fit_max_length
from promptft.models.prefix_cache import PrefixCache, decoder_layers, frozen_prefix_length
from promptft.prompts.encoding import EncodedPrompt, PromptEncoder, token_spans
from promptft.prompts.template import Template
from promptft.prompts.verbalizer import TokenizedWords

log = logging.getLogger(__name__)

KINDS = ("causal", "masked", "seq2seq")


@contextmanager
def gathered_input(head: nn.Module, select: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """While active, `head` receives `select(hidden_states)` instead of all hidden states."""

    def hook(module, args, kwargs):
        return (select(args[0]), *args[1:]), kwargs

    handle = head.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


class Backbone(nn.Module):
    """Base class: holds the model and tokenizer, and scores label words for encoded prompts."""

    kind: str = ""

    def __init__(self, model: nn.Module, tokenizer, name: str = "") -> None:
        super().__init__()
        self.model = model
        self.peft_model: nn.Module | None = None  # the peft wrapper once an adapter is attached
        self.tokenizer = tokenizer
        self.name = name or getattr(model.config, "_name_or_path", "")
        self.pad_id = pad_token_id(tokenizer, model.config)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def net(self) -> nn.Module:
        """What forward runs: the peft wrapper when there is one (soft prompts live in its forward)."""
        return self.peft_model if self.peft_model is not None else self.model

    def attach(self, peft_model: nn.Module | None) -> None:
        """Route forward through `peft_model` (a wrapper of `self.model`). Registered as a child, so its
        own parameters (soft prompts) train and save with the backbone; shared ones are counted once."""
        self.peft_model = peft_model

    @property
    def prompt_learning(self) -> bool:
        config = getattr(self.peft_model, "active_peft_config", None)
        return bool(getattr(config, "is_prompt_learning", False))

    def _scoring_logits(
        self, head: nn.Module | None, rows: torch.Tensor, cols: torch.Tensor, seq_len: int, **inputs
    ) -> torch.Tensor:
        """Vocabulary logits `[n, vocab]` at (rows[i], cols[i]) of the input, from one forward of `net`.

        `head` is the module mapping hidden states to vocabulary logits; None computes the full logits and
        indexes them (a fallback for heads not recognised)."""
        offset = 0

        def select(hidden: torch.Tensor) -> torch.Tensor:
            nonlocal offset
            offset = hidden.shape[1] - seq_len  # virtual tokens of a soft prompt come first
            return hidden[rows, cols + offset]

        with gathered_input(head, select) if head is not None else nullcontext():
            logits = self.net(**inputs).logits
        if logits.dim() == 3:  # not gathered by the hook
            offset = logits.shape[1] - seq_len
            logits = logits[rows, cols + offset]
        return logits

    @property
    def slot_text(self) -> str | None:
        return None

    def leading_space(self, template: Template) -> bool:
        return template.space_before_slot

    def fit_length(self, max_length: int) -> int:
        """`max_length`, or the most tokens this model reads when that is fewer (with a warning); an
        attached soft prompt's or prefix's virtual tokens take positions too."""
        config = getattr(self.peft_model, "active_peft_config", None)
        virtual = int(getattr(config, "num_virtual_tokens", 0) or 0) if self.prompt_learning else 0
        return fit_max_length(max_length, self.model.config, self.tokenizer, self.name, virtual)

    def make_encoder(self, template: Template, max_length: int, reserve: int = 0) -> PromptEncoder:
        return PromptEncoder(
            self.tokenizer,
            template,
            slot_text=self.slot_text,
            max_length=self.fit_length(max_length),
            reserve=reserve,
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
        raise NotImplementedError

    def score(
        self, prompts: Sequence[EncodedPrompt], words: TokenizedWords, token_reduction: str = "sum"
    ) -> torch.Tensor:
        """Same as calling the module (kept for readability at call sites that are not training)."""
        return self(prompts, words, token_reduction)

    def slot_log_probs(self, prompts: Sequence[EncodedPrompt]) -> torch.Tensor:
        """Log-probability of every vocabulary token as the slot's first token: `[len(prompts), vocab]`.

        For vocabulary-wide searches (label-word search ranks every token). One forward of `net`, the
        output head applied at the slot position only (never `[batch, seq, vocab]`); equal to `forward`'s
        score of any single-token word. Call it on a few prompts at a time: each row holds the vocabulary."""
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
        if self.prompt_learning:
            return False  # virtual tokens pass through every layer, and they train
        split = frozen_prefix_length(self.model)
        if split < 1:
            return False
        if split >= len(decoder_layers(self.model)):
            return False  # nothing trainable in the layers at all (e.g. zero-shot): no training to speed up
        self.prefix_cache = PrefixCache(self.model, split)
        return True

    def disable_prefix_cache(self) -> None:
        self.prefix_cache = None

    def slot_log_probs(self, prompts):
        ids, mask = self._pad([p.input_ids for p in prompts])
        r = torch.arange(len(prompts), device=ids.device)
        c = torch.tensor([len(p.input_ids) - 1 for p in prompts], device=ids.device)
        logits = self._scoring_logits(
            self.model.get_output_embeddings(), r, c, ids.shape[1], input_ids=ids, attention_mask=mask
        )
        return torch.log_softmax(logits.float(), dim=-1)

    def forward(self, prompts, words, token_reduction="sum"):
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
        ids, mask = self._pad(list(rows))
        r = torch.tensor([p[0] for p in row_pos], device=ids.device)
        c = torch.tensor([p[1] for p in row_pos], device=ids.device)
        cache = self.prefix_cache.injected(list(rows), self._pad) if self.prefix_cache else nullcontext()
        with cache:
            logits = self._scoring_logits(
                self.model.get_output_embeddings(), r, c, ids.shape[1], input_ids=ids, attention_mask=mask
            )
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        dev = logprobs.device
        picked = logprobs[torch.tensor(target_pos, device=dev), torch.tensor(target_token, device=dev)]
        return self._reduce(picked, target_example, target_word, len(prompts), words, token_reduction)


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

    def slot_log_probs(self, prompts):
        ids, mask = self._pad([p.input_ids for p in prompts])
        r = torch.arange(len(prompts), device=ids.device)
        c = torch.tensor([p.slot_index for p in prompts], device=ids.device)
        logits = self._scoring_logits(self.head, r, c, ids.shape[1], input_ids=ids, attention_mask=mask)
        return torch.log_softmax(logits.float(), dim=-1)

    def forward(self, prompts, words, token_reduction="sum"):
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
        logits = self._scoring_logits(self.head, r, c, ids.shape[1], input_ids=ids, attention_mask=mask)
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

    def slot_log_probs(self, prompts):
        enc_ids, enc_mask = self._pad([p.input_ids for p in prompts])
        dec_ids, dec_mask = self._pad([list(self.decoder_prefix)] * len(prompts))
        out = self.net(
            input_ids=enc_ids,
            attention_mask=enc_mask,
            decoder_input_ids=dec_ids,
            decoder_attention_mask=dec_mask,
        )
        return torch.log_softmax(out.logits[:, len(self.decoder_prefix) - 1].float(), dim=-1)

    def make_encoder(self, template, max_length, reserve=0):
        if self._sentinel is None:
            return _SlotFreeEncoder(self.tokenizer, template, max_length=self.fit_length(max_length))
        return super().make_encoder(template, max_length, reserve=0)

    def forward(self, prompts, words, token_reduction="sum"):
        enc_ids, enc_mask = self._pad([p.input_ids for p in prompts])
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
        # A multi-token word needs its own decoder row, and so its own copy of the encoder input: the whole
        # model runs as one forward (soft prompts are added to the encoder input inside peft's forward).
        out = self.net(
            input_ids=enc_ids.index_select(0, index),
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
