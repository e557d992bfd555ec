"""Few-shot sampling (LM-BFF style: k examples per class; multi-label: at least k per label) and
train/dev splits."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from promptft.data.example import Example, label_names
from promptft.errors import DataError


def _by_label(examples: Sequence[Example], what: str) -> dict[str, list[Example]]:
    groups: dict[str, list[Example]] = {}
    for i, ex in enumerate(examples):
        if ex.label is None:
            raise DataError(
                f"{what} needs labelled examples, but example {i} has no label: read the data with "
                "label=<label column>"
            )
        groups.setdefault(ex.label, []).append(ex)
    return groups


def sample_k_shot(
    examples: Sequence[Example],
    k: int,
    seed: int,
    *,
    dev_k: int | None = None,
    labels: Sequence[str] | None = None,
) -> tuple[list[Example], list[Example]]:
    """Draw `k` train and `dev_k` (default `k`; 0 for no dev set) dev examples per class, disjoint.

    Like LM-BFF's k-shot splits: each class is shuffled with `random.Random(seed)` and its first `k`
    examples go to train, the next `dev_k` to dev. `labels` restricts sampling to those classes (others are
    skipped); by default every label present is used. Both lists come back shuffled, not grouped by class;
    the same examples and seed always give the same split.
    """
    dev_default = dev_k is None
    dev_k = k if dev_k is None else dev_k
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise DataError(f"k must be a positive integer (examples per class), got {k!r}")
    if isinstance(dev_k, bool) or not isinstance(dev_k, int) or dev_k < 0:
        raise DataError(f"dev_k must be a non-negative integer (0 for no dev set), got {dev_k!r}")
    if not examples:
        raise DataError("cannot sample k-shot data from no examples: check that the data file was read")
    groups = _by_label(examples, "k-shot sampling")
    classes = list(labels) if labels is not None else label_names(examples)
    if not classes:
        raise DataError("labels= is empty: name the classes to sample, or leave it out to use all of them")
    need = k + dev_k
    rng = random.Random(seed)
    train: list[Example] = []
    dev: list[Example] = []
    for cls in classes:
        pool = list(groups.get(cls, []))
        if len(pool) < need:
            known = "" if cls in groups else f" (labels present: {label_names(examples)})"
            smallest = min(len(groups.get(c, [])) for c in classes)
            max_k = smallest // 2 if dev_default else smallest - dev_k
            fix = f"use k <= {max_k}" if max_k >= 1 else "use fewer dev examples (dev_k) or more data"
            raise DataError(
                f"class {cls!r} has {len(pool)} examples{known}, but k={k} train + dev_k={dev_k} dev "
                f"= {need} are needed per class: {fix} (or drop the class with labels=)"
            )
        rng.shuffle(pool)
        train += pool[:k]
        dev += pool[k:need]
    rng.shuffle(train)
    rng.shuffle(dev)
    return train, dev


def train_dev_split(
    examples: Sequence[Example], dev_fraction: float, seed: int, stratify: bool = True
) -> tuple[list[Example], list[Example]]:
    """Split one labelled set into (train, dev), `dev_fraction` of it to dev, for users with a single file.

    With `stratify` each class is split in the same proportion (every class keeps at least one training
    example); both lists come back shuffled, deterministically for a given seed.
    """
    if (
        isinstance(dev_fraction, bool)
        or not isinstance(dev_fraction, int | float)
        or not 0 < dev_fraction < 1
    ):
        raise DataError(f"dev_fraction must be between 0 and 1 (exclusive), e.g. 0.2; got {dev_fraction!r}")
    if len(examples) < 2:
        raise DataError(f"cannot split {len(examples)} example(s) into train and dev: at least 2 are needed")
    rng = random.Random(seed)
    if stratify:
        groups = _by_label(examples, "a stratified split (stratify=True)")
        pools = [groups[c] for c in label_names(examples)]
    else:
        pools = [list(examples)]
    train: list[Example] = []
    dev: list[Example] = []
    for group in pools:
        pool = list(group)
        rng.shuffle(pool)
        n_dev = min(round(len(pool) * dev_fraction), len(pool) - 1)
        dev += pool[:n_dev]
        train += pool[n_dev:]
    if not dev:
        raise DataError(
            f"dev_fraction={dev_fraction} of {len(examples)} examples rounds to an empty dev set: "
            "use a larger dev_fraction or more data"
        )
    rng.shuffle(train)
    rng.shuffle(dev)
    return train, dev


@dataclass(frozen=True)
class MultiLabelSample:
    """A multi-label k-shot sample: the examples (shuffled), how many examples each label got, and how
    many examples were taken in all (at least K per label, usually more since examples share labels)."""

    examples: list[Example]
    counts: dict[str, int]

    @property
    def n_taken(self) -> int:
        return len(self.examples)


def sample_multi_label(
    examples: Sequence[Example],
    k: int,
    seed: int,
    *,
    labels: Sequence[str] | None = None,
    exclude: Iterable[Example] = (),
) -> MultiLabelSample:
    """A seeded greedy sample in which every label has at least `k` examples (the usual multi-label k-shot).

    The examples are shuffled with `random.Random(seed)`; labels are then served rarest first, each taking
    the next unused examples that carry it until it has `k` (an example counts for all its labels, so
    frequent labels are often filled by rarer labels' picks). `labels` restricts the labels to fill (by
    default every label present); `exclude` examples are never taken (e.g. the train sample, when dev is
    drawn from the same pool). The same examples and seed always give the same sample.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise DataError(f"k must be a positive integer (examples per label), got {k!r}")
    if not examples:
        raise DataError("cannot sample k-shot data from no examples: check that the data file was read")
    for i, ex in enumerate(examples):
        if not isinstance(ex.label, tuple):
            raise DataError(
                f"multi-label sampling needs label sets, but example {i} has label {ex.label!r}: read the "
                "data with task=TaskSpec('multi_label') (task.type: multi_label)"
            )
    wanted = list(labels) if labels is not None else label_names(examples)
    if not wanted:
        raise DataError("no labels to sample: the examples carry none, or labels= is empty")
    skip = set(exclude)
    order = [ex for ex in examples if ex not in skip]
    random.Random(seed).shuffle(order)
    holders = {label: [i for i, ex in enumerate(order) if label in ex.label] for label in wanted}  # type: ignore[operator]
    short = {label: len(idx) for label, idx in holders.items() if len(idx) < k}
    if short:
        label, have = min(short.items(), key=lambda item: item[1])
        raise DataError(
            f"label {label!r} has {have} example(s) to draw from, but k={k} are needed per label "
            f"({len(short)} label(s) fall short): use k <= {have}, more data, or drop the label with labels="
        )
    counts = dict.fromkeys(wanted, 0)
    taken: list[int] = []
    used: set[int] = set()
    for label in sorted(wanted, key=lambda name: (len(holders[name]), name)):  # rarest first
        for i in holders[label]:
            if counts[label] >= k:
                break
            if i in used:
                continue
            used.add(i)
            taken.append(i)
            for other in order[i].label:  # type: ignore[union-attr]
                if other in counts:
                    counts[other] += 1
    chosen = [order[i] for i in taken]
    random.Random(seed + 1).shuffle(chosen)
    return MultiLabelSample(chosen, counts)
