"""Judging a chat model: assistant-token loss and perplexity; for task-oriented dialogues (SGD) the next
assistant turn is generated from the conversation so far and scored by slot-value recall (does it mention
the values the reference turn's annotated acts state?), separately for services seen and unseen in
training, and by ROUGE-L against the reference turn; before/after samples as markdown.

Slot-value recall is also split by where a value could come from: *in context* (the value appears, as a whole
word or phrase after normalising case and spaces, in the messages before the turn, so the model can copy it)
or *not in context* (it does not: in SGD mostly values of the API results the system saw, which plain chat
fine-tuning never shows the model, plus rewordings such as "12 pm" for the user's "afternoon 12"). A paired
bootstrap over turns (`paired_bootstrap`) gives a confidence interval for each after-minus-before change.
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
    max_length = chat.fit_length(max_length)
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
        results = conv.meta.get("results")
        backend: list[str] = []  # service-result values the system has seen up to this turn
        for i, message in enumerate(conv.messages):
            if message["role"] != "assistant":
                continue
            values = conv.meta["values"][k]
            if results is not None:
                backend.extend(v for v in results[k] if v not in backend)
            k += 1
            if values:
                meta = {"backend_values": list(backend)} if results is not None else {}
                candidates.append(
                    TurnCase(
                        f"{conv.id}#{i}", conv.messages[:i], message["content"], values, service, seen, meta
                    )
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


def _mentions(text: str, value: str) -> bool:
    """`value` occurs in normalised `text` as a whole word or phrase ("2" is not in "12 pm" or "2nd")."""
    return re.search(rf"(?<!\w){re.escape(_norm(value))}(?!\w)", text) is not None


def value_in_context(case: TurnCase) -> list[bool]:
    """Per annotated value of the turn: does it appear in the messages before it (so it can be copied)?"""
    earlier = _norm(" ".join(m["content"] for m in case.context))
    return [_mentions(earlier, v) for v in case.values]


def value_recall(generated: str, values: Sequence[str]) -> tuple[int, int]:
    """(values mentioned in `generated`, values), case- and space-insensitive substring match."""
    text = _norm(generated)
    return sum(1 for v in values if _norm(v) in text), len(values)


def rouge_l(generated: Sequence[str], references: Sequence[str]) -> list[float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [scorer.score(r, g)["rougeL"].fmeasure for g, r in zip(generated, references, strict=True)]


GROUPS = ("all", "seen", "unseen")
KINDS = ("in_context", "not_in_context")


def _in_group(case: TurnCase, group: str) -> bool:
    return group == "all" or case.seen == (group == "seen")


def turn_counts(cases: Sequence[TurnCase], generated: Sequence[str]) -> dict[str, np.ndarray]:
    """Per turn: values and mentioned values, overall and by kind (in context or not), as integer arrays."""
    rows = []
    for case, text in zip(cases, generated, strict=True):
        norm = _norm(text)
        mentioned = [_norm(v) in norm for v in case.values]  # the same test as value_recall
        inside = value_in_context(case)
        rows.append(
            [
                len(case.values),
                sum(mentioned),
                sum(inside),
                sum(m and i for m, i in zip(mentioned, inside, strict=True)),
            ]
        )
    a = np.array(rows, dtype=np.int64).reshape(-1, 4)
    return {
        "values": a[:, 0],
        "found": a[:, 1],
        "values_in_context": a[:, 2],
        "found_in_context": a[:, 3],
        "values_not_in_context": a[:, 0] - a[:, 2],
        "found_not_in_context": a[:, 1] - a[:, 3],
    }


def _ratio(found: int, total: int) -> float | None:
    return found / total if total else None


def score_turns(cases: Sequence[TurnCase], generated: Sequence[str]) -> dict[str, Any]:
    """Slot-value recall (micro: mentioned values / all values) and mean ROUGE-L F1, overall, seen, unseen;
    recall also for values in the earlier messages (`slot_value_recall_in_context`) and for the others
    (`slot_value_recall_not_in_context`), and how many of those others are in the service results the system
    saw (`values_not_in_context_in_results`, SGD only)."""
    rouge = rouge_l(generated, [c.reference for c in cases])
    counts = turn_counts(cases, generated)
    out: dict[str, Any] = {}
    for name in GROUPS:
        idx = [i for i, c in enumerate(cases) if _in_group(c, name)]
        s = {k: int(v[idx].sum()) for k, v in counts.items()}
        out[name] = {
            "turns": len(idx),
            "values": s["values"],
            "slot_value_recall": _ratio(s["found"], s["values"]),
            "rouge_l": float(np.mean([rouge[i] for i in idx])) if idx else None,
        }
        for kind in KINDS:
            out[name][f"values_{kind}"] = s[f"values_{kind}"]
            out[name][f"slot_value_recall_{kind}"] = _ratio(s[f"found_{kind}"], s[f"values_{kind}"])
        if idx and all("backend_values" in cases[i].meta for i in idx):
            out[name]["values_not_in_context_in_results"] = sum(
                _norm(v) in {_norm(b) for b in cases[i].meta["backend_values"]}
                for i in idx
                for v, inside in zip(cases[i].values, value_in_context(cases[i]), strict=True)
                if not inside
            )
    return out


def paired_bootstrap(
    cases: Sequence[TurnCase],
    before: Sequence[str],
    after: Sequence[str],
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """After-minus-before change of slot-value recall (overall, in context, not in context) and ROUGE-L per
    group, with a percentile interval from a paired bootstrap: turns are resampled with replacement within
    the group, and both generations of a resampled turn stay together. A change whose interval excludes 0
    is distinguishable from the sampling noise of this many turns."""
    refs = [c.reference for c in cases]
    rouge_b, rouge_a = np.array(rouge_l(before, refs)), np.array(rouge_l(after, refs))
    cb, ca = turn_counts(cases, before), turn_counts(cases, after)
    tail = (1 - level) / 2 * 100
    out: dict[str, Any] = {"resamples": resamples, "seed": seed, "level": level, "unit": "turn"}
    for g, name in enumerate(GROUPS):
        idx = np.array([i for i, c in enumerate(cases) if _in_group(c, name)], dtype=np.int64)
        if len(idx) == 0:
            continue
        # one resample matrix per group, shared by every metric (seeded per group: order-independent)
        draws = idx[np.random.default_rng([seed, g]).integers(0, len(idx), size=(resamples, len(idx)))]
        metrics: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {
            "slot_value_recall": (cb["found"], ca["found"], cb["values"]),
            "slot_value_recall_in_context": (
                cb["found_in_context"],
                ca["found_in_context"],
                cb["values_in_context"],
            ),
            "slot_value_recall_not_in_context": (
                cb["found_not_in_context"],
                ca["found_not_in_context"],
                cb["values_not_in_context"],
            ),
            "rouge_l": (rouge_b, rouge_a, None),
        }
        out[name] = {"turns": len(idx)}
        for metric, (b, a, total) in metrics.items():
            if total is None:  # mean over turns
                diff = float(a[idx].mean() - b[idx].mean())
                boot = a[draws].mean(axis=1) - b[draws].mean(axis=1)
            else:  # micro recall: mentioned / all values of the resampled turns
                if total[idx].sum() == 0:
                    continue
                diff = float((a[idx].sum() - b[idx].sum()) / total[idx].sum())
                with np.errstate(invalid="ignore", divide="ignore"):
                    boot = (a[draws].sum(axis=1) - b[draws].sum(axis=1)) / total[draws].sum(axis=1)
                boot = boot[np.isfinite(boot)]  # a resample without such values has no recall
            low, high = (float(x) for x in np.percentile(boot, [tail, 100 - tail]))
            out[name][metric] = {
                "diff": diff,
                "low": low,
                "high": high,
                "excludes_zero": bool(low > 0 or high < 0),
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
