"""A backbone whose slot scores are planted: known answers for calibration, prompt ranking and label-word
search. It encodes prompts like a real causal backbone (tiny Llama's tokenizer), but its vocabulary
log-probabilities at the slot are `bias` plus, for every cue found in the prompt's text, that cue's boosts.
A cue is a piece of text, or a tuple of pieces that must all be present (e.g. ("good", "It was"): the
evidence shows only through one template)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from promptft.models.backbones import CausalBackbone
from promptft.prompts.verbalizer import tokenize_word
from tiny import tiny_llama


class PlantedBackbone(CausalBackbone):
    def __init__(
        self,
        bias: Mapping[str, float] = (),
        cues: Mapping[str | tuple[str, ...], Mapping[str, float]] = (),
    ) -> None:
        model, tok = tiny_llama()
        super().__init__(model, tok, "planted")
        self.knob = nn.Parameter(torch.zeros(()))  # a weight whose version moves when it is changed
        vocab = len(tok)
        self.base = torch.zeros(vocab)
        for word, value in dict(bias).items():
            self.base[self.word_id(word)] += value
        # When the prompt contains a cue, the listed words gain log-odds.
        self.cues = [
            ((cue,) if isinstance(cue, str) else tuple(cue), self._vector(boosts, vocab))
            for cue, boosts in dict(cues).items()
        ]

    def word_id(self, word: str) -> int:
        ids = tokenize_word(self.tokenizer, word, True)
        assert len(ids) == 1, f"{word!r} is {len(ids)} tokens in the tiny vocabulary"
        return ids[0]

    def _vector(self, boosts: Mapping[str, float], vocab: int) -> torch.Tensor:
        out = torch.zeros(vocab)
        for word, value in boosts.items():
            out[self.word_id(word)] += value
        return out

    def slot_log_probs(self, prompts):
        rows = []
        for prompt in prompts:
            text = self.tokenizer.decode(list(prompt.input_ids))
            logits = self.base.clone()
            for pieces, vector in self.cues:
                if all(piece in text for piece in pieces):
                    logits = logits + vector
            rows.append(logits)
        return torch.log_softmax(torch.stack(rows) + self.knob, dim=-1)

    def forward(self, prompts, words, token_reduction="sum"):
        logprobs = self.slot_log_probs(prompts)
        first = [w[0] for w in words.word_ids]
        assert all(len(w) == 1 for w in words.word_ids), "the planted backbone scores single-token words"
        return logprobs[:, first]
