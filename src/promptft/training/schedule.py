"""The fixed batch schedule and seeding: a run's batches are decided by its seed before training starts."""

from __future__ import annotations

import random

import numpy as np
import torch


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def optimizer_and_scheduler(params: list, learning_rate: float, cfg, total_steps: int | None = None) -> tuple:
    """AdamW (no weight decay on biases and norms) with linear warm-up and decay over `total_steps`
    (default `cfg.max_steps`; a refit stops early on its selection run's schedule); `cfg` holds
    weight_decay, warmup_ratio and max_steps (the classifier's and the chat trainer's configs)."""
    total_steps = total_steps or cfg.max_steps
    from transformers import get_linear_schedule_with_warmup

    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=learning_rate,
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    return optimizer, scheduler


def batch_schedule(
    lengths: list[int], batch_size: int, steps: int, seed: int, group_by_length: bool
) -> list[list[int]]:
    """Every step's batch, fixed by the seed up front, so a resumed run sees the same batches.

    Each epoch is a fresh permutation. With group_by_length, each window of 4 batches is sorted by
    length before being cut, which removes most padding but keeps batches random across epochs.
    """
    rng = np.random.default_rng(seed)
    n = len(lengths)
    out: list[list[int]] = []
    while len(out) < steps:
        perm = rng.permutation(n).tolist()
        batches: list[list[int]] = []
        window = batch_size * 4 if group_by_length else n
        for start in range(0, n, window):
            chunk = perm[start : start + window]
            if group_by_length:
                chunk.sort(key=lambda i: lengths[i])
            batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
        if group_by_length:
            rng.shuffle(batches)
        out.extend(batches)
    return out[:steps]


def micro_batches(step_batch: list[int], size: int) -> list[list[int]]:
    """An optimizer step's batch cut into forward passes of `size` (gradient accumulation)."""
    return [step_batch[i : i + size] for i in range(0, len(step_batch), size)]
