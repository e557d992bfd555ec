"""Demonstrations in context (LM-BFF, Gao et al. 2021, section 6): one training example per class, its label
word filled in, concatenated with each input, for training and inference.

    Review: a gripping, moving film\\nSentiment: positive\\n\\nReview: dull and long\\nSentiment: negative
    \\n\\nReview: <the input>\\nSentiment: <slot>

* **Selection** (`DemonstrationPool`): `random` draws one example of each class uniformly; `similar` ranks
  each class's examples by the cosine similarity of their sentence embeddings (the offline MiniLM encoder)
  to the input and draws from the most similar `top_fraction` (LM-BFF: the top 50%). Draws are seeded by
  the input's text, so a saved classifier predicts an input the same way every time, in any batch.
* **Training** sees one demonstration set per example (never the example itself); **inference** averages
  the label probabilities over `n_sets` sets.
* **Truncation** (`DemonstrationEncoder`): the prompt is the template repeated once per demonstration, its
  slot replaced by the demonstration's label word, plus the input's own template. Label words and template
  text are literals and are never cut. When the whole is too long the input's text is cut first, down to a
  fair share of the budget (`max_length / (n_demonstrations + 1)`); then the demonstrations' texts (the
  longest first); only then the input below its share. The input's slot is never cut.

Demonstrations come before the input for causal LMs (the slot must end the prompt) and after it for masked
and seq2seq models (LM-BFF's order).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from promptft.data import Example
from promptft.errors import ConfigError, DataError
from promptft.prompts.encoding import EncodedPrompt, PromptEncoder
from promptft.prompts.template import Template

SELECTIONS = ("random", "similar")
DEMO_PREFIX = "demo"

Embed = Callable[[list[str]], Any]  # texts -> array [n, dim] (normalised or not)


@dataclass(frozen=True)
class DemonstrationSettings:
    """How demonstrations are chosen and used (saved with a classifier)."""

    selection: Literal["random", "similar"] = "random"
    """random: one example per class drawn uniformly; similar: drawn from each class's most similar
    `top_fraction` by sentence-embedding cosine (LM-BFF)."""
    n_sets: int = 4
    """Demonstration sets averaged at inference (training uses one per example)."""
    top_fraction: float = 0.5
    """similar: the share of each class's examples (most similar first) a demonstration is drawn from."""
    encoder: str = "minilm-l6"
    """similar: the sentence encoder (offline alias, local folder)."""
    separator: str | None = None
    """Text between demonstrations and the input; None: a blank line for causal LMs, a space otherwise."""
    seed: int = 0
    """Seed of the draws (combined with each input's text)."""

    def __post_init__(self) -> None:
        problems = []
        if self.selection not in SELECTIONS:
            problems.append(f"selection must be one of {SELECTIONS}, got {self.selection!r}")
        if self.n_sets < 1:
            problems.append(f"n_sets must be >= 1, got {self.n_sets}")
        if not 0 < self.top_fraction <= 1:
            problems.append(f"top_fraction must be in (0, 1], got {self.top_fraction}")
        if problems:
            raise ConfigError("demonstrations: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DemoPrompts:
    """One input encoded with each of its demonstration sets."""

    prompts: tuple[EncodedPrompt, ...]

    @property
    def input_ids(self) -> tuple[int, ...]:  # for length-based batching: the longest
        return max((p.input_ids for p in self.prompts), key=len)

    @property
    def truncated(self) -> bool:
        return any(p.truncated for p in self.prompts)


def example_text(example: Example, fields: Sequence[str]) -> str:
    return " ".join(str(example.fields.get(f, "")) for f in fields)


class DemonstrationPool:
    """The labelled examples demonstrations are drawn from (the training set), one per label per set.

    `embed(texts) -> [n, dim]`: the sentence encoder for `similar` selection (called lazily: `random`
    never needs it)."""

    def __init__(
        self,
        examples: Sequence[Example],
        labels: Sequence[str],
        fields: Sequence[str],
        settings: DemonstrationSettings,
        embed: Embed | None = None,
    ) -> None:
        self.examples = list(examples)
        self.labels = list(labels)
        self.fields = tuple(fields)
        self.settings = settings
        self.embed = embed
        self.by_label: dict[str, list[int]] = {label: [] for label in self.labels}
        for i, ex in enumerate(self.examples):
            if ex.label not in self.by_label:
                raise DataError(
                    f"a demonstration example has label {ex.label!r}, which the classifier does not know "
                    f"({self.labels}): fix the training data's labels"
                )
            self.by_label[ex.label].append(i)  # type: ignore[index]
        empty = [label for label, idx in self.by_label.items() if not idx]
        if empty:
            raise DataError(
                f"demonstrations need at least one training example of every label; none for {empty}: "
                "add examples of those labels, or turn demonstrations off"
            )
        self._pool_vectors = None

    def _vectors(self, texts: list[str]):
        import numpy as np

        if self.embed is None:
            raise ConfigError("similar demonstrations need a sentence encoder: pass embed=...")
        out = np.asarray(self.embed(texts), dtype=np.float64)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def choose(
        self, queries: Sequence[Example], n_sets: int, *, training: bool = False
    ) -> list[list[list[int]]]:
        """For each query, `n_sets` lists of pool indices, one per label (in label order).

        The query itself (same fields) is never its own demonstration, unless it is its label's only
        example. `training`: the draw is salted differently from inference's."""
        sims = None
        if self.settings.selection == "similar":
            if self._pool_vectors is None:
                self._pool_vectors = self._vectors([example_text(e, self.fields) for e in self.examples])
            sims = self._vectors([example_text(q, self.fields) for q in queries]) @ self._pool_vectors.T
        out = []
        for qi, query in enumerate(queries):
            key = repr(sorted((f, str(v)) for f, v in query.fields.items()))
            rng = random.Random(f"{self.settings.seed}|{'train' if training else 'infer'}|{key}")
            candidates = []
            for label in self.labels:
                idx = [i for i in self.by_label[label] if self.examples[i].fields != query.fields]
                idx = idx or self.by_label[label]
                if sims is not None:
                    idx = sorted(idx, key=lambda i, row=sims[qi]: (-row[i], i))
                    idx = idx[: max(1, math.ceil(self.settings.top_fraction * len(idx)))]
                candidates.append(idx)
            out.append([[rng.choice(idx) for idx in candidates] for _ in range(n_sets)])
        return out

    def to_dict(self) -> list[dict[str, Any]]:
        return [{"fields": dict(e.fields), "label": e.label} for e in self.examples]


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


class DemonstrationEncoder(PromptEncoder):
    """Encodes an input with one demonstration per label (see the module's notes on truncation).

    `demo_words`: the label word written into each demonstration's slot, in label order."""

    def __init__(
        self,
        tokenizer,
        template: Template,
        demo_words: Sequence[str],
        *,
        slot_text: str | None,
        max_length: int,
        reserve: int = 0,
        separator: str | None = None,
    ) -> None:
        self.input_template = template
        self.demo_words = list(demo_words)
        causal = slot_text is None
        sep = separator if separator is not None else ("\n\n" if causal else " ")
        demos = [self._demo_text(template, i, word) for i, word in enumerate(self.demo_words)]
        main = template.text
        parts = [*demos, main] if causal else [main, *demos]
        # The input's template text is already escaped (it is a template); literal separators are escaped.
        composite = _escape(sep).join(parts)
        super().__init__(
            tokenizer, Template(composite), slot_text=slot_text, max_length=max_length, reserve=reserve
        )
        self.input_fields = template.fields
        self.n_demos = len(self.demo_words)

    @staticmethod
    def field_name(index: int, name: str) -> str:
        return f"{DEMO_PREFIX}{index}__{name}"

    def _demo_text(self, template: Template, index: int, word: str) -> str:
        out = []
        for seg in template.segments:
            if seg.kind == "literal":
                out.append(_escape(seg.value))
            elif seg.kind == "field":
                out.append("{" + self.field_name(index, seg.value) + "}")
            else:
                out.append(_escape(word))
        return "".join(out)

    def encode_with(self, fields: dict[str, str], demos: Sequence[Example]) -> EncodedPrompt:
        """The input's fields with these demonstrations (one per label, in label order)."""
        values = {name: str(fields[name]) for name in self.input_fields}
        for i, demo in enumerate(demos):
            for name in self.input_fields:
                values[self.field_name(i, name)] = str(demo.fields.get(name, ""))
        return self.encode(values)

    def _pick_cut(self, spans: dict[str, tuple[int, int]], excess: int) -> tuple[str, int] | None:
        def length(name: str) -> int:
            return spans[name][1] - spans[name][0]

        inputs = [n for n in spans if n in self.input_fields]
        demos = [n for n in spans if n not in self.input_fields]
        share = max(1, (self.max_length - self.reserve) // (self.n_demos + 1) // max(len(inputs), 1))
        over = [n for n in inputs if length(n) > share]
        if over:  # 1. the input's text, down to its fair share
            name = max(over, key=length)
            return name, min(excess, length(name) - share)
        left = [n for n in demos if length(n) > 0]
        if left:  # 2. the demonstrations' texts (never their label words), longest first
            return max(left, key=length), excess
        left = [n for n in inputs if length(n) > 0]
        if left:  # 3. the input below its share
            return max(left, key=length), excess
        return None
