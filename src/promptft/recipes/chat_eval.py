"""Evaluate a chat model (base or a run) on test conversations: assistant-token perplexity and, for SGD
dialogues, the next-turn task metrics (slot-value recall seen/unseen, ROUGE-L) on a seeded sample of turns.

    from promptft.recipes.chat_eval import chat_evaluate
    report = chat_evaluate("runs/chat", "../shared/data/sgd/test", seen_from="../shared/data/sgd/train")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from promptft.chat.data import Conversation, read_conversations
from promptft.chat.evaluate import TurnCase, evaluate_turns, last_turn_cases, perplexity, sgd_turn_cases
from promptft.chat.generate import GenerationSettings
from promptft.chat.model import ChatModel
from promptft.errors import DataError


def sample(convs: list[Conversation], n: int | None, seed: int) -> list[Conversation]:
    if n is None or n >= len(convs):
        return convs
    return [convs[int(i)] for i in sorted(np.random.default_rng(seed).permutation(len(convs))[:n])]


def seen_services(train: str | Path | list[Conversation]) -> set[str]:
    """Services of the training dialogues (an SGD folder or the conversations a model was trained on)."""
    convs = read_conversations(train) if isinstance(train, str | Path) else train
    return {s for c in convs for s in c.meta.get("services", [])}


def trained_service_results(model: str | Path) -> int:
    """The `data.sgd_service_results` a chat-train run folder was trained with (0 for anything else), so
    that its evaluation reads SGD the way it was trained."""
    record = Path(model) / "run.json"
    if not record.is_file():
        return 0
    try:
        job = json.loads(record.read_text()).get("job") or {}
    except ValueError:
        return 0
    return int((job.get("data") or {}).get("sgd_service_results") or 0)


def chat_evaluate(
    model: str | ChatModel,
    test: str | Path | list[Conversation],
    *,
    seen: set[str] | None = None,
    seen_from: str | Path | None = None,
    ppl_conversations: int | None = None,
    turns_per_group: int = 0,
    settings: GenerationSettings | None = None,
    max_length: int = 1024,
    batch_size: int = 8,
    seed: int = 0,
    cases: list[TurnCase] | None = None,
    sgd_service_results: int = 0,
) -> dict[str, Any]:
    """Perplexity on (a seeded sample of) the test conversations; with `turns_per_group` > 0 the
    generated-turn metrics too (SGD: slot-value recall and ROUGE-L for seen and unseen services; other data:
    ROUGE-L of the last assistant turn). Returns the metrics, the turn cases and the generations.
    `sgd_service_results`: an SGD folder is read with this many result rows as tool messages (`read_sgd`);
    use what the model was trained with."""
    if seen_from is not None and not Path(seen_from).exists():
        raise DataError(
            f"seen_from {seen_from} not found: give the SGD training folder the model was trained on"
        )
    chat = model if isinstance(model, ChatModel) else ChatModel.from_pretrained(model)
    convs = (
        read_conversations(test, sgd_service_results=sgd_service_results)
        if isinstance(test, str | Path)
        else list(test)
    )
    report: dict[str, Any] = {
        "perplexity": perplexity(chat, sample(convs, ppl_conversations, seed), max_length, batch_size)
    }
    if cases is None and turns_per_group > 0:
        if any("values" in c.meta for c in convs):  # SGD: turns that state slot values, seen and unseen
            if seen is None:
                seen = seen_services(seen_from) if seen_from else set()
            cases = sgd_turn_cases(convs, seen, turns_per_group, seed)
        else:  # any other data: the last assistant turn of a sample of conversations
            cases = last_turn_cases(convs, turns_per_group, seed)
    if cases:
        settings = settings or GenerationSettings(max_new_tokens=48)
        metrics, generated = evaluate_turns(chat, cases, settings, batch_size)
        report["turns"] = metrics
        report["generation"] = settings.to_dict()
        report["cases"] = cases
        report["generated"] = generated
    return report


def compare_with_base(
    run: str | Path,
    test: str | Path | list[Conversation],
    *,
    title: str = "",
    n_samples: int = 12,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate a run's base model and the run on the same test sample; write `samples.md` (side-by-side
    generations on held-out turns) and `eval.json` into the run folder. Returns {"before", "after"} and,
    with generated turns, "change": each metric's after-minus-before difference with a 95% paired-bootstrap
    interval (`promptft.chat.evaluate.paired_bootstrap`)."""
    from promptft.chat.evaluate import samples_markdown
    from promptft.chat.model import saved_model_dir

    saved = saved_model_dir(run)
    if saved is None:
        from promptft.errors import RunDirError

        raise RunDirError(f"{run} holds no saved chat model (chat_model.json): give a chat-train run folder")
    tuned = ChatModel.from_pretrained(saved, merge=True)
    base = ChatModel.from_pretrained(
        tuned.base_model, template=tuned.format.template, system_prompt=tuned.format.system_prompt
    )
    after = chat_evaluate(tuned, test, **options)
    before = chat_evaluate(base, test, **{**options, "cases": after.get("cases")})
    folder = Path(run)
    if "cases" in after:
        text = samples_markdown(
            after["cases"],
            before["generated"],
            after["generated"],
            title or f"{run}: before and after",
            n_samples,
        )
        (folder / "samples.md").write_text(text)
    out: dict[str, Any] = {"before": before, "after": after}
    if "cases" in after:  # is each change larger than the sampling noise of these turns?
        from promptft.chat.evaluate import paired_bootstrap

        out["change"] = paired_bootstrap(after["cases"], before["generated"], after["generated"])
    strip = lambda r: {k: v for k, v in r.items() if k not in ("cases", "generated")}  # noqa: E731
    import json

    (folder / "eval.json").write_text(json.dumps({k: strip(v) for k, v in out.items()}, indent=2))
    return out
