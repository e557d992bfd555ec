"""Ensembles of single-label classifiers that share one label set: weights, combined scores, soft labels.

Each member contributes its label log-probabilities (`log_softmax` of its label logits) on the same
examples, `[members, n, n_labels]`. Two ways to combine them:

* `"logits"` (PET, Schick & Schütze 2021): the weighted mean of the members' log-probabilities. Each
  member's `log_softmax` differs from its raw logits by one constant per example, so the softmax of this
  mean is exactly PET's softmax of the weighted mean of the logits, at any temperature.
* `"probabilities"`: the log of the weighted mean of the members' probabilities (a mixture).

Soft labels are the softmax of the combination at temperature T (`soft_targets`); PET distils at T = 2.
Used by `promptft.ensemble.pet` (PET/iPET) and `promptft.deploy.distill` (a uniform teacher ensemble).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from promptft.errors import ConfigError

COMBINE = ("logits", "probabilities")


def ensemble_weights(scores: Sequence[float] | None, n: int) -> torch.Tensor:
    """Normalised member weights `[n]` from non-negative scores (e.g. each member's dev accuracy); None,
    or scores that are all 0, give equal weights."""
    if scores is None:
        return torch.full((n,), 1.0 / n)
    if len(scores) != n:
        raise ValueError(f"{len(scores)} weights for {n} ensemble members")
    if any(not math.isfinite(s) or s < 0 for s in scores):
        raise ConfigError(f"ensemble weights must be finite and non-negative, got {list(scores)}")
    total = float(sum(scores))
    if total == 0:
        return torch.full((n,), 1.0 / n)
    return torch.tensor([float(s) / total for s in scores], dtype=torch.float32)


def combine_log_probs(
    log_probs: torch.Tensor, weights: torch.Tensor | None = None, how: str = "logits"
) -> torch.Tensor:
    """`[members, n, n_labels]` log-probabilities -> the ensemble's scores `[n, n_labels]` (log space; see
    the module docstring for `how`). `weights`: `ensemble_weights` (default equal)."""
    if log_probs.dim() != 3 or log_probs.shape[0] == 0:
        raise ValueError(
            f"expected [members, n, n_labels] log-probabilities, got shape {tuple(log_probs.shape)}"
        )
    members = log_probs.shape[0]
    w = ensemble_weights(None, members) if weights is None else weights.float()
    w = w.to(log_probs.device)[:, None, None]
    if how == "logits":
        return (w * log_probs.float()).sum(0)
    if how == "probabilities":
        return torch.logsumexp(log_probs.float() + torch.log(w), dim=0)
    raise ConfigError(f"unknown ensemble combination {how!r}: use one of {', '.join(COMBINE)}")


def soft_targets(scores: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The ensemble's label distribution at temperature T (T > 1 softens it): rows sum to 1."""
    return torch.softmax(scores.float() / temperature, dim=-1)
