"""Training checkpoints as safetensors + JSON: resuming never unpickles anything.

A checkpoint folder holds the trainable weights, the best weights so far, the optimizer's tensors
(`*.safetensors`), and one `state.json` with the rest: loop counters, history, the optimizer's and
scheduler's plain values, the loss scaler and every random generator's state (python `random`, numpy,
torch CPU, CUDA), one set per process, so a resumed run continues bit-for-bit on CPU. Folders are written
under a temporary name and renamed, so a crash mid-write leaves the previous folder whole.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from promptft.errors import RunDirError
from promptft.files import write_dir_atomically

CHECKPOINT = "checkpoint"
STATE_FILE = "state.json"
FORMAT_VERSION = 2  # 1 was a pickled state.pt


@dataclass
class TrainingState:
    """Everything a resumed run needs; `rng` has one entry per process (see `capture_rng`)."""

    step: int
    trainable: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: list[dict[str, Any]]
    best_step: int = 0
    best_metric: float | None = None
    best_state: dict[str, torch.Tensor] | None = None
    best_dev: dict[str, float] | None = None
    bad_evals: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0
    running_loss: tuple[float, float] = (0.0, 0.0)  # loss sum and examples since the last evaluation
    scaler: dict[str, Any] | None = None
    num_processes: int = 1


# ----- random generators -----
def capture_rng() -> dict[str, Any]:
    """This process's generators: python, numpy, torch CPU and (when available) every CUDA device."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


# ----- optimizer state: tensors apart from plain values -----
def _split_optimizer(state_dict: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    plain: dict[str, Any] = {}
    tensors: dict[str, torch.Tensor] = {}
    for pid, entry in state_dict["state"].items():
        plain[str(pid)] = {}
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain[str(pid)][key] = value
    return {"state": plain, "param_groups": state_dict["param_groups"]}, tensors


def _join_optimizer(plain: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(pid): dict(entry) for pid, entry in plain["state"].items()}
    for name, value in tensors.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    # JSON turns tuples (AdamW's betas) into lists; give the optimizer back what it saved.
    groups = [
        {k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in group.items()}
        for group in plain["param_groups"]
    ]
    return {"state": state, "param_groups": groups}


def _cpu(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


# ----- folders written atomically -----
def checkpoint_dir(run_dir: str | Path) -> Path | None:
    """The run's checkpoint folder, or its previous copy when a crash came between the two renames."""
    for name in (CHECKPOINT, CHECKPOINT + ".old"):
        path = Path(run_dir) / name
        if path.is_dir():
            return path
    return None


def has_checkpoint(run_dir: str | Path) -> bool:
    return checkpoint_dir(run_dir) is not None


# ----- save / load -----
def save_checkpoint(run_dir: Path, state: TrainingState) -> None:
    def build(tmp: Path) -> None:
        save_file(_cpu(state.trainable), tmp / "trainable.safetensors")
        if state.best_state is not None:
            save_file(_cpu(state.best_state), tmp / "best.safetensors")
        optimizer, optimizer_tensors = _split_optimizer(state.optimizer)
        save_file(optimizer_tensors, tmp / "optimizer.safetensors")
        rng_tensors: dict[str, torch.Tensor] = {}
        rng_plain = []
        for rank, rng in enumerate(state.rng):
            rng_tensors[f"{rank}.torch"] = rng["torch"]
            for device, cuda in enumerate(rng.get("cuda", [])):
                rng_tensors[f"{rank}.cuda.{device}"] = cuda
            rng_plain.append(
                {"python": rng["python"], "numpy": rng["numpy"], "cuda": len(rng.get("cuda", []))}
            )
        save_file(rng_tensors, tmp / "rng.safetensors")
        meta = {
            "format_version": FORMAT_VERSION,
            "step": state.step,
            "best_step": state.best_step,
            "best_metric": state.best_metric,
            "best_dev": state.best_dev,
            "has_best_state": state.best_state is not None,
            "bad_evals": state.bad_evals,
            "history": state.history,
            "elapsed_s": state.elapsed_s,
            "running_loss": list(state.running_loss),
            "optimizer": optimizer,
            "scheduler": state.scheduler,
            "scaler": state.scaler,
            "num_processes": state.num_processes,
            "rng": rng_plain,
        }
        # Written last: a folder with a readable state.json has all its other files.
        (tmp / STATE_FILE).write_text(json.dumps(meta))

    write_dir_atomically(run_dir / CHECKPOINT, build)


def load_checkpoint(run_dir: Path, trainable: Mapping[str, tuple[int, ...]]) -> TrainingState:
    """Read a checkpoint for a model whose trainable parameters have these names and shapes, or raise
    RunDirError saying how to restart when it is missing parts, corrupt, or from another model."""
    directory = checkpoint_dir(run_dir) or run_dir / CHECKPOINT
    try:
        meta = json.loads((directory / STATE_FILE).read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format version {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
        rng_tensors = load_file(directory / "rng.safetensors")
        rng = []
        for rank, plain in enumerate(meta["rng"]):
            entry = {
                "python": plain["python"],
                "numpy": plain["numpy"],
                "torch": rng_tensors[f"{rank}.torch"],
            }
            if plain["cuda"]:
                entry["cuda"] = [rng_tensors[f"{rank}.cuda.{d}"] for d in range(plain["cuda"])]
            rng.append(entry)
        state = TrainingState(
            step=int(meta["step"]),
            trainable=load_file(directory / "trainable.safetensors"),
            optimizer=_join_optimizer(meta["optimizer"], load_file(directory / "optimizer.safetensors")),
            scheduler=meta["scheduler"],
            rng=rng,
            best_step=meta["best_step"],
            best_metric=meta["best_metric"],
            best_state=load_file(directory / "best.safetensors") if meta["has_best_state"] else None,
            best_dev=meta["best_dev"],
            bad_evals=meta["bad_evals"],
            history=meta["history"],
            elapsed_s=meta["elapsed_s"],
            running_loss=tuple(meta["running_loss"]),
            scaler=meta["scaler"],
            num_processes=meta["num_processes"],
        )
    except (
        Exception
    ) as exc:  # any unreadable part (0 bytes, truncated, wrong format) means the same to a user
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        raise RunDirError(
            f"the checkpoint in {directory} cannot be read ({reason}). To restart this run from step 0, "
            f"delete the folder {directory}; or choose another output folder"
        ) from None
    saved = {name: tuple(value.shape) for name, value in state.trainable.items()}
    if saved != dict(trainable):
        differ = sorted(
            name for name in set(saved) | set(trainable) if saved.get(name) != trainable.get(name)
        )[:3]
        raise RunDirError(
            f"the checkpoint in {directory} belongs to another model (its weights do not match, e.g. "
            f"{differ}): resume with the model that started the run, or delete {directory} to restart"
        )
    return state
