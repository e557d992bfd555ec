"""How many tokens a model reads, and fitting a requested `max_length` to it.

A prompt longer than a model's learned position table (BERT, RoBERTa, GPT-2: 512 or 1024) fails inside the
forward with an index error; one longer than a rotary model's trained context (Llama, Gemma) runs but reads
positions it never saw. Both are cut here instead, with a warning that says so.
"""

from __future__ import annotations

import logging

from promptft.errors import ModelError

log = logging.getLogger(__name__)

_UNSET = 1_000_000  # tokenizers without a declared limit report int(1e30)
_POSITION_FIELDS = ("max_position_embeddings", "n_positions", "max_sequence_length")
# Position ids of these start after the padding index (RoBERTa's 514 positions read 512 tokens)
_PADDING_OFFSET_TYPES = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer", "data2vec-text",
                         "roberta-prelayernorm", "ibert", "mpnet", "esm"}  # fmt: skip
_warned: set[tuple[str, str, int, int]] = set()


def position_limit(config, tokenizer=None) -> int | None:
    """The most tokens the model reads: the smaller of the tokenizer's declared `model_max_length` and the
    config's position count; None when neither declares one (e.g. T5's relative positions)."""
    limits = []
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 0 < declared < _UNSET:
        limits.append(declared)
    for name in _POSITION_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            if getattr(config, "model_type", "") in _PADDING_OFFSET_TYPES:
                value -= (getattr(config, "pad_token_id", None) or 0) + 1
            limits.append(value)
            break
    return min(limits) if limits else None


def fit_max_length(
    max_length: int,
    config,
    tokenizer=None,
    name: str = "",
    virtual_tokens: int = 0,
    setting: str = "max_length",
) -> int:
    """`max_length`, or the model's limit when that is smaller (warned once per model and length).
    `virtual_tokens`: positions a soft prompt or prefix takes before the text (they count against it);
    `setting`: the option's name in the warning (the chat's `context_window`, say)."""
    limit = position_limit(config, tokenizer)
    if limit is None:
        return max_length
    limit -= virtual_tokens
    if max_length <= limit:
        return max_length
    if limit < 1:
        raise ModelError(
            f"{name or 'the model'} reads {limit + virtual_tokens} tokens, and the soft prompt takes "
            f"{virtual_tokens} of them: use fewer virtual tokens (num_virtual_tokens)"
        )
    key = (name, setting, max_length, limit)
    if key not in _warned:
        _warned.add(key)
        soft = f" once the soft prompt's {virtual_tokens} virtual tokens are placed" if virtual_tokens else ""
        log.warning(
            "%s=%d is more than %s reads (%d tokens%s): inputs are cut to %d tokens; set %s <= %d to silence this",
            setting, max_length, name or "the model", limit, soft, limit, setting, limit,
        )  # fmt: skip
    return limit
