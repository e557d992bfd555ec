"""Generating assistant turns: settings, the prompt kept inside the context window (the oldest turns dropped
first, never the system prompt), batched generation for scripts and token streaming for the chat.

Generation stops at the template's end-of-turn token (or eos) or after `max_new_tokens`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import torch

from promptft.chat.model import ChatModel
from promptft.errors import ConfigError
from promptft.models.limits import position_limit


@dataclass
class GenerationSettings:
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    context_window: int | None = None  # None = the model's own (capped at 4096); never more than it reads
    seed: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.max_new_tokens < 1:
            problems.append(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            problems.append(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty <= 0:
            problems.append(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if problems:
            raise ConfigError("; ".join(problems))

    def to_dict(self) -> dict:
        return asdict(self)

    def generate_kwargs(self, chat: ChatModel) -> dict:
        kwargs: dict = {
            "max_new_tokens": self.max_new_tokens,
            "eos_token_id": chat.stop_ids or None,
            "pad_token_id": chat.tokenizer.pad_token_id,
            "repetition_penalty": self.repetition_penalty,
        }
        if self.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs


def context_window(chat: ChatModel, settings: GenerationSettings) -> int:
    """The tokens a prompt and its reply may take: the setting, cut to what the model reads; by default the
    model's own limit, capped at 4096 (a longer history costs more than it helps a small model)."""
    if settings.context_window:
        return chat.fit_length(settings.context_window, setting="context_window")
    return min(position_limit(chat._base().config, chat.tokenizer) or 2048, 4096)


def fit_history(
    chat: ChatModel, messages: Sequence[dict[str, str]], settings: GenerationSettings
) -> tuple[list[dict[str, str]], list[int]]:
    """The messages that fit the context window with room for the reply (oldest user/assistant turns
    dropped first; the system prompt kept; a single over-long message keeps its end) and their prompt ids."""
    window = context_window(chat, settings)
    budget = window - settings.max_new_tokens
    if budget < 16:
        raise ConfigError(
            f"max_new_tokens {settings.max_new_tokens} leaves no room for the prompt in a context of "
            f"{window} tokens: lower max_new_tokens, or raise context_window (--context-window)"
        )
    messages = list(messages)
    system = [m for m in messages[:1] if m["role"] == "system"]
    turns = messages[len(system) :]

    def ids_of(ms):
        text = chat.format.render(chat.tokenizer, ms, add_generation_prompt=True)
        return chat.tokenizer(text, add_special_tokens=False)["input_ids"]

    ids = ids_of(system + turns)
    while len(ids) > budget and len(turns) > 1:
        turns = turns[1:]
        while len(turns) > 1 and turns[0]["role"] != "user":  # start on a user turn
            turns = turns[1:]
        ids = ids_of(system + turns)
    if len(ids) > budget and turns:  # one message longer than the window: keep its end
        last = dict(turns[-1])
        content = last["content"]
        lo, hi = 0, len(content)
        while lo < hi:  # the longest tail that fits
            mid = (lo + hi) // 2
            last["content"] = content[len(content) - mid :] if mid else ""
            if len(ids_of(system + [last])) <= budget:
                lo = mid + 1
            else:
                hi = mid
        keep = max(lo - 1, 0)
        last["content"] = content[len(content) - keep :] if keep else ""
        turns = [last]
        ids = ids_of(system + turns)
    return system + turns, ids


def _seed(settings: GenerationSettings) -> None:
    if settings.seed is not None:
        torch.manual_seed(settings.seed)


def generate(
    chat: ChatModel,
    conversations: Sequence[Sequence[dict[str, str]]],
    settings: GenerationSettings | None = None,
    batch_size: int = 8,
) -> list[str]:
    """The next assistant turn of each conversation (batched, left-padded)."""
    settings = settings or GenerationSettings()
    _seed(settings)
    prompts = [fit_history(chat, conv, settings)[1] for conv in conversations]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    pad = chat.tokenizer.pad_token_id
    kwargs = settings.generate_kwargs(chat)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            width = max(len(prompts[i]) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                n = len(prompts[i])
                ids[row, width - n :] = torch.tensor(prompts[i])
                mask[row, width - n :] = 1
            generated = chat.model.generate(
                input_ids=ids.to(chat.device), attention_mask=mask.to(chat.device), **kwargs
            )
            for row, i in enumerate(batch):
                out[i] = _decode(chat, generated[row, width:].tolist())
    return out


def _decode(chat: ChatModel, ids: list[int]) -> str:
    for t, token in enumerate(ids):
        if token in chat.stop_ids:
            ids = ids[:t]
            break
    return chat.tokenizer.decode(ids, skip_special_tokens=True).strip()


def stream(
    chat: ChatModel, messages: Sequence[dict[str, str]], settings: GenerationSettings | None = None
) -> Iterator[str]:
    """The next assistant turn, piece by piece as it is generated."""
    from transformers import TextIteratorStreamer

    settings = settings or GenerationSettings()
    _seed(settings)
    _, ids = fit_history(chat, messages, settings)
    streamer = TextIteratorStreamer(chat.tokenizer, skip_prompt=True, skip_special_tokens=True)
    inputs = torch.tensor([ids], device=chat.device)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with torch.inference_mode():
                chat.model.generate(
                    input_ids=inputs,
                    attention_mask=torch.ones_like(inputs),
                    streamer=streamer,
                    **settings.generate_kwargs(chat),
                )
        except BaseException as exc:  # surfaced in the caller's thread
            errors.append(exc)
            streamer.end()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield from streamer
    thread.join()
    if errors:
        raise errors[0]
