"""Score many continuations of one text, computing the text once: a causal LM's KV cache, shared.

A yes/no question per label (`"{text}\\nDoes it express {label}? {mask}"`) asks one question per label of
the same text. Its prompts share their first tokens (the text), so for a causal LM the key/value cache of
that prefix is computed once per example and only the short per-label suffixes run, batched, on a copy
of it. The forward is the model's own (through peft's wrapper), and the output head still sees only the
scoring positions. The scores equal scoring every prompt whole (tested).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch

from promptft.models.backbones import Backbone, gathered_input
from promptft.prompts.verbalizer import TokenizedWords


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Tokens every row starts with, leaving each row at least one token of its own."""
    shortest = min(len(r) for r in rows)
    n = 0
    while n < shortest - 1 and all(r[n] == rows[0][n] for r in rows):
        n += 1
    return n


def can_share_prefix(backbone: Backbone) -> bool:
    """Causal backbones without soft prompts (peft puts virtual tokens in the cache) and without the
    frozen-layer training cache (it replaces the layers' inputs)."""
    return (
        backbone.kind == "causal"
        and not backbone.prompt_learning
        and getattr(backbone, "prefix_cache", None) is None
    )


def _cache_kwarg(model: torch.nn.Module) -> str:
    """The forward's name for the KV cache: `cache` in newer transformers, `past_key_values` before."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def shared_prefix_scores(
    backbone: Backbone,
    groups: Sequence[Sequence[Sequence[int]]],
    words: TokenizedWords,
    token_reduction: str = "sum",
) -> torch.Tensor:
    """Word log-probabilities `[total rows, n_words]` after every row (groups one after another), as
    `backbone(prompts, words)` gives them, with each group's common prefix run once and its KV cache
    shared by the group's rows. A k-token word adds a row with its first k-1 tokens, as in the backbone."""
    head = backbone.model.get_output_embeddings()
    device = backbone.device
    key = _cache_kwarg(backbone.model)
    out = []
    for rows in groups:
        p = common_prefix_length(rows)
        prefix = torch.tensor([list(rows[0][:p])], dtype=torch.long, device=device)
        with gathered_input(head, lambda h: h[:, -1:]):  # the prefix's vocabulary logits are not needed
            result = backbone.net(input_ids=prefix, use_cache=True)
        cache = getattr(result, "cache", None) or result.past_key_values
        suffixes: list[list[int]] = []
        positions: list[tuple[int, int]] = []  # (suffix row, position) per scored token
        target_token: list[int] = []
        target_example: list[int] = []
        target_word: list[int] = []
        for e, row in enumerate(rows):
            base = len(suffixes)
            suffixes.append(list(row[p:]))
            last = len(row) - p - 1
            for j, word in enumerate(words.word_ids):
                r = base
                if len(word) > 1:
                    r = len(suffixes)
                    suffixes.append(list(row[p:]) + list(word[:-1]))
                for t, token in enumerate(word):
                    positions.append((r, last + t))
                    target_token.append(token)
                    target_example.append(e)
                    target_word.append(j)
        cache.batch_repeat_interleave(len(suffixes))
        ids, suffix_mask = backbone._pad(suffixes)
        mask = torch.cat([torch.ones((len(suffixes), p), dtype=torch.long, device=device), suffix_mask], 1)
        logits = backbone._scoring_logits(
            head,
            torch.tensor([r for r, _ in positions], device=device),
            torch.tensor([c for _, c in positions], device=device),
            ids.shape[1],
            input_ids=ids,
            attention_mask=mask,
            use_cache=True,
            **{key: cache},
        )
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        picked = logprobs[
            torch.arange(len(positions), device=device), torch.tensor(target_token, device=device)
        ]
        out.append(backbone._reduce(picked, target_example, target_word, len(rows), words, token_reduction))
    return torch.cat(out)
