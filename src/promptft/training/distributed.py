"""Accelerate inside the trainer: one process or many (`accelerate launch` / `torchrun`), no code change.

The batch size is global: every process takes its share of each batch of the fixed schedule, so N
processes train on the same examples per step as one process would, and reach the same weights.

    accelerate launch --multi_gpu --num_processes 4 -m promptft train --config job.yaml   # 4 GPUs
    torchrun --standalone --nproc_per_node 2 -m promptft train --config job.yaml --device cpu  # 2 CPU (gloo)

(`accelerate launch --cpu --num_processes 2` starts one process unless given an MPI host file;
`accelerate launch --multi_gpu ... --device cpu` starts two CPU processes.) The precision comes from the
job's `train.mixed_precision`, not from the launcher's flag: the run folder records what was used.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from promptft.errors import ConfigError


def is_main_process() -> bool:
    """True on the process that writes files (rank 0), also before any Accelerator exists."""
    from accelerate.state import PartialState

    if PartialState._shared_state:
        return PartialState().is_main_process
    return int(os.environ.get("RANK", "0")) == 0


def make_accelerator(device: torch.device, mixed_precision: str):
    """An Accelerator for a model that lives on `device` (CPU stays CPU even when a GPU exists)."""
    from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
    from accelerate.state import AcceleratorState, PartialState

    cpu = device.type == "cpu"
    if mixed_precision == "fp16" and cpu:
        raise ConfigError("mixed_precision 'fp16' needs a GPU; on CPU use 'bf16' or 'no' (the default, fp32)")
    if AcceleratorState._shared_state:
        # Accelerate keeps one state per process. A single process may train several models with other
        # settings (a notebook, the benchmark); a distributed one must keep what it was launched with.
        state = AcceleratorState()
        same = state.mixed_precision == mixed_precision and (state.device.type == "cpu") == cpu
        if not same:
            if state.num_processes > 1:
                raise ConfigError(
                    f"this process already trains with mixed_precision={state.mixed_precision!r} on "
                    f"{state.device}: one launch keeps one precision and device"
                )
            AcceleratorState._reset_state(reset_partial_state=True)
    elif PartialState._shared_state and PartialState().num_processes == 1:
        PartialState._reset_state()  # a bare PartialState (e.g. from is_main_process) has no device choice
    return Accelerator(
        cpu=cpu,
        mixed_precision=mixed_precision,
        # split_batches: our batch size is already global, so the scheduler steps once per optimizer step.
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        # Some trainable parameters may get no gradient in a step (e.g. a label word's rows); DDP must not hang.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )


def local_share(batch: list[int], rank: int, world: int) -> tuple[list[int], float]:
    """This process's contiguous slice of a global (micro-)batch, and its weight.

    A process whose slice is empty still runs one example with weight 0: DDP needs every process in
    every backward pass to average the gradients."""
    base, extra = divmod(len(batch), world)
    start = rank * base + min(rank, extra)
    share = batch[start : start + base + (rank < extra)]
    return (share, 1.0) if share else (batch[:1], 0.0)


def all_gather(obj: Any, world: int) -> list[Any]:
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    torch.distributed.all_gather_object(out, obj)
    return out


def broadcast(obj: Any, world: int) -> Any:
    """The main process's value of `obj`, on every process (keeps their decisions identical)."""
    if world == 1:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def all_sum(values: list[float], world: int, device: torch.device) -> list[float]:
    if world == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(tensor)
    return tensor.tolist()
