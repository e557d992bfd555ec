"""What the classifiers accept as input: Examples, plain strings or dicts, turned into Examples."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from promptft.data.example import Example
from promptft.errors import DataError

Inputs = Sequence[Example] | Sequence[str] | Sequence[Mapping[str, str]]


def as_examples(inputs: Inputs | Example | str, fields: Sequence[str]) -> list[Example]:
    """Accept Examples, plain strings (for one-field templates) or dicts of field -> text."""
    if isinstance(inputs, str | Example | Mapping):
        inputs = [inputs]  # type: ignore[list-item]
    out: list[Example] = []
    for item in inputs:  # type: ignore[union-attr]
        if isinstance(item, Example):
            out.append(item)
        elif isinstance(item, str):
            if len(fields) != 1:
                raise DataError(
                    f"got a plain string, but the template needs fields {list(fields)}: "
                    "pass dicts or Examples with those fields"
                )
            out.append(Example({fields[0]: item}))
        elif isinstance(item, Mapping):
            label = item.get("label")
            out.append(
                Example(
                    {k: str(v) for k, v in item.items() if k != "label"},
                    None if label is None else str(label),
                )
            )
        else:
            raise DataError(
                f"cannot classify an input of type {type(item).__name__}: pass strings, dicts or Examples"
            )
    return out
