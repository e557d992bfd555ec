"""The select recipe: read the user's labelled data and compare candidate models on it
(`promptft.search.select_models`): zero-shot accuracy, a short LoRA fine-tune, latency, peak memory."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from promptft.data import read_examples
from promptft.data.splits import cli_wording
from promptft.errors import DataError
from promptft.search import Selection, select_models


def select(
    data: str | Path,
    template: str,
    label_words: Mapping[str, str | Sequence[str]],
    models: Sequence[str],
    *,
    dev: str | Path | None = None,
    fields: Mapping[str, str | int] | None = None,
    label: str | int | None = None,
    label_map: Mapping[str, str] | None = None,
    fmt: str | None = None,
    on_phase: Callable[[str, str], None] | None = None,
    **options: Any,
) -> Selection:
    """Rank `models` on the labelled file `data` (and `dev`, else 30% of `data` held out). `options`:
    budget_s, max_latency_ms, max_memory_gb, seed, device, max_steps (see `select_models`)."""
    read = functools.partial(read_examples, fields=fields, label=label, label_map=label_map, fmt=fmt)
    try:
        train_examples = read(data)
        dev_examples = read(dev) if dev else None
    except DataError as err:
        raise DataError(cli_wording(str(err))) from None
    return select_models(
        list(models), train_examples, template, label_words, dev=dev_examples, on_phase=on_phase, **options
    )
