"""`PetConfig`: the settings of pattern ensembles (PET / iPET, Schick & Schütze 2021) on top of a job.

The job gives the model, adapter, data, training settings of each pattern model and the first pattern;
this section says how the pattern models are ensembled and what the final classifier learns from.
Used by `promptft pet`, `promptft.pet(...)` and the benchmark's `pet` / `ipet` methods.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import model_validator

from promptft.config.base import Section


class PetConfig(Section):
    """PET/iPET settings; every field has a default (one PET generation, dev-accuracy weights, T = 2)."""

    key_word = "pet option"

    generations: int = 1
    """Generations of pattern models: 1 = PET; >= 2 = iPET (each generation retrains every pattern model on
    the labelled examples plus pool examples labelled by the other models of the previous generation)."""
    scale_factor: float = 5.0
    """iPET: generation g trains on `n_train * scale_factor**g` examples (PET's d = 5)."""
    weighting: Literal["dev", "train", "uniform"] = "dev"
    """Each pattern model's weight in the ensemble: its dev score after training (default), its accuracy
    on the labelled training examples before training (PET's choice, for when there is no dev set), or
    equal weights."""
    combine: Literal["logits", "probabilities"] = "logits"
    """How the members' scores are averaged: PET's weighted mean of the logits (log-probabilities), or
    the weighted mean of the probabilities."""
    temperature: float = 2.0
    """Softens the ensemble's soft labels and the final classifier's distribution in the KL (PET: 2)."""
    pool_limit: int | None = None
    """Use a random sample (fixed by the training seed) of this many pool texts; None: the whole pool."""
    include_labelled: bool = True
    """The final classifier also trains on the labelled examples (one-hot targets)."""
    final_steps: int | None = None
    """Optimizer steps of the final classifier; None: the pattern models' `train.max_steps`."""
    final_learning_rate: float | None = None
    """Learning rate of the final classifier; None: the pattern models' (a head's full fine-tuning wants
    a smaller one than LoRA's 3e-4, e.g. 1e-4 for MiniLM)."""
    final: Literal["prompt", "head"] = "prompt"
    """The final classifier: a prompt classifier with the first pattern on the job's model and adapter
    (default), or a new classification head on `final_model`, fully fine-tuned (PET's sequence
    classifier)."""
    final_model: str | None = None
    """final: head: the encoder (alias, folder or hub id; default the offline all-MiniLM-L6-v2)."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems = []
        if self.generations < 1:
            problems.append("generations must be >= 1 (1 = PET, >= 2 = iPET)")
        if self.scale_factor <= 1:
            problems.append("scale_factor must be > 1 (PET used 5): each iPET generation adds examples")
        if not self.temperature > 0:
            problems.append("temperature must be > 0 (PET used 2)")
        if self.pool_limit is not None and self.pool_limit < 1:
            problems.append("pool_limit must be >= 1, or None for the whole pool")
        if self.final_steps is not None and self.final_steps < 1:
            problems.append("final_steps must be >= 1, or None for the pattern models' max_steps")
        if self.final_learning_rate is not None and not self.final_learning_rate > 0:
            problems.append("final_learning_rate must be > 0, or None for the pattern models' rate")
        if self.final_model is not None and self.final != "head":
            problems.append("final_model is the encoder of final: head; with final: prompt drop it")
        if problems:
            raise ValueError("invalid pet settings: " + "; ".join(problems))
        return self

    @property
    def ipet(self) -> bool:
        return self.generations > 1
