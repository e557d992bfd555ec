"""The unit of data: one example's template fields and its label name."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    """One example: template field name -> text, and the label name (None when unlabelled).

    `fields` keys are the template's field names (`{"text": ...}` or `{"premise": ..., "hypothesis": ...}`);
    `label` is always the label *name* after any label map, so it can be looked up in a verbalizer directly.
    """

    fields: dict[str, str]
    label: str | None = None

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

    Unlabelled examples are ignored; an all-unlabelled input gives [].
    """
    return _natural_key(ex.label for ex in examples if ex.label is not None)
