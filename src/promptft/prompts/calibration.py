"""Contextual calibration (Zhao et al. 2021, "Calibrate Before Use").

A prompted LM leans towards some label words whatever the input: "great" is simply a likelier word than
"terrible" after "It was". Contextual calibration estimates that lean by putting *content-free* inputs
("N/A", "", "[MASK]") through the same template, averaging their label probabilities into `p_cf`, and
dividing it out: `q(y | x) ∝ p(y | x) / p_cf(y)` (the paper's `W = diag(p_cf)^-1`, `b = 0`). In log space the
calibrated logits are `log_softmax(logits) - log p_cf`, so a softmax over them gives the calibrated
probabilities. A content-free input gets the uniform distribution after calibration, by construction.

This module holds the arithmetic and the choice of content-free inputs; `PromptClassifier(calibrate=
"contextual")` runs the inputs through its own backbone with its current weights.

Contextual calibration corrects which label the model leans to, not how confident it is: on SST-2 it
raises zero-shot accuracy but also the expected calibration error (benchmarks/results/calibration.json).
`"temperature"` (Guo et al. 2017; `promptft.objectives.single_label`) fits a softmax temperature on
labelled dev examples for that; `"contextual+temperature"` does both, the temperature fitted on the
contextually calibrated scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from promptft.errors import ConfigError

CALIBRATIONS = ("none", "contextual", "temperature", "contextual+temperature")
CONTENT_FREE = ("N/A", "", "[MASK]")  # Zhao et al.'s three inputs, averaged


def check_calibration(method: str | None) -> str | None:
    """`None` for no calibration (also for "none"), else the method's name; ConfigError for unknown names."""
    if method is None or method == "none":
        return None
    if method not in CALIBRATIONS:
        raise ConfigError(f"unknown calibration {method!r}: use one of {', '.join(CALIBRATIONS)}")
    return method


def calibration_parts(method: str | None) -> tuple[bool, bool]:
    """(contextual, temperature): which of the two a calibration name asks for."""
    parts = (check_calibration(method) or "").split("+")
    return "contextual" in parts, "temperature" in parts


def calibration_name(contextual: bool, temperature: bool) -> str | None:
    """The inverse of `calibration_parts` (None for neither)."""
    return "+".join(n for n, on in (("contextual", contextual), ("temperature", temperature)) if on) or None


@dataclass(frozen=True)
class ContextualCalibration:
    """Which content-free strings estimate the bias. Each fills every field of the template."""

    content_free: tuple[str, ...] = CONTENT_FREE

    def __post_init__(self) -> None:
        if isinstance(self.content_free, str) or not self.content_free:
            raise ConfigError(
                'contextual calibration needs at least one content-free input, e.g. ["N/A", "", "[MASK]"]'
            )
        object.__setattr__(self, "content_free", tuple(str(s) for s in self.content_free))

    def inputs(self, fields: Sequence[str], slot_text: str | None = None) -> list[dict[str, str]]:
        """One field mapping per content-free string. A string holding the model's own slot token (a
        BERT tokenizer's "[MASK]") would add a second slot, so it is left out for that model."""
        usable = [s for s in self.content_free if not (slot_text and slot_text in s)]
        if not usable:
            raise ConfigError(
                f"every content-free input {list(self.content_free)} contains this model's slot token "
                f"{slot_text!r}: add one without it, e.g. 'N/A'"
            )
        return [{name: text for name in fields} for text in usable]

    def to_dict(self, prior: Sequence[float] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"method": "contextual", "content_free": list(self.content_free)}
        if prior is not None:
            out["prior"] = [float(p) for p in prior]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ContextualCalibration | None:
        if not data or check_calibration(data.get("method")) is None:
            return None
        return cls(tuple(data.get("content_free", CONTENT_FREE)))


def content_free_prior(label_logits: torch.Tensor) -> torch.Tensor:
    """`p_cf`: the mean over content-free inputs of their label distributions (`[n_inputs, n_labels]`
    log-space scores -> `[n_labels]` probabilities, summing to 1)."""
    if label_logits.dim() != 2 or label_logits.shape[0] == 0:
        raise ValueError(f"expected [n_inputs, n_labels] scores, got shape {tuple(label_logits.shape)}")
    return label_logits.float().softmax(-1).mean(0)


def apply_prior(logits: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """Calibrated log-space logits `log_softmax(logits) - log p_cf` (`[batch, n_labels]`)."""
    prior = prior.to(device=logits.device, dtype=torch.float32).clamp_min(1e-12)
    return (logits.float().log_softmax(-1) - prior.log()).to(logits.dtype)
