"""Score many continuations of one text, computing the text once: a causal LM's KV cache, shared.

A yes/no question per label (`"{text}\\nDoes it express {label}? {mask}"`) asks one question per label of
the same text. Its prompts share their first tokens (the text), so for a causal LM the key/value cache of
that prefix is computed once per example and only the short per-label suffixes run, batched, on a copy
of it. The forward is the model's own (through peft's wrapper), and the output head still sees only the
scoring positions. The scores equal scoring every prompt whole (tested).

A prompt classifier with a multi-token label word uses it too, each prompt a group of its own: the word's
extra row (the prompt plus the word's first tokens) then runs only those tokens on the prompt's cache.
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


def _accepts_position_ids(model: torch.nn.Module) -> bool:
    return "position_ids" in inspect.signature(model.forward).parameters


def shares_in_batches(backbone: Backbone) -> bool:
    """Whether many groups run in one forward (the model takes position ids); else one forward per group,
    which only pays when each group is large (a yes/no question per label), not for one prompt per group."""
    return _accepts_position_ids(backbone.model)


# Cached key/value rows (suffix rows x prefix width) per forward: the expanded cache is ~46 KB per row and
# token for a 135M model, so this bounds it near 400 MB.
CACHE_BUDGET = 8192


def _chunks(groups: Sequence[Sequence[Sequence[int]]], batched: bool) -> list[list[int]]:
    """Consecutive group indices run in one forward each: all within the cache budget when the model
    takes position ids (prefixes of different lengths need them), else one group at a time."""
    if not batched:
        return [[g] for g in range(len(groups))]
    out: list[list[int]] = []
    rows = width = 0
    for g, group in enumerate(groups):
        n, w = len(group), max(len(r) for r in group)
        if out and (rows + n) * max(width, w) > CACHE_BUDGET:
            out.append([])
            rows = width = 0
        if not out:
            out.append([])
        out[-1].append(g)
        rows, width = rows + n, max(width, w)
    return out


def shared_prefix_scores(
    backbone: Backbone,
    groups: Sequence[Sequence[Sequence[int]]],
    words: TokenizedWords,
    token_reduction: str = "sum",
) -> torch.Tensor:
    """Word log-probabilities `[total rows, n_words]` after every row (groups one after another), as
    `backbone(prompts, words)` gives them, with each group's common prefix run once and its KV cache
    shared by the group's rows. A k-token word adds a row with its first k-1 tokens, as in the backbone.

    Several groups run together: their prefixes in one padded forward, then all their suffixes in one
    forward on the cache rows of their own prefix (explicit position ids, the prefix padding masked). Small
    forwards are costly on CPU (each reads all the weights), so two per batch beat two per group."""
    batched = _accepts_position_ids(backbone.model)
    return torch.cat(
        [
            _scores(backbone, [groups[g] for g in chunk], words, token_reduction)
            for chunk in _chunks(groups, batched)
        ]
    )


def _scores(
    backbone: Backbone,
    groups: Sequence[Sequence[Sequence[int]]],
    words: TokenizedWords,
    token_reduction: str,
) -> torch.Tensor:
    head = backbone.model.get_output_embeddings()
    device = backbone.device
    key = _cache_kwarg(backbone.model)
    lengths = [common_prefix_length(rows) for rows in groups]
    prefix_ids, prefix_mask = backbone._pad(
        [list(rows[0][:p]) for rows, p in zip(groups, lengths, strict=True)]
    )
    with gathered_input(head, lambda h: h[:, -1:]):  # the prefix's vocabulary logits are not needed
        result = backbone.net(input_ids=prefix_ids, attention_mask=prefix_mask, use_cache=True)
    cache = getattr(result, "cache", None) or result.past_key_values
    suffixes: list[list[int]] = []
    group_of: list[int] = []  # per suffix row, its group (its cache row)
    positions: list[tuple[int, int]] = []  # (suffix row, position) per scored token
    target_token: list[int] = []
    target_example: list[int] = []  # the row of `groups` (counted over all groups) the token scores
    target_word: list[int] = []
    n_rows = 0
    for g, (rows, p) in enumerate(zip(groups, lengths, strict=True)):
        for row in rows:
            base = len(suffixes)
            suffixes.append(list(row[p:]))
            group_of.append(g)
            last = len(row) - p - 1
            for j, word in enumerate(words.word_ids):
                r = base
                if len(word) > 1:
                    r = len(suffixes)
                    suffixes.append(list(row[p:]) + list(word[:-1]))
                    group_of.append(g)
                for t, token in enumerate(word):
                    positions.append((r, last + t))
                    target_token.append(token)
                    target_example.append(n_rows)
                    target_word.append(j)
            n_rows += 1
    index = torch.tensor(group_of, device=device)
    cache.batch_select_indices(index)  # each suffix row gets its own group's prefix keys and values
    ids, suffix_mask = backbone._pad(suffixes)
    mask = torch.cat([prefix_mask[index], suffix_mask], 1)
    start = torch.tensor(lengths, device=device)[index]  # the suffix continues its own prefix's positions
    position_ids = start[:, None] + torch.arange(ids.shape[1], device=device)[None, :]
    extra = {"position_ids": position_ids} if len(groups) > 1 else {}  # one group: no padding, the default
    logits = backbone._scoring_logits(
        head,
        torch.tensor([r for r, _ in positions], device=device),
        torch.tensor([c for _, c in positions], device=device),
        ids.shape[1],
        input_ids=ids,
        attention_mask=mask,
        use_cache=True,
        **{key: cache},
        **extra,
    )
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    picked = logprobs[torch.arange(len(positions), device=device), torch.tensor(target_token, device=device)]
    return backbone._reduce(picked, target_example, target_word, n_rows, words, token_reduction)
