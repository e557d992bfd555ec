"""The unit of data: one example's template fields and its label (a name, a set of names, or a number)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    """One example: template field name -> text, and the label name (None when unlabelled).

    `fields` keys are the template's field names (`{"text": ...}` or `{"premise": ..., "hypothesis": ...}`);
    `label` is always the label *name* after any label map, so it can be looked up in a verbalizer directly.
    Other task types: a multi-label example's label is a sorted tuple of names (`("joy", "love")`), a
    regression example's a float. All three are hashable, so examples still dedupe in sets.
    """

    fields: dict[str, str]
    label: str | tuple[str, ...] | float | None = None

    # Frozen dataclasses hash all fields and a dict is unhashable; hashing by content lets callers dedupe
    # examples and check splits for overlap with sets.
    def __hash__(self) -> int:
        return hash((tuple(sorted(self.fields.items())), self.label))


def _natural_key(labels: Iterable[str]) -> list[str]:
    uniq = set(labels)
    try:
        # The string itself breaks ties such as "1" vs "01", so the order never depends on set order.
        return sorted(uniq, key=lambda s: (int(s), s))
    except ValueError:
        return sorted(uniq)


def label_names(examples: Iterable[Example]) -> list[str]:
    """Sorted unique labels of `examples` (numerically when every label is an integer, e.g. "2" < "10").

    Unlabelled examples are ignored; an all-unlabelled input gives []. Multi-label sets contribute each
    of their labels; regression targets (numbers) are not labels and are ignored.
    """
    names: list[str] = []
    for ex in examples:
        if isinstance(ex.label, str):
            names.append(ex.label)
        elif isinstance(ex.label, tuple):
            names.extend(ex.label)
    return _natural_key(names)
