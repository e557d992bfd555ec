"""Conversations -> token ids and loss masks; batches (padded, length-grouped) and packed rows.

Loss masking: the conversation is rendered once; each assistant turn's character span is found by rendering
the conversation up to that turn twice (with the generation prompt, and with the turn itself), and the
tokens whose characters start inside a span carry loss. So every assistant turn counts, its end-of-turn
token included (that is how the model learns to stop), and no system, user or template text does.
Prompt/completion records are raw text: loss on the completion and the end-of-sequence token only.

Packing puts several conversations in one row with their positions restarting at 0 and a block-diagonal
causal mask, so a token never attends to another conversation in the row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from promptft.chat.data import Conversation
from promptft.chat.templates import ChatFormat
from promptft.errors import ConfigError, DataError, TemplateError

log = logging.getLogger(__name__)

IGNORE = -100


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE where no loss
    id: str = ""

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def loss_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


@dataclass
class EncodeStats:
    conversations: int = 0
    truncated: int = 0
    dropped: int = 0
    dropped_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, int]:
        return {"conversations": self.conversations, "truncated": self.truncated, "dropped": self.dropped}


def assistant_spans(tokenizer, fmt: ChatFormat, conv: Conversation) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character spans that carry loss."""
    if conv.kind == "completion":
        prompt, completion = conv.messages[0]["content"], conv.messages[-1]["content"]
        eos = tokenizer.eos_token or ""
        return prompt + completion + eos, [(len(prompt), len(prompt) + len(completion) + len(eos))]
    messages = conv.messages
    text = fmt.render(tokenizer, messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = fmt.render(tokenizer, messages[:i], add_generation_prompt=True)
        upto = fmt.render(tokenizer, messages[: i + 1])
        if not text.startswith(before) or not text.startswith(upto) or not upto.startswith(before):
            raise TemplateError(
                f"{conv.source or conv.id}: the chat template does not render conversations as growing prefixes "
                "(a turn's text changes when later turns follow), so assistant turns cannot be located for the "
                "loss mask; use a template whose output for the first n turns is a prefix of the whole"
            )
        end = len(upto.rstrip())  # the turn's closing token carries loss, the newline after it does not
        spans.append((len(before), end))
    return text, spans


def encode(
    tokenizer, fmt: ChatFormat, conv: Conversation, max_length: int | None = None, overflow: str = "truncate"
) -> Encoded | None:
    """Token ids and labels of one conversation; None when it is longer than `max_length` and `overflow`
    is "drop" (or when truncation leaves no assistant token)."""
    text, spans = assistant_spans(tokenizer, fmt, conv)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = [IGNORE] * len(ids)
    for t, (start, stop) in enumerate(offsets):
        if stop <= start:
            continue
        if any(s <= start < e for s, e in spans):
            labels[t] = ids[t]
    if max_length is not None and len(ids) > max_length:
        if overflow == "drop":
            return None
        ids, labels = ids[:max_length], labels[:max_length]
    if all(x == IGNORE for x in labels):
        return None
    return Encoded(ids, labels, conv.id)


def encode_all(
    tokenizer,
    fmt: ChatFormat,
    convs: Sequence[Conversation],
    max_length: int | None = None,
    overflow: str = "truncate",
    what: str = "data",
) -> tuple[list[Encoded], EncodeStats]:
    """Encode conversations, counting (and logging) those truncated or dropped for length."""
    if overflow not in ("truncate", "drop"):
        raise ConfigError(f"overflow must be 'truncate' or 'drop', got {overflow!r}")
    out: list[Encoded] = []
    stats = EncodeStats(conversations=len(convs))
    for conv in convs:
        item = encode(tokenizer, fmt, conv, None)
        if item is None:
            stats.dropped += 1
            stats.dropped_ids.append(conv.id)
            continue
        if max_length is not None and len(item) > max_length:
            if overflow == "drop":
                stats.dropped += 1
                stats.dropped_ids.append(conv.id)
                continue
            item = Encoded(item.input_ids[:max_length], item.labels[:max_length], item.id)
            if item.loss_tokens == 0:
                stats.dropped += 1
                stats.dropped_ids.append(conv.id)
                continue
            stats.truncated += 1
        out.append(item)
    if stats.truncated or stats.dropped:
        log.info(
            "%s: %d of %d conversations longer than %s tokens: %d truncated, %d dropped",
            what,
            stats.truncated + stats.dropped,
            stats.conversations,
            max_length,
            stats.truncated,
            stats.dropped,
        )
    if not out:
        raise DataError(
            f"{what}: no conversation left after encoding (all too long or without assistant tokens)"
        )
    return out, stats


# ----- batches -----
def collate(items: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch: input_ids, attention_mask, labels (IGNORE on padding)."""
    width = max(len(x) for x in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, item in enumerate(items):
        n = len(item)
        ids[row, :n] = torch.tensor(item.input_ids)
        labels[row, :n] = torch.tensor(item.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def pack(items: Sequence[Encoded], max_length: int) -> list[list[int]]:
    """Groups of item indices whose lengths add up to at most `max_length` (first-fit decreasing)."""
    order = sorted(range(len(items)), key=lambda i: -len(items[i]))
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = len(items[i])
        for r, free in enumerate(room):
            if n <= free:
                rows[r].append(i)
                room[r] -= n
                break
        else:
            rows.append([i])
            room.append(max_length - n)
    return rows


def collate_packed(
    rows: Sequence[Sequence[Encoded]], pad_id: int, dtype=torch.float32
) -> dict[str, torch.Tensor]:
    """Packed rows: conversations side by side, positions restarting at 0 for each, and a 4-D additive
    attention mask that is causal inside each conversation and blocks everything across them."""
    width = max(sum(len(x) for x in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    segment = torch.full((len(rows), width), -1, dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for s, item in enumerate(row):
            n = len(item)
            ids[r, at : at + n] = torch.tensor(item.input_ids)
            labels[r, at : at + n] = torch.tensor(item.labels)
            labels[r, at] = IGNORE  # never predicted from the previous conversation's last token
            positions[r, at : at + n] = torch.arange(n)
            segment[r, at : at + n] = s
            at += n
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    same = (segment[:, :, None] == segment[:, None, :]) & (segment[:, :, None] >= 0)
    allowed = same & causal
    allowed |= torch.eye(width, dtype=torch.bool)  # padding rows attend to themselves: no NaN
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    return {"input_ids": ids, "attention_mask": mask[:, None], "position_ids": positions, "labels": labels}
