"""Flag values -> config values: `KEY=VALUE` lists, columns, label words (the shapes the flags take)."""

from __future__ import annotations

from collections.abc import Sequence

from promptft.errors import ConfigError


def parse_pairs(items: Sequence[str], what: str, example: str) -> dict[str, str]:
    """`["a=1,b=2", "c=3"]` -> `{"a": "1", "b": "2", "c": "3"}` (flags may repeat or hold comma lists)."""
    out: dict[str, str] = {}
    for item in items:
        for part in item.split(","):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise ConfigError(f"bad {what} {part.strip()!r}: write KEY=VALUE, e.g. {example}")
            key, value = key.strip(), value.strip()
            if out.get(key, value) != value:  # a typo such as 0=negative,0=positive; the last one won
                raise ConfigError(
                    f"{what} gives {key!r} twice ({key}={out[key]} and {key}={value}): give each key once"
                )
            out[key] = value
    return out


def parse_column(value: str) -> str | int:
    """A column given as text: digits are a 0-based index, anything else a column name."""
    value = value.strip()
    return int(value) if value.isdigit() else value


def parse_fields(items: Sequence[str]) -> dict[str, str | int]:
    """`["premise=sentence1", "hypothesis=2"]` -> `{"premise": "sentence1", "hypothesis": 2}`."""
    pairs = parse_pairs(items, "field", "--field text=sentence or --field premise=0")
    return {name: parse_column(col) for name, col in pairs.items()}


def parse_label_words(items: Sequence[str]) -> dict[str, str | list[str]]:
    """`["negative=terrible,positive=great|good"]` -> `{"negative": "terrible", "positive": ["great", "good"]}`."""
    pairs = parse_pairs(items, "label words", "negative=terrible,positive=great|good")
    out: dict[str, str | list[str]] = {}
    for label, value in pairs.items():
        words = [w.strip() for w in value.split("|") if w.strip()]
        if not words:
            raise ConfigError(
                f"label {label!r} has no label word: write e.g. {label}=great or {label}=great|good"
            )
        out[label] = words[0] if len(words) == 1 else words
    return out


def parse_range(text: str) -> list[float]:
    """`"0,5"` -> [0.0, 5.0] (the regression range flag)."""
    parts = [p.strip() for p in text.split(",")]
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"bad --value-range {text!r}: write LOW,HIGH, e.g. --value-range 0,5") from None
    return [low, high]
