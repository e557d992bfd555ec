"""What every classifier shares: predict, predict_proba, evaluate, fit, and the trainable state.

A classifier's `module` is the torch module whose forward maps encoded inputs to label logits; the trainer
calls that module (possibly wrapped by Accelerate/DDP), never a method that bypasses its forward.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from promptft.adapters import AdapterSettings, LoraSettings
from promptft.data import Example
from promptft.data.inputs import Inputs, as_examples
from promptft.errors import ConfigError, DataError, PromptFTError
from promptft.objectives import Objective, SingleLabel

log = logging.getLogger(__name__)

PROGRESS_LOG_SECONDS = 60.0  # a long prediction pass says how far it is (in logs too) this often


class BaseClassifier:
    """What the trainer and the benchmark need from any classifier."""

    labels: list[str]
    fields: tuple[str, ...]
    module: nn.Module  # the trainable torch module
    peft_model: Any = None  # the peft wrapper when an adapter is applied
    _objective: Objective | None = None
    adapter: AdapterSettings  # what trains (promptft.adapters); set by each classifier

    card_notes: dict[str, Any] | None = None  # what the model card says about training (note_for_card)

    # ----- to implement -----
    def encode(self, examples: Sequence[Example]) -> list[Any]:
        raise NotImplementedError

    def encode_for_training(self, examples: Sequence[Example]) -> list[Any]:
        """What the trainer encodes the training split with (default: `encode`); a classifier whose inputs
        depend on the training set (demonstrations) builds that state here."""
        return self.encode(examples)

    def label_logits(self, encoded: Sequence[Any]) -> torch.Tensor:
        """`[batch, n_labels]` scores (log-space); gradients flow when the module is in training.

        Always `self.module(encoded)`: the trainer calls the (possibly DDP-wrapped) module itself, so
        whatever a classifier computes must live in its module's forward."""
        return self.module(encoded)

    @staticmethod
    def length_of(encoded: Any) -> int:
        return len(encoded.input_ids)

    def save_pretrained(self, directory: str | Path, *, overwrite: bool = False) -> None:
        raise NotImplementedError

    # ----- shared -----
    def note_for_card(self, **notes: Any) -> None:
        """Record facts for the model card (README.md) that `save_pretrained` writes: `data={"train":
        path, ...}`, `training={"n_train": ..., "steps": ...}`, `dev={...}`, `test={...}`, `command="..."`.
        The Trainer and the `train` recipe note what they know; see `promptft.classifiers.card`."""
        self.card_notes = {**(self.card_notes or {}), **notes}

    def card_details(self) -> dict[str, Any]:
        """The notes the model card is written from, with the parameter counts."""
        return {**(self.card_notes or {}), "parameters": list(self.parameter_counts())}

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def label_index(self, examples: Sequence[Example]) -> list[int]:
        """Single-label class indices of `examples` in `self.labels` order (DataError for a missing or
        unknown label)."""
        return SingleLabel(self.labels).targets(examples).tolist()

    @property
    def finetune(self) -> str:
        """The adapter's name ("full", "lora", "none", ...)."""
        return self.adapter.name

    @property
    def lora_settings(self) -> LoraSettings | None:
        """The LoRA settings when the adapter is LoRA, else None."""
        return self.adapter if isinstance(self.adapter, LoraSettings) else None

    @property
    def objective(self) -> Objective:
        """The task type: how logits become scores, predictions and metrics (single-label by default)."""
        if self._objective is None:
            self._objective = SingleLabel(self.labels)
        return self._objective

    @objective.setter
    def objective(self, objective: Objective) -> None:
        if list(objective.labels) != list(self.labels):
            raise PromptFTError(
                f"the {objective.name} objective has labels {objective.labels}, but this classifier scores "
                f"{self.labels}: build the objective with the classifier's labels"
            )
        self._objective = objective
        self._objective_changed(objective)

    def _objective_changed(self, objective: Objective) -> None:
        """A classifier whose module depends on the task type adapts it here (e.g. per-label calibration)."""

    def prepare_training(self, encoded: Sequence[Any], targets: torch.Tensor) -> None:
        """Called by the trainer once before the first step with the encoded training set: the place for a
        data-dependent initialisation of task-specific parameters (nothing for most classifiers)."""

    def tune(self, examples: Sequence[Example], batch_size: int = 32, progress: bool = False) -> None:
        """Fit the objective's decoding on labelled (dev) examples, e.g. multi-label thresholds; `fit`
        does this on its dev set. A no-op for objectives with nothing to fit."""
        if not self.objective.tunes_on_dev:
            return
        examples = as_examples(examples, self.fields)
        if not examples:
            raise DataError("cannot tune on an empty split: check the file and its label column")
        self.objective.targets(examples)  # fail early on missing or unknown labels
        self.objective.tune(self._logits(examples, batch_size, progress), examples)

    def logits_encoded(
        self, encoded: Sequence[Any], batch_size: int = 32, progress: bool = False
    ) -> torch.Tensor:
        """Label logits `[n, n_labels]` (float32, CPU) in input order, without gradients."""
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        # Sorting by length cuts padding; rows are put back in input order.
        order = sorted(range(len(encoded)), key=lambda i: self.length_of(encoded[i]))
        out = torch.zeros((len(encoded), len(self.labels)), dtype=torch.float32)
        was_training = self.module.training
        self.module.eval()
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        iterator = batches
        if progress:
            from rich.progress import track

            iterator = track(batches, description="predicting", transient=True)
        started = last_log = time.perf_counter()
        done = 0
        try:
            with torch.inference_mode():
                for batch in iterator:
                    out[batch] = self.label_logits([encoded[i] for i in batch]).float().cpu()
                    done += len(batch)
                    now = time.perf_counter()
                    if now - last_log >= PROGRESS_LOG_SECONDS and done < len(encoded):
                        last_log = now
                        log.info(
                            "predicting: %d/%d (%.0f%%), %.0f s", done, len(encoded), 100 * done / len(encoded),
                            now - started,
                        )  # fmt: skip
        finally:
            self.module.train(was_training)
        return out

    def _logits(self, inputs: Inputs, batch_size: int, progress: bool = False) -> torch.Tensor:
        examples = as_examples(inputs, self.fields)
        if not examples:
            return torch.zeros((0, len(self.labels)))
        return self.logits_encoded(self.encode(examples), batch_size, progress)

    def predict_proba(self, inputs: Inputs, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """The objective's scores in input order: probabilities `[n, n_labels]` in `self.labels` order
        (single-label: they sum to 1; multi-label: one independent probability per label); for regression
        the predicted values `[n]`."""
        return self.objective.scores(self._logits(inputs, batch_size, progress)).numpy()

    def predict_proba_encoded(
        self, encoded: Sequence[Any], batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        return self.objective.scores(self.logits_encoded(encoded, batch_size, progress)).numpy()

    def predict(self, inputs: Inputs, batch_size: int = 32) -> list[Any]:
        """Predictions in input order: label names (single-label), sorted tuples of label names
        (multi-label, at the objective's thresholds) or floats (regression)."""
        return self.objective.decode(self._logits(inputs, batch_size))

    def evaluate(
        self, examples: Sequence[Example], batch_size: int = 32, progress: bool = False
    ) -> dict[str, float]:
        """The objective's metrics on labelled examples (single-label: accuracy, macro-F1 and n;
        multi-label: macro/micro-F1, subset accuracy, f1_<label>; regression: pearson, spearman, mse)."""
        examples = as_examples(examples, self.fields)
        if not examples:
            raise DataError("cannot evaluate on an empty split: check the file and its label column")
        self.objective.targets(examples)  # fail early on missing or unknown labels
        logits = self._logits(examples, batch_size, progress)
        return self.objective.evaluate(examples, self.objective.decode(logits))

    def fit(
        self,
        train: Sequence[Example],
        dev: Sequence[Example] | None = None,
        config=None,
        run_dir: str | Path | None = None,
    ):
        """Train through `promptft.training.Trainer` (imported here: training sits above this layer)."""
        from promptft.training import TrainConfig, Trainer

        trainer = Trainer(self, config or TrainConfig(), run_dir=run_dir)
        return trainer.train(train, dev)

    def enable_training_cache(self) -> bool:
        """Let the trainer cache what frozen layers compute (no-op unless the model supports it)."""
        return False

    def disable_training_cache(self) -> None:
        pass

    def parameter_counts(self) -> tuple[int, int]:
        """(trainable, total) parameters, each shared tensor counted once."""
        params = list(self.module.parameters())
        return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)

    def describe_trainable(self) -> str:
        trainable, total = self.parameter_counts()
        share = 100 * trainable / total if total else 0.0
        return f"trainable parameters: {trainable:,} of {total:,} ({share:.3g}%)"

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The parameters that training changes (all for full FT, LoRA's for LoRA)."""
        return {n: p.detach().clone() for n, p in self.module.named_parameters() if p.requires_grad}

    def load_trainable_state(self, state: Mapping[str, torch.Tensor]) -> None:
        params = dict(self.module.named_parameters())
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value)
