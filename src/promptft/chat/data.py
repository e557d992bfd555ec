"""Conversations: the record shapes chat data comes in, readers for the shared dialogue sets, validation
with errors that name the file and line, and a seeded split that keeps each conversation whole.

Shapes read from JSONL (one record per line; `.json` holding a list works too):

* `{"messages": [{"role": "system"|"user"|"assistant"|"tool", "content": "..."}, ...]}` (OpenAI / TRL style;
  a `tool` message holds what a backend returned, e.g. API results the assistant's next turn reports; like
  system and user text it carries no loss)
* `{"prompt": "...", "completion": "..."}` -> loss on the completion only (raw text, no chat template)
* `{"instruction": "...", "input": "...", "output": "..."}` -> one user turn, one assistant turn

Readers for `../shared/data`: `read_sgd` (Schema-Guided Dialogue, USER -> user, SYSTEM -> assistant, with
each assistant turn's annotated slot values kept for the task metric, and optionally the service results the
system saw as a `tool` message before its turn), `read_dailydialog` and `read_self_instruct`.
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from promptft.errors import DataError

log = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant", "tool")
# Acts whose values a system turn states to the user (SGD's dialogue acts); REQUEST etc. carry none.
_STATED_ACTS = {"INFORM", "OFFER", "CONFIRM", "NOTIFY_SUCCESS", "INFORM_COUNT", "OFFER_INTENT"}


@dataclass
class Conversation:
    """One training or test conversation. `kind` is "chat" (messages through a chat template, loss on every
    assistant turn) or "completion" (raw prompt + completion text, loss on the completion only)."""

    messages: list[dict[str, str]]
    id: str = ""
    kind: str = "chat"
    source: str = ""  # "file:line" for error messages
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"messages": self.messages}
        if self.id:
            out["id"] = self.id
        return out


def _where(path: str | Path, line: int | None) -> str:
    return f"{path}:{line}" if line is not None else str(path)


def validate(conv: Conversation, *, require_assistant_last: bool = True) -> None:
    """DataError naming the file, line and turn for an unknown role, empty content, a missing or misplaced
    turn, or a conversation that does not end with the assistant."""
    where = conv.source or conv.id or "conversation"
    if not conv.messages:
        raise DataError(
            f"{where}: the conversation has no messages; give at least a user and an assistant turn"
        )
    validate_messages(conv.messages, where)
    if not any(m["role"] == "assistant" for m in conv.messages):
        raise DataError(f"{where}: the conversation has no assistant turn, so nothing would be learned")
    if require_assistant_last and conv.messages[-1]["role"] != "assistant":
        raise DataError(
            f"{where}: the conversation ends with a {conv.messages[-1]['role']} turn; it must end with the "
            "assistant (drop the trailing turn, or add the assistant's answer)"
        )


def validate_messages(messages: Sequence[Any], where: str) -> None:
    """DataError naming `where` and the turn for a message that is not a {role, content} object, an unknown
    role, empty content, or a system message after the first."""
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise DataError(
                f"{where}: message {i} must be an object with 'role' and 'content', got {str(message)[:80]!r}"
            )
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise DataError(f"{where}: message {i} has unknown role {role!r}; use one of {', '.join(ROLES)}")
        if not isinstance(content, str) or not content.strip():
            raise DataError(f"{where}: message {i} ({role}) has empty content; remove the turn or fill it in")
        if role == "system" and i != 0:
            raise DataError(f"{where}: message {i} is a system message; only the first message may be one")


def read_generation_requests(lines: Iterable[str], name: str) -> tuple[list[Any], list[list[dict[str, str]]]]:
    """`promptft generate`'s input: one JSON record per line, `{"messages": [...]}` (a last assistant turn
    is generated anew) or `{"prompt": "..."}`; returns the records and the conversations to answer.
    DataError naming `name`, the line and the turn for anything else."""
    records, conversations = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            record = json.loads(line)
        except ValueError:
            raise DataError(f"{where}: not valid JSON") from None
        if isinstance(record, dict) and isinstance(record.get("messages"), list):
            messages = record["messages"]
        elif isinstance(record, dict) and isinstance(record.get("prompt"), str):
            messages = [{"role": "user", "content": record["prompt"]}]
        else:
            raise DataError(f"{where}: expected {{'messages': [...]}} or {{'prompt': '...'}} on each line")
        validate_messages(messages, where)
        if messages and messages[-1]["role"] == "assistant":
            messages = messages[:-1]  # generate that turn anew
        if not messages or any(m["role"] not in ("system", "user", "assistant") for m in messages):
            raise DataError(f"{where}: messages need roles system, user or assistant")
        records.append(record)
        conversations.append(messages)
    if not records:
        raise DataError(f"{name}: no records")
    return records, conversations


def record_to_conversation(record: Any, path: str | Path, line: int | None) -> Conversation:
    """One JSON record in any of the supported shapes."""
    where = _where(path, line)
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    rid = str(record.get("id", record.get("conversation_id", record.get("dialogue_id", ""))) or "")
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list):
            raise DataError(f"{where}: 'messages' must be a list of {{'role', 'content'}} objects")
        return Conversation(list(messages), id=rid, source=where)
    if "prompt" in record and "completion" in record:
        prompt, completion = record["prompt"], record["completion"]
        if isinstance(prompt, list) and isinstance(completion, list):  # conversational prompt/completion
            return Conversation(prompt + completion, id=rid, source=where)
        return Conversation(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}],
            id=rid,
            kind="completion",
            source=where,
        )
    if "instruction" in record and "output" in record:
        text = record["instruction"]
        extra = record.get("input") or ""
        if isinstance(extra, str) and extra.strip():
            text = f"{text}\n\n{extra}"
        return Conversation(
            [{"role": "user", "content": text}, {"role": "assistant", "content": record["output"]}],
            id=rid,
            source=where,
        )
    raise DataError(
        f"{where}: unknown record shape (keys {sorted(record)[:6]}); use {{'messages': [...]}}, "
        "{'prompt', 'completion'} or {'instruction', 'input', 'output'}"
    )


def read_conversations(
    path: str | Path, *, validate_records: bool = True, sgd_service_results: int = 0
) -> list[Conversation]:
    """A JSONL (or JSON list) file of conversations, validated; errors name the file and line. A folder
    or file in one of the shared data sets' own formats (SGD, DailyDialog) is read by its reader
    (`sgd_service_results`: see `read_sgd`). A Hugging Face dataset (`hf:NAME:SPLIT`, or a folder written
    by `save_to_disk`) gives one record per row, e.g. a `messages` column of {role, content} lists."""
    from promptft.data.sources import dataset_source, names_dataset

    if names_dataset(path):
        name = str(path)
        rows = enumerate(dataset_source(path))
        convs = [record_to_conversation(row, f"{name} row {i}", None) for i, row in rows]
        return _finish(convs, name, Path(name).name.replace(":", "-"), validate_records)
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such data file: {path}")
    if path.is_dir() and any(path.glob("dialogues_*.json")):
        return read_sgd(path, service_results=sgd_service_results)
    if path.name.startswith("dialogues_") and path.suffix == ".txt" or path.suffix == ".zip":
        return read_dailydialog(path)
    convs: list[Conversation] = []
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise DataError(f"{path}: not valid JSON ({exc}); use one JSON list, or JSONL") from None
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of conversations")
        convs = [record_to_conversation(r, path, None) for r in data]
        for i, conv in enumerate(convs):
            conv.source = f"{path}[{i}]"
    else:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise DataError(f"{path}:{number}: not valid JSON ({exc.args[0][:80]})") from None
                convs.append(record_to_conversation(record, path, number))
    return _finish(convs, str(path), path.stem, validate_records)


def _finish(convs: list[Conversation], name: str, stem: str, validate_records: bool) -> list[Conversation]:
    for i, conv in enumerate(convs):
        conv.id = conv.id or f"{stem}-{i}"
        if validate_records:
            validate(conv)
    if not convs:
        raise DataError(f"{name} holds no conversations")
    return convs


def write_conversations(path: str | Path, convs: Iterable[Conversation]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for conv in convs:
            f.write(json.dumps(conv.to_dict(), ensure_ascii=False) + "\n")


# ----- the shared data sets -----
def sgd_turn_values(turn: dict[str, Any]) -> list[str]:
    """The slot values a SYSTEM turn's annotated actions state (deduplicated, in order)."""
    values: list[str] = []
    for frame in turn.get("frames", []):
        for action in frame.get("actions", []):
            if action.get("act") not in _STATED_ACTS:
                continue
            for value in action.get("values", []):
                if value and value not in values:
                    values.append(value)
    return values


def sgd_turn_results(turn: dict[str, Any]) -> list[str]:
    """The values in a SYSTEM turn's `service_results` (the API rows the system saw before it spoke;
    deduplicated, in order). They are not in the utterances, so a model trained on the text never sees them."""
    values: list[str] = []
    for frame in turn.get("frames", []):
        for row in frame.get("service_results") or []:
            for value in row.values():
                if isinstance(value, str) and value and value not in values:
                    values.append(value)
    return values


def sgd_results_message(turn: dict[str, Any], rows: int) -> str | None:
    """A SYSTEM turn's service calls and (the first `rows` of) their results as one `tool` message, e.g.
    "FindRestaurants: 10 results\n1. restaurant_name: Sakoon; city: Mountain View; ...", or None when the
    system called no service before this turn."""
    parts = []
    for frame in turn.get("frames", []):
        call = frame.get("service_call")
        if not call:
            continue
        results = frame.get("service_results") or []
        n = len(results)
        lines = [f"{call.get('method', frame.get('service', 'service'))}: {n} result{'s' if n != 1 else ''}"]
        for j, row in enumerate(results[:rows], 1):
            lines.append(f"{j}. " + "; ".join(f"{k}: {v}" for k, v in row.items() if v not in (None, "")))
        parts.append("\n".join(lines))
    return "\n".join(parts) or None


def read_sgd(
    folder: str | Path, files: Sequence[str] | None = None, *, service_results: int = 0
) -> list[Conversation]:
    """SGD dialogues (`dialogues_*.json` in `folder`): USER -> user, SYSTEM -> assistant. Each
    conversation's `meta` holds its `services` and, per assistant turn (in order), the annotated slot values
    in `meta["values"]` and the values of the service results the system saw at that turn in
    `meta["results"]`.

    `service_results` > 0: before each assistant turn for which the system called a service, a `tool`
    message gives the call's name, how many results it returned and the first `service_results` rows (what
    a deployed assistant would get from its backend). Without it (0, the default) the text holds only the
    utterances, so most values an assistant turn states (prices, times, addresses) cannot be known."""
    if service_results < 0:
        raise DataError(f"service_results must be 0 (none) or more rows, got {service_results}")
    folder = Path(folder)
    paths = [folder / f for f in files] if files else sorted(folder.glob("dialogues_*.json"))
    if not paths:
        raise DataError(f"{folder} holds no SGD dialogues_*.json files")
    convs = []
    for path in paths:
        for i, dialogue in enumerate(json.loads(path.read_text())):
            messages, values, results = [], [], []
            for turn in dialogue["turns"]:
                role = {"USER": "user", "SYSTEM": "assistant"}.get(turn["speaker"])
                if role is None:
                    raise DataError(f"{path}[{i}]: unknown SGD speaker {turn['speaker']!r}")
                if role == "assistant" and service_results:
                    tool = sgd_results_message(turn, service_results)
                    if tool:
                        messages.append({"role": "tool", "content": tool})
                messages.append({"role": role, "content": turn["utterance"]})
                if role == "assistant":
                    values.append(sgd_turn_values(turn))
                    results.append(sgd_turn_results(turn))
            convs.append(
                Conversation(
                    messages,
                    id=f"{folder.name}/{dialogue['dialogue_id']}",
                    source=f"{path}[{i}]",
                    meta={"services": list(dialogue["services"]), "values": values, "results": results},
                )
            )
    kept = []
    for conv in convs:
        try:
            validate(conv)
        except DataError as err:  # the published files hold a few empty utterances
            log.debug("skipped SGD dialogue: %s", err)
            continue
        kept.append(conv)
    if len(kept) < len(convs):
        log.warning(
            "%s: %d of %d dialogues skipped (invalid turns, e.g. an empty utterance)",
            folder,
            len(convs) - len(kept),
            len(convs),
        )
    return kept


def sgd_services(folder: str | Path) -> set[str]:
    """Service names in a split's schema.json (the services a model trained on that split has seen)."""
    return {entry["service_name"] for entry in json.loads((Path(folder) / "schema.json").read_text())}


def read_dailydialog(path: str | Path) -> list[Conversation]:
    """DailyDialog lines (`dialogues_<split>.txt`, or the release's train.zip): utterances alternate
    user / assistant; a dialogue with an odd number of utterances drops its final user turn (counted)."""
    path = Path(path)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as z:
            name = next(n for n in z.namelist() if Path(n).name.startswith("dialogues_") and "act" not in n)
            text = z.read(name).decode("utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    convs, trimmed = [], 0
    for number, line in enumerate(text.splitlines(), 1):
        parts = [p.strip() for p in line.split("__eou__")][:-1]
        parts = [p for p in parts if p]
        if len(parts) % 2:
            parts = parts[:-1]
            trimmed += 1
        if len(parts) < 2:
            continue
        messages = [{"role": ROLES[1 + i % 2], "content": p} for i, p in enumerate(parts)]
        convs.append(Conversation(messages, id=f"{path.stem}-{number}", source=f"{path}:{number}"))
    if trimmed:
        log.info("%s: %d dialogue(s) ended on a user turn, which was dropped", path, trimmed)
    return convs


def read_self_instruct(path: str | Path) -> list[Conversation]:
    """Self-Instruct task files: one conversation per instance (instruction + input -> output)."""
    path = Path(path)
    convs = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            task = json.loads(line)
            for j, instance in enumerate(task.get("instances", [])):
                record = {
                    "instruction": task["instruction"],
                    **instance,
                    "id": f"{task.get('id', number)}-{j}",
                }
                if not str(record.get("output", "")).strip():
                    continue
                conv = record_to_conversation(record, path, number)
                conv.meta["group"] = str(task.get("id", number))  # instances of one task stay together
                convs.append(conv)
    return convs


# ----- splitting -----
def split_conversations(
    convs: Sequence[Conversation], dev: float = 0.1, test: float = 0.0, seed: int = 42
) -> tuple[list[Conversation], list[Conversation], list[Conversation]]:
    """Seeded train/dev/test split by conversation: records sharing a conversation id (or a `meta["group"]`)
    always land in the same split, so no conversation's turns are seen in training and scored in test."""
    if not 0 <= dev < 1 or not 0 <= test < 1 or dev + test >= 1:
        raise DataError(f"split fractions dev={dev}, test={test} must be >= 0 and add up to less than 1")
    groups: dict[str, list[int]] = {}
    for i, conv in enumerate(convs):
        key = str(conv.meta.get("group") or conv.id or i)
        groups.setdefault(key, []).append(i)
    keys = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    n_test = round(test * len(keys))
    n_dev = round(dev * len(keys))
    if dev > 0 and n_dev == 0 and len(keys) > 1:
        n_dev = 1
    parts: list[list[Conversation]] = [[], [], []]
    for rank, k in enumerate(order):
        split = 2 if rank < n_test else 1 if rank < n_test + n_dev else 0
        parts[split].extend(convs[i] for i in groups[keys[k]])
    return parts[0], parts[1], parts[2]
