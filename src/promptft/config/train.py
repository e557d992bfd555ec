"""`TrainConfig`: how the Trainer trains. The one schema of training settings, used by the Trainer, the
`train:` section of a job, the benchmark's method options and `from promptft import TrainConfig`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import model_validator

from promptft.config.base import Section
from promptft.objectives import known_metrics


class TrainConfig(Section):
    """Optimisation, evaluation and run settings; every field has a default."""

    key_word = "training option"

    learning_rate: float = 1e-5
    """AdamW peak learning rate (a job without one takes its adapter's default: LoRA 3e-4, full 1e-5)."""
    batch_size: int = 8
    """Examples per optimizer step (before accumulation)."""
    grad_accum: int = 1
    """Micro-batches accumulated per optimizer step."""
    max_steps: int = 200
    """Optimizer steps."""
    warmup_ratio: float = 0.06
    """Fraction of the steps spent warming the learning rate up (then it decays linearly)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    eval_every: int = 25
    """Steps between dev evaluations."""
    eval_batch_size: int = 32
    """Batch size for evaluation."""
    eval_at_start: bool = True
    """The untrained model competes too: never end worse than zero-shot on dev."""
    refit: bool = False
    """After choosing the step on dev, train the starting model again on train + dev (twice the labelled
    examples) up to that step, with the same learning-rate schedule, and keep that model. Dev can then no
    longer score the saved model: the reported dev scores are the selection run's."""
    refit_scale: Literal["steps", "epochs"] = "steps"
    """How the refit counts the chosen length: "steps" trains the same number of optimizer steps on the
    same schedule; "epochs" the same passes over the data (steps and schedule times (train + dev) / train)."""
    max_minutes: float | None = None
    """Stop training once this many minutes have gone into it (dev evaluations included; resumed runs count
    the time before the interruption): the dev split scores the last step if it was not just evaluated, and
    the best model so far is kept. The learning-rate schedule still spans `max_steps`. With `refit`, the
    refit runs only if it fits in the time left (estimated from the steps so far); else it is skipped and
    the model chosen on dev is kept, and the result says why (`refit_skipped`). None = no limit."""
    early_stopping_patience: int | None = 4
    """Evaluations without improvement before stopping; None (null) = never stop early."""
    tie_break: Literal["first", "dev_loss"] = "first"
    """How two steps with the same dev score are decided. "first" keeps the earlier one (with a small dev
    split ties are common, and the untrained model, evaluated first, wins them); "dev_loss" keeps the one
    with the lower mean training loss on dev (cross-entropy for classification)."""
    metric: str = "accuracy"
    """The dev metric that picks the best step (single-label: accuracy, macro_f1; multi-label: macro_f1,
    micro_f1, subset_accuracy; regression: pearson, spearman, mse). `accuracy` means the task's own default
    metric (macro_f1, pearson) for a task that reports no accuracy."""
    seed: int = 42
    """Random seed (data order, adapter initialisation, dropout)."""
    group_by_length: bool = True
    """Batches of similar length: less padding, same examples per epoch."""
    checkpoint_every: int | None = None
    """Steps between checkpoints; None = at every evaluation."""
    progress: bool = True
    """The rich bar on a terminal; elsewhere a progress line at each evaluation."""
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    """Autocast for GPU users ("fp16" also scales the loss); "no" (fp32) stays the CPU default."""

    @model_validator(mode="after")
    def _check(self) -> Self:
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
        if self.max_minutes is not None and self.max_minutes <= 0:
            problems.append("max_minutes must be > 0, or None for no time limit")
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            problems.append("checkpoint_every must be >= 1, or None to checkpoint at every evaluation")
        metrics = known_metrics()
        if self.metric not in metrics:
            problems.append(f"metric must be one of {', '.join(map(repr, metrics))}")
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))
        return self

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        return cls.parse(yaml.safe_load(Path(path).read_text()) or {})

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with some fields changed."""
        return type(self).parse({**self.to_dict(), **changes})
