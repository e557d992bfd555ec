"""Automatic label-word search (LM-BFF, Gao et al. 2021, §5.1).

1. **Rank the vocabulary per class.** Put each training example of class c through the template and read
   the log-probability of every vocabulary token at the slot (`Backbone.slot_log_probs`: the output head
   applied at the slot only, a few examples at a time). LM-BFF's score of token v for class c is
   `sum over x in train_c of log P(slot = v | T(x))` (`rank="lmbff"`); `rank="contrast"` subtracts the
   token's mean score over the other classes (favours words that separate the classes over words that
   are merely likely everywhere, e.g. "the").
2. **Prune** to real words: a token is kept when it decodes to an alphabetic word of 2+ letters that the
   tokenizer turns back into exactly that one token in the slot (with its leading space when the template
   has one); the top `k` per class are kept.
3. **Search assignments** (one word per class, all different): every assignment of the pruned candidates
   is scored by zero-shot accuracy on the screening split (`screen="dev"` by default; LM-BFF screens on
   train) from one pass of the backbone over it (the words' scores are computed once, then every
   assignment is an argmax over them). Large spaces (more than `max_enumerate` assignments) are searched
   by beam search over the classes.
4. **Fine-tune the top few** (`finetune_top`, `finetune_steps`): a short LoRA prompt fine-tune each on the
   training split, re-ranked by dev accuracy (LM-BFF fine-tunes its top n and re-ranks on dev).

The result (`LabelWordSearch`) records the candidates, the ranked assignments and the winner; `write`
stores it as a label-words file (`label_words` at the top, readable by `promptft prompts eval
--label-words-file` and `read_label_words_file`).
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from promptft.data import Example
from promptft.errors import ConfigError, DataError, VerbalizerError
from promptft.prompts.template import Template
from promptft.prompts.verbalizer import TokenizedWords, tokenize_word
from promptft.search.prompt_eval import ModelSource, PromptCandidate, load_model, short_finetune

log = logging.getLogger(__name__)

RANKS = ("lmbff", "contrast")
SCREENS = ("dev", "train")


@dataclass
class WordCandidate:
    word: str
    token_id: int
    score: float  # the class's ranking score (see `rank`)


@dataclass
class Assignment:
    label_words: dict[str, str]
    screen_accuracy: float  # zero-shot accuracy on the screening split
    screen_margin: float  # mean log-prob margin of the gold word over the best other (tie-breaker)
    dev_accuracy: float | None = None  # zero-shot accuracy on dev (when dev is not the screening split)
    finetuned: dict[str, Any] | None = None  # dev numbers after a short fine-tune

    @property
    def rank_key(self) -> tuple[float, ...]:
        if self.finetuned is not None:
            return (1.0, self.finetuned["accuracy"], self.finetuned["macro_f1"], self.screen_accuracy)
        return (0.0, self.screen_accuracy, self.screen_margin, 0.0)


@dataclass
class LabelWordSearch:
    template: str
    model: str
    labels: list[str]
    candidates: dict[str, list[WordCandidate]]
    assignments: list[Assignment]  # best first
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def best(self) -> Assignment:
        return self.assignments[0]

    @property
    def label_words(self) -> dict[str, str]:
        return dict(self.best.label_words)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label_words": self.label_words,
            "template": self.template,
            "model": self.model,
            "labels": self.labels,
            "chosen_by": self.settings.get("chosen_by"),
            "best": asdict(self.best),
            "candidates": {k: [asdict(c) for c in v] for k, v in self.candidates.items()},
            "assignments": [asdict(a) for a in self.assignments],
            "settings": self.settings,
            "seconds": round(self.seconds, 2),
        }

    def write(self, path: str | Path) -> Path:
        """The label-words file (JSON, written to a temporary name and renamed)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(path)
        return path


def read_label_words_file(path: str | Path) -> dict[str, str | list[str]]:
    """Label words from a JSON file: a search result (its `label_words`) or a plain {label: word(s)}."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"label-words file not found: {path}; write one with `promptft prompts search-words`"
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(
            f'{path} is not valid JSON ({err.msg}); expected {{"label": "word", ...}}'
        ) from None
    words = data.get("label_words", data) if isinstance(data, dict) else None
    if (
        not isinstance(words, dict)
        or not words
        or not all(
            isinstance(v, str) or (isinstance(v, list) and all(isinstance(w, str) for w in v))
            for v in words.values()
        )
    ):
        raise ConfigError(
            f'{path} holds no label words: expected {{"negative": "terrible", "positive": "great"}} '
            "or a file written by `promptft prompts search-words`"
        )
    return {str(k): v for k, v in words.items()}


# ---------------------------------------------------------------------------------------------------------
# 1-2: vocabulary ranking and pruning


def class_vocabulary_scores(
    backbone,
    template: Template,
    examples: Sequence[Example],
    labels: Sequence[str],
    *,
    chunk: int = 8,
    max_length: int = 256,
) -> np.ndarray:
    """`[n_labels, vocab]`: per class, the sum over its examples of log P(slot = token)."""
    import torch

    encoder = backbone.make_encoder(template, max_length)
    index = {label: i for i, label in enumerate(labels)}
    sums: np.ndarray | None = None
    order = [ex for ex in examples if ex.label in index]
    was = backbone.training
    backbone.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), chunk):
                batch = order[start : start + chunk]
                logprobs = backbone.slot_log_probs([encoder.encode(ex.fields) for ex in batch]).float().cpu()
                if sums is None:
                    sums = np.zeros((len(labels), logprobs.shape[1]), dtype=np.float64)
                for ex, row in zip(batch, logprobs.numpy(), strict=True):
                    sums[index[ex.label]] += row
    finally:
        backbone.train(was)
    if sums is None:
        raise DataError("no training example carries one of the labels: check the label column and label map")
    return sums


def is_clean_word(tokenizer, token_id: int, leading_space: bool, special: set[int]) -> str | None:
    """The word a vocabulary token stands for in the slot, or None when it is not a clean word: special,
    not alphabetic, a single letter, or not re-tokenized to exactly this one token."""
    if token_id in special:
        return None
    word = tokenizer.decode([token_id]).strip()
    if len(word) < 2 or not word.isalpha():
        return None
    try:
        ids = tokenize_word(tokenizer, word, leading_space)
    except VerbalizerError:
        return None
    return word if ids == (token_id,) else None


def prune_candidates(
    scores: np.ndarray,
    labels: Sequence[str],
    tokenizer,
    leading_space: bool,
    *,
    k: int,
    rank: str = "lmbff",
    counts: Sequence[int] | None = None,
    exclude: set[str] = frozenset(),
) -> dict[str, list[WordCandidate]]:
    """The top `k` clean words per class by `rank` (see the module's docstring)."""
    if rank not in RANKS:
        raise ConfigError(f"unknown rank {rank!r}: use one of {', '.join(RANKS)}")
    vocab = scores.shape[1]
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    per = scores / np.maximum(np.asarray(counts or [1] * len(labels), dtype=np.float64), 1)[:, None]
    if rank == "contrast" and len(labels) > 1:
        total = per.sum(0, keepdims=True)
        ranking = per - (total - per) / (len(labels) - 1)
    else:
        ranking = scores
    clean: dict[int, str | None] = {}
    out: dict[str, list[WordCandidate]] = {}
    for c, label in enumerate(labels):
        picked: list[WordCandidate] = []
        seen: set[str] = set()
        for token_id in np.argsort(-ranking[c], kind="stable"):
            token_id = int(token_id)
            if token_id >= vocab:
                continue
            if token_id not in clean:
                clean[token_id] = is_clean_word(tokenizer, token_id, leading_space, special)
            word = clean[token_id]
            if word is None or word.lower() in seen or word.lower() in exclude:
                continue
            seen.add(word.lower())
            picked.append(WordCandidate(word, token_id, round(float(ranking[c, token_id]), 4)))
            if len(picked) == k:
                break
        if not picked:
            raise VerbalizerError(
                f"no clean single-token word found for label {label!r}: the vocabulary has no alphabetic "
                "tokens here; give the label words by hand"
            )
        out[label] = picked
    return out


# ---------------------------------------------------------------------------------------------------------
# 3: assignments


def word_scores(
    backbone,
    template: Template,
    examples: Sequence[Example],
    token_ids: Sequence[int],
    *,
    batch_size: int = 16,
    max_length: int = 256,
) -> np.ndarray:
    """`[n, n_words]` log P(slot = word) of single-token words, one backbone pass over `examples`."""
    import torch

    encoder = backbone.make_encoder(template, max_length)
    words = TokenizedWords(tuple((int(t),) for t in token_ids), tuple(range(len(token_ids))))
    rows = []
    was = backbone.training
    backbone.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(examples), batch_size):
                prompts = [encoder.encode(ex.fields) for ex in examples[start : start + batch_size]]
                rows.append(backbone(prompts, words).float().cpu().numpy())
    finally:
        backbone.train(was)
    return np.concatenate(rows)


def _evaluate(scores: np.ndarray, gold: np.ndarray, combos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and mean gold margin of each assignment (`combos` `[m, C]` column indices into `scores`)."""
    gathered = scores[:, combos]  # [n, m, C]
    pred = gathered.argmax(-1)
    accuracy = (pred == gold[:, None]).mean(0)
    gold_score = np.take_along_axis(gathered, gold[:, None, None].repeat(combos.shape[0], 1), -1)[..., 0]
    others = gathered.copy()
    np.put_along_axis(others, gold[:, None, None].repeat(combos.shape[0], 1), -np.inf, -1)
    margin = (gold_score - others.max(-1)).mean(0)
    return accuracy, margin


def search_assignments(
    scores: np.ndarray,
    gold: np.ndarray,
    options: Sequence[Sequence[int]],
    *,
    top_n: int = 10,
    max_enumerate: int = 200_000,
    beam: int = 64,
) -> list[tuple[tuple[int, ...], float, float]]:
    """The `top_n` assignments (a column of `scores` per class, all different) by accuracy, then margin.

    `options[c]` lists class c's candidate columns. Up to `max_enumerate` assignments are all scored;
    beyond that a beam search adds one class at a time, scoring partial assignments on the examples of the
    classes assigned so far."""
    sizes = [len(o) for o in options]
    total = int(np.prod(sizes, dtype=np.float64))
    n_classes = len(options)
    if total <= max_enumerate:
        pool = [combo for combo in itertools.product(*options) if len(set(combo)) == n_classes]
    else:
        partial: list[tuple[int, ...]] = [()]
        for c in range(n_classes):
            grown = [p + (o,) for p in partial for o in options[c] if o not in p]
            if c == n_classes - 1 or len(grown) <= beam:
                partial = grown
                continue
            keep = gold <= c
            acc, margin = _evaluate(scores[keep], gold[keep], np.array(grown))
            order = np.lexsort((-margin, -acc))[:beam]
            partial = [grown[i] for i in order]
        pool = partial
    if not pool:
        raise VerbalizerError(
            "no assignment gives every label its own word (the candidates overlap completely): raise --k"
        )
    results: list[tuple[tuple[int, ...], float, float]] = []
    for start in range(0, len(pool), 4096):
        combos = np.array(pool[start : start + 4096])
        acc, margin = _evaluate(scores, gold, combos)
        results.extend(
            (tuple(int(x) for x in combo), float(a), float(m))
            for combo, a, m in zip(combos, acc, margin, strict=True)
        )
    results.sort(key=lambda r: (-r[1], -r[2]))
    return results[:top_n]


# ---------------------------------------------------------------------------------------------------------
# the whole search


def search_label_words(
    model: ModelSource,
    template: str,
    train: Sequence[Example],
    dev: Sequence[Example],
    *,
    labels: Sequence[str] | None = None,
    k: int = 10,
    top_n: int = 10,
    rank: str = "lmbff",
    screen: str = "dev",
    finetune_top: int = 0,
    finetune_steps: int = 30,
    learning_rate: float = 3e-4,
    seed: int = 42,
    kind: str | None = None,
    device: str | None = None,
    max_length: int = 256,
    chunk: int = 8,
    max_enumerate: int = 200_000,
    on_progress: Callable[[str], None] | None = None,
) -> LabelWordSearch:
    """LM-BFF's automatic label-word search for one template (see the module's docstring)."""
    start = time.perf_counter()
    if rank not in RANKS:
        raise ConfigError(f"unknown --rank {rank!r}: use one of {', '.join(RANKS)}")
    if screen not in SCREENS:
        raise ConfigError(f"unknown --screen {screen!r}: use one of {', '.join(SCREENS)}")
    if k < 1 or top_n < 1 or finetune_top < 0:
        raise ConfigError("--k and --top-n must be at least 1, --finetune-top at least 0")
    tmpl = Template(template)
    if not train:
        raise DataError("label-word search ranks words on training examples: the training data is empty")
    if not dev:
        raise DataError("label-word search picks words on dev examples: the dev data is empty")
    for what, examples in (("training", train), ("dev", dev)):
        if any(ex.label is None for ex in examples):
            raise DataError(f"some {what} examples have no label: the search needs labelled data")
        tmpl.check_fields(set(examples[0].fields))
    labels = list(labels) if labels else sorted({str(ex.label) for ex in train})
    unknown = sorted({str(ex.label) for ex in [*train, *dev]} - set(labels))
    if unknown:
        raise DataError(f"the data has label(s) {unknown} that are not among {labels}: fix the label map")
    if len(labels) < 2:
        raise DataError(f"label-word search needs at least two labels; the data has {labels}")

    backbone = load_model(model, kind=kind, device=device)
    name = model if isinstance(model, str) else backbone.name
    space = backbone.leading_space(tmpl)
    if on_progress:
        on_progress(f"ranking the vocabulary over {len(train)} training examples")
    sums = class_vocabulary_scores(backbone, tmpl, train, labels, chunk=chunk, max_length=max_length)
    counts = [sum(1 for ex in train if ex.label == label) for label in labels]
    candidates = prune_candidates(sums, labels, backbone.tokenizer, space, k=k, rank=rank, counts=counts)

    columns = sorted({c.token_id for cands in candidates.values() for c in cands})
    col = {t: i for i, t in enumerate(columns)}
    options = [[col[c.token_id] for c in candidates[label]] for label in labels]
    word_of = {c.token_id: c.word for cands in candidates.values() for c in cands}
    screen_examples = dev if screen == "dev" else train
    if on_progress:
        on_progress(f"scoring {len(columns)} candidate words on {len(screen_examples)} {screen} examples")
    screen_scores = word_scores(backbone, tmpl, screen_examples, columns, max_length=max_length)
    gold = np.array([labels.index(str(ex.label)) for ex in screen_examples])
    best = search_assignments(screen_scores, gold, options, top_n=top_n, max_enumerate=max_enumerate)
    dev_scores = None
    if screen != "dev":
        dev_scores = word_scores(backbone, tmpl, dev, columns, max_length=max_length)
        dev_gold = np.array([labels.index(str(ex.label)) for ex in dev])
    assignments = []
    for combo, acc, margin in best:
        words = {label: word_of[columns[i]] for label, i in zip(labels, combo, strict=True)}
        dev_acc = None
        if dev_scores is not None:
            dev_acc = float((dev_scores[:, list(combo)].argmax(1) == dev_gold).mean())
        assignments.append(Assignment(words, round(acc, 4), round(margin, 4), dev_acc))
    del backbone

    for i, a in enumerate(assignments[:finetune_top]):
        if on_progress:
            on_progress(
                f"fine-tuning assignment {i + 1}/{min(finetune_top, len(assignments))}: {a.label_words}"
            )
        _, numbers = short_finetune(
            model,
            PromptCandidate(template, a.label_words),
            train,
            dev,
            steps=finetune_steps,
            learning_rate=learning_rate,
            seed=seed,
            kind=kind,
            device=device,
            max_length=max_length,
        )
        a.finetuned = numbers
    assignments.sort(key=lambda a: a.rank_key, reverse=True)
    chosen_by = (
        f"dev accuracy after {finetune_steps} LoRA steps (top {finetune_top} of the zero-shot screen)"
        if finetune_top
        else f"zero-shot accuracy on {screen}, then the gold word's mean log-prob margin"
    )
    settings = {
        "k": k,
        "top_n": top_n,
        "rank": rank,
        "screen": screen,
        "finetune_top": finetune_top,
        "finetune_steps": finetune_steps if finetune_top else 0,
        "learning_rate": learning_rate if finetune_top else None,
        "seed": seed,
        "n_train": len(train),
        "n_dev": len(dev),
        "leading_space": space,
        "chosen_by": chosen_by,
    }
    return LabelWordSearch(
        template, name, labels, candidates, assignments, settings, time.perf_counter() - start
    )


__all__ = [
    "Assignment",
    "LabelWordSearch",
    "WordCandidate",
    "class_vocabulary_scores",
    "prune_candidates",
    "read_label_words_file",
    "search_assignments",
    "search_label_words",
]
