"""Verbalizers: each label maps to one or more label words.

A label word may be several tokens; it is scored as the sum (or mean) of its token log-probabilities,
never truncated. A label with several words scores log(sum of the words' probabilities), or their mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from promptft.errors import VerbalizerError

TOKEN_REDUCTIONS = ("sum", "mean")
WORD_REDUCTIONS = ("logsumexp", "mean")


@dataclass(frozen=True)
class TokenizedWords:
    """Label words as token ids: `word_ids[j]` belongs to label index `word_label[j]`."""

    word_ids: tuple[tuple[int, ...], ...]
    word_label: tuple[int, ...]

    @property
    def max_tokens(self) -> int:
        return max(len(w) for w in self.word_ids)


@dataclass(frozen=True)
class Verbalizer:
    label_words: dict[str, tuple[str, ...]]
    token_reduction: str = "sum"
    word_reduction: str = "logsumexp"

    def __init__(
        self,
        label_words: Mapping[str, str | Sequence[str]],
        token_reduction: str = "sum",
        word_reduction: str = "logsumexp",
    ) -> None:
        if not label_words:
            raise VerbalizerError(
                'no label words given: map each label to a word, e.g. {"0": "terrible", "1": "great"}'
            )
        words: dict[str, tuple[str, ...]] = {}
        owner: dict[str, str] = {}
        for label, value in label_words.items():
            items = (value,) if isinstance(value, str) else tuple(value)
            items = tuple(w.strip() for w in items if isinstance(w, str))
            if not items or any(not w for w in items):
                raise VerbalizerError(
                    f"label {label!r} has no label word (or an empty one): give at least one, "
                    f'e.g. {{"{label}": "great"}}'
                )
            for w in items:
                key = w.lower()
                if key in owner and owner[key] != str(label):
                    raise VerbalizerError(
                        f"label word {w!r} is used by both {owner[key]!r} and {label!r}: "
                        "each word must name exactly one label"
                    )
                owner[key] = str(label)
            words[str(label)] = items
        if token_reduction not in TOKEN_REDUCTIONS:
            raise VerbalizerError(
                f"token_reduction must be one of {TOKEN_REDUCTIONS}, got {token_reduction!r}"
            )
        if word_reduction not in WORD_REDUCTIONS:
            raise VerbalizerError(f"word_reduction must be one of {WORD_REDUCTIONS}, got {word_reduction!r}")
        object.__setattr__(self, "label_words", words)
        object.__setattr__(self, "token_reduction", token_reduction)
        object.__setattr__(self, "word_reduction", word_reduction)

    @property
    def labels(self) -> list[str]:
        return list(self.label_words)

    def check_labels(self, labels: Sequence[str]) -> None:
        """Raise if the data has labels without label words."""
        unknown = sorted(set(labels) - set(self.label_words))
        if unknown:
            raise VerbalizerError(
                f"data has label(s) {unknown} with no label word; verbalizer covers {self.labels}: "
                "add words for them or fix the label map"
            )

    def tokenize(self, tokenizer, leading_space: bool) -> TokenizedWords:
        """Token ids of every word as it appears in the slot (with its leading space if the slot has one)."""
        word_ids: list[tuple[int, ...]] = []
        word_label: list[int] = []
        for index, words in enumerate(self.label_words.values()):
            for word in words:
                ids = tokenize_word(tokenizer, word, leading_space)
                word_ids.append(ids)
                word_label.append(index)
        return TokenizedWords(tuple(word_ids), tuple(word_label))

    def to_dict(self) -> dict:
        return {
            "label_words": {k: list(v) for k, v in self.label_words.items()},
            "token_reduction": self.token_reduction,
            "word_reduction": self.word_reduction,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Verbalizer:
        return cls(
            data["label_words"], data.get("token_reduction", "sum"), data.get("word_reduction", "logsumexp")
        )


def tokenize_word(tokenizer, word: str, leading_space: bool) -> tuple[int, ...]:
    """Ids of `word` as it would be tokenized inside running text.

    Tokenizing `" great"` alone goes wrong for sentencepiece tokenizers that add a dummy prefix, so the
    word is tokenized after a fixed context and the context's ids are removed.
    """
    if leading_space:
        base = tokenizer("a", add_special_tokens=False)["input_ids"]
        full = tokenizer("a " + word, add_special_tokens=False)["input_ids"]
        if full[: len(base)] == base and len(full) > len(base):
            ids = tuple(full[len(base) :])
        else:
            ids = tuple(tokenizer(" " + word, add_special_tokens=False)["input_ids"])
    else:
        ids = tuple(tokenizer(word, add_special_tokens=False)["input_ids"])
    unk = getattr(tokenizer, "unk_token_id", None)
    decoded = tokenizer.decode(list(ids)).strip() if ids else ""
    if not ids or (unk is not None and unk in ids) or _normalise(decoded) != _normalise(word):
        raise VerbalizerError(
            f"label word {word!r} cannot be represented by this model's tokenizer "
            f"(it becomes {tokenizer.convert_ids_to_tokens(list(ids))}, decoding to {decoded!r}); "
            "choose a word in the model's vocabulary"
        )
    return ids


def _normalise(text: str) -> str:
    # WordPiece tokenizers lowercase and may split punctuation with spaces; compare loosely on those only.
    return "".join(text.lower().split())
