"""Typed training configuration that round-trips to YAML."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from promptft.errors import ConfigError
from promptft.objectives import known_metrics


@dataclass
class TrainConfig:
    learning_rate: float = 1e-5
    batch_size: int = 8
    grad_accum: int = 1
    max_steps: int = 200
    warmup_ratio: float = 0.06
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    eval_every: int = 25
    eval_batch_size: int = 32
    eval_at_start: bool = True  # the untrained model competes too: never end worse than zero-shot on dev
    early_stopping_patience: int | None = 4  # evaluations without improvement; None = never stop early
    metric: str = "accuracy"  # a metric of the classifier's objective; single-label: accuracy, macro_f1
    seed: int = 42
    group_by_length: bool = True  # batches of similar length: less padding, same examples per epoch
    checkpoint_every: int | None = None  # steps; None = at every evaluation
    progress: bool = True  # the rich bar on a terminal; elsewhere a progress line at each evaluation
    # Autocast for GPU users; "fp16" also scales the loss. fp32 ("no") stays the CPU default.
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"

    def __post_init__(self) -> None:
        problems = []
        if self.learning_rate <= 0:
            problems.append("learning_rate must be > 0")
        for name in ("batch_size", "grad_accum", "max_steps", "eval_every", "eval_batch_size"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        if not 0 <= self.warmup_ratio < 1:
            problems.append("warmup_ratio must be in [0, 1)")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            # 0 or less used to stop before the first step and mark the run finished
            problems.append("early_stopping_patience must be >= 1, or None to never stop early")
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            problems.append("checkpoint_every must be >= 1, or None to checkpoint at every evaluation")
        metrics = known_metrics()
        if self.metric not in metrics:
            problems.append(f"metric must be one of {', '.join(map(repr, metrics))}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            problems.append("mixed_precision must be 'no', 'bf16' or 'fp16'")
        if problems:
            raise ConfigError("invalid training config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s) {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(yaml.safe_load(Path(path).read_text()) or {})
