"""Ensembles of single-label classifiers that share one label set: weights, combined scores, soft labels.

Members may list the labels in different orders (the order comes from each run's label words or label
map); `label_order` maps each member's outputs onto the first member's order before they are combined.

Each member contributes its label log-probabilities (`log_softmax` of its label logits) on the same
examples, `[members, n, n_labels]`. Two ways to combine them:

* `"logits"` (PET, Schick & Schütze 2021): the weighted mean of the members' log-probabilities. Each
  member's `log_softmax` differs from its raw logits by one constant per example, so the softmax of this
  mean is exactly PET's softmax of the weighted mean of the logits, at any temperature.
* `"probabilities"`: the log of the weighted mean of the members' probabilities (a mixture).

Soft labels are the softmax of the combination at temperature T (`soft_targets`); PET distils at T = 2.
Used by `promptft.ensemble.pet` (PET/iPET) and `promptft.deploy.distill` (a uniform teacher ensemble).
`EnsembleClassifier` wraps trained members as one classifier that predicts, saves and loads (the
`train --auto` recipe's ensemble stage keeps one when it beats its best member on dev).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from promptft.classifiers.base import BaseClassifier
from promptft.errors import ConfigError, ModelError, PromptFTError
from promptft.objectives import SingleLabel

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


def label_order(
    reference: Sequence[str], labels: Sequence[str], what: str = "ensemble members"
) -> list[int] | None:
    """Indices that put outputs in `labels` order into `reference` order (None when the orders agree); a
    ConfigError when the two label sets differ."""
    reference, labels = [str(x) for x in reference], [str(x) for x in labels]
    if labels == reference:
        return None
    if len(set(labels)) != len(labels) or set(labels) != set(reference):
        raise ConfigError(f"{what} must share one label set: {reference} vs {labels}")
    return [labels.index(label) for label in reference]


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


ENSEMBLE_TYPE = "ensemble"
MEMBERS_DIR = "members"


class _EnsembleModule(nn.Module):
    """The ensemble's forward: each member's label log-probabilities (at its fitted temperature), combined.

    The members' modules are registered (eval/train, device and parameter counts reach them); an input is
    a tuple with one encoding per member, since each member encodes with its own prompt."""

    def __init__(
        self,
        members: Sequence[BaseClassifier],
        weights: torch.Tensor,
        combine: str,
        orders: Sequence[list[int] | None],
    ) -> None:
        super().__init__()
        self.members = list(members)
        self.orders = list(orders)  # per member: its outputs -> the ensemble's label order (None: same)
        self.member_modules = nn.ModuleList([m.module for m in members])
        self.register_buffer("weights", weights.float())
        self.combine = combine

    def forward(self, encoded: Sequence[tuple]) -> torch.Tensor:
        per_member = []
        for i, member in enumerate(self.members):
            logits = member.label_logits([e[i] for e in encoded]).float()
            if self.orders[i] is not None:
                logits = logits[:, self.orders[i]]
            temperature = float(getattr(member.objective, "calibration_temperature", 1.0))
            per_member.append(torch.log_softmax(logits / temperature, dim=-1))
        return combine_log_probs(torch.stack(per_member), self.weights, self.combine)


class EnsembleClassifier(BaseClassifier):
    """Several trained single-label classifiers with one label set, weighted (e.g. by dev accuracy) and
    combined as in PET (`combine="logits"`, the default) or as a mixture; it predicts, evaluates, saves and
    loads like one classifier (`promptft eval`, `predict`, `serve` and `distill` take its folder). It is
    not trained as one: train the members, or distil the ensemble into one model (`promptft distill`).

        clf = EnsembleClassifier([clf_a, clf_b], scores=[0.81, 0.91], names=["manual", "searched"])
        clf.save_pretrained("runs/ensemble")  # members/<name>/ + promptft_config.json
    """

    def __init__(
        self,
        members: Sequence[BaseClassifier],
        scores: Sequence[float] | None = None,
        *,
        combine: str = "logits",
        names: Sequence[str] | None = None,
    ) -> None:
        members = list(members)
        if not members:
            raise ConfigError("an ensemble needs at least one member classifier")
        if combine not in COMBINE:
            raise ConfigError(f"unknown ensemble combination {combine!r}: use one of {', '.join(COMBINE)}")
        labels = list(members[0].labels)
        orders = [label_order(labels, m.labels) for m in members]
        for m in members:
            if not isinstance(m.objective, SingleLabel):
                raise ConfigError(
                    f"an ensemble combines single-label classifiers; a member has the {m.objective.name} "
                    "objective"
                )
        names = [str(n) for n in names] if names is not None else [str(i) for i in range(len(members))]
        if len(names) != len(members) or len(set(names)) != len(names):
            raise ConfigError(f"give one distinct name per ensemble member, got {names}")
        if any(not n or "/" in n or n.startswith(".") for n in names):
            raise ConfigError(f"ensemble member names become folder names: {names} has an unusable one")
        self.members = members
        self.names = names
        self.labels = labels
        self.fields = tuple(dict.fromkeys(f for m in members for f in m.fields))
        self.combine = combine
        # how to read data for it (columns, label map): the ensemble recipe sets the members' job's, since
        # an ensemble folder has no job.yaml of its own (promptft.recipes.evaluate.data_config_for)
        self.data_spec: dict | None = None
        self.adapter = members[0].adapter
        self.module = _EnsembleModule(members, ensemble_weights(scores, len(members)), combine, orders)

    @property
    def weights(self) -> torch.Tensor:
        """The members' normalised weights (the module's buffer, so they move with it)."""
        return self.module.weights

    def encode(self, examples):
        return list(zip(*(m.encode(examples) for m in self.members), strict=True))

    def length_of(self, encoded) -> int:  # type: ignore[override]
        return max(m.length_of(e) for m, e in zip(self.members, encoded, strict=True))

    def fit(self, *args, **kwargs):
        raise PromptFTError(
            "an ensemble is not trained as one: train its members, or distil it into one model "
            "(promptft distill --teacher <its folder>)"
        )

    @property
    def base_model(self) -> str:
        bases = dict.fromkeys(str(getattr(m, "base_model", "?")) for m in self.members)
        return " + ".join(bases)

    def describe(self) -> str:
        parts = [f"{n} (weight {w:.2f})" for n, w in zip(self.names, self.weights.tolist(), strict=True)]
        return f"ensemble ({self.combine}) of {len(self.members)}: " + ", ".join(parts)

    def saved_config(self) -> dict:
        from promptft.classifiers.saving import FORMAT_VERSION

        return {
            "type": ENSEMBLE_TYPE,
            "format_version": FORMAT_VERSION,
            "base_model": self.base_model,
            "adapter": self.adapter.name,
            "labels": self.labels,
            "fields": list(self.fields),
            "members": self.names,
            "weights": [round(w, 6) for w in self.weights.tolist()],
            "combine": self.combine,
            **({"data": self.data_spec} if self.data_spec else {}),
        }

    def save_pretrained(self, directory: str | Path, *, overwrite: bool = False) -> None:
        """Each member in its own folder (`members/<name>/`, its usual format) plus the weights; refuses
        to replace a saved classifier unless `overwrite=True`."""
        from promptft.classifiers.saving import save_folder, write_config

        def write(folder: Path) -> None:
            for name, member in zip(self.names, self.members, strict=True):
                member.save_pretrained(folder / MEMBERS_DIR / name)
            write_config(folder, self.saved_config(), self.card_details())

        save_folder(directory, overwrite, write)

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device=None, dtype=None) -> EnsembleClassifier:
        from promptft.classifiers import load_classifier
        from promptft.classifiers.saving import read_config

        directory = Path(directory)
        config = read_config(directory, ENSEMBLE_TYPE)
        names = config.get("members") or []
        if not names:
            raise ModelError(f"{directory} names no ensemble members: the saved ensemble is incomplete")
        members = [load_classifier(directory / MEMBERS_DIR / n, device=device, dtype=dtype) for n in names]
        ensemble = cls(members, config.get("weights"), combine=config.get("combine", "logits"), names=names)
        ensemble.data_spec = config.get("data")
        return ensemble
