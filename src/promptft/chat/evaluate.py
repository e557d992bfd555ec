"""Judging a chat model: assistant-token loss and perplexity; for task-oriented dialogues (SGD) the next
assistant turn is generated from the conversation so far and scored by slot-value recall (does it mention
the values the reference turn's annotated acts state?), separately for services seen and unseen in
training, and by ROUGE-L against the reference turn; before/after samples as markdown.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from promptft.chat.data import Conversation
from promptft.chat.encoding import encode_all
from promptft.chat.generate import GenerationSettings, generate
from promptft.chat.model import ChatModel
from promptft.chat.train import dev_loss


def perplexity(
    chat: ChatModel,
    convs: Sequence[Conversation],
    max_length: int = 1024,
    batch_size: int = 8,
    overflow: str = "truncate",
) -> dict[str, float]:
    """Assistant-token loss, perplexity and token count over `convs`."""
    encoded, stats = encode_all(chat.tokenizer, chat.format, convs, max_length, overflow, what="test")
    out = dev_loss(chat, encoded, batch_size)
    out.update({"conversations": len(encoded), "truncated": stats.truncated, "dropped": stats.dropped})
    return out


@dataclass
class TurnCase:
    """One assistant turn to generate: the conversation before it, the reference, its slot values."""

    id: str
    context: list[dict[str, str]]
    reference: str
    values: list[str]
    service: str
    seen: bool
    meta: dict[str, Any] = field(default_factory=dict)


def sgd_turn_cases(
    convs: Sequence[Conversation], seen_services: set[str], per_group: int, seed: int = 0
) -> list[TurnCase]:
    """A fixed, seeded sample of `per_group` assistant turns that state slot values, from services seen in
    training and as many from unseen ones (at most one turn per conversation, so no dialogue dominates)."""
    rng = np.random.default_rng(seed)
    groups: dict[bool, list[TurnCase]] = {True: [], False: []}
    for conv in convs:
        services = conv.meta.get("services") or []
        if not services:
            continue
        service = services[0]
        seen = service in seen_services
        candidates = []
        k = 0
        for i, message in enumerate(conv.messages):
            if message["role"] != "assistant":
                continue
            values = conv.meta["values"][k]
            k += 1
            if values:
                candidates.append(
                    TurnCase(f"{conv.id}#{i}", conv.messages[:i], message["content"], values, service, seen)
                )
        if candidates:
            groups[seen].append(candidates[int(rng.integers(len(candidates)))])
    out: list[TurnCase] = []
    for seen in (True, False):
        pool = groups[seen]
        picks = rng.permutation(len(pool))[:per_group]
        out.extend(pool[int(i)] for i in sorted(picks))
    return out


def last_turn_cases(convs: Sequence[Conversation], n: int, seed: int = 0) -> list[TurnCase]:
    """For any conversations: the last assistant turn of a seeded sample of `n` of them (no slot values)."""
    picks = sorted(int(i) for i in np.random.default_rng(seed).permutation(len(convs))[:n])
    out = []
    for i in picks:
        conv = convs[i]
        last = max(j for j, m in enumerate(conv.messages) if m["role"] == "assistant")
        out.append(
            TurnCase(f"{conv.id}#{last}", conv.messages[:last], conv.messages[last]["content"], [], "-", True)
        )
    return out


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip()


def value_recall(generated: str, values: Sequence[str]) -> tuple[int, int]:
    """(values mentioned in `generated`, values), case- and space-insensitive substring match."""
    text = _norm(generated)
    return sum(1 for v in values if _norm(v) in text), len(values)


def rouge_l(generated: Sequence[str], references: Sequence[str]) -> list[float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [scorer.score(r, g)["rougeL"].fmeasure for g, r in zip(generated, references, strict=True)]


def score_turns(cases: Sequence[TurnCase], generated: Sequence[str]) -> dict[str, Any]:
    """Slot-value recall (micro: mentioned values / all values) and mean ROUGE-L F1, overall, seen, unseen."""
    rouge = rouge_l(generated, [c.reference for c in cases])
    out: dict[str, Any] = {}
    for name, keep in (("all", lambda c: True), ("seen", lambda c: c.seen), ("unseen", lambda c: not c.seen)):
        idx = [i for i, c in enumerate(cases) if keep(c)]
        hits = [value_recall(generated[i], cases[i].values) for i in idx]
        found, total = sum(h for h, _ in hits), sum(n for _, n in hits)
        out[name] = {
            "turns": len(idx),
            "values": total,
            "slot_value_recall": found / total if total else None,
            "rouge_l": float(np.mean([rouge[i] for i in idx])) if idx else None,
        }
    return out


def evaluate_turns(
    chat: ChatModel,
    cases: Sequence[TurnCase],
    settings: GenerationSettings | None = None,
    batch_size: int = 8,
) -> tuple[dict[str, Any], list[str]]:
    generated = generate(chat, [c.context for c in cases], settings, batch_size)
    return score_turns(cases, generated), generated


def samples_markdown(
    cases: Sequence[TurnCase], before: Sequence[str], after: Sequence[str], title: str, n: int = 12
) -> str:
    """A side-by-side table of generations before and after fine-tuning on held-out turns."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")[:400] or "(empty)"

    lines = [
        f"# {title}",
        "",
        "| turn | service | last user turn | reference | before | after |",
        "|---|---|---|---|---|---|",
    ]
    for case, b, a in list(zip(cases, before, after, strict=True))[:n]:
        user = next((m["content"] for m in reversed(case.context) if m["role"] == "user"), "")
        seen = "seen" if case.seen else "unseen"
        lines.append(
            f"| {case.id} | {case.service} ({seen}) | {cell(user)} | {cell(case.reference)} | {cell(b)} | {cell(a)} |"
        )
    return "\n".join(lines) + "\n"
