"""`method_ensemble`: several of the benchmark's methods trained on the same split, their probabilities
combined into one prediction.

Stacking two levers in one model did not add up (the IA3 adapter with demonstrations, a searched template
with demonstrations); this asks whether the same models do better voting. Each member is an ordinary method
run with its own options (`members:` names them; the runner hands over each one's cell options, per-task
changes included), and its dev score is its weight (PET's weighting; `weighting: uniform` for equal
weights). The members' label log-probabilities are averaged (`combine: logits`, PET's) or their
probabilities (`combine: probabilities`). Everything is chosen on the seed's dev split; the training time
is the members' sum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from promptft.bench.methods import METHODS, Fitted, ModelRef, SplitData, method, require_single_label
from promptft.bench.tasks import TaskSpec, task_metrics
from promptft.config.base import check_keys
from promptft.data import Example
from promptft.errors import ConfigError

ENSEMBLE_KEYS = ("members", "weighting", "combine", "eval_batch_size")


class EnsemblePredictor:
    """Members' probabilities, weighted and combined, in `labels` order."""

    def __init__(self, members: Sequence[Any], weights: Sequence[float], labels: Sequence[str], combine: str):
        self.members = list(members)
        self.weights = list(weights)
        self.labels = list(labels)
        self.combine = combine

    def predict_proba(self, inputs: Sequence[Example], batch_size: int = 32) -> np.ndarray:
        total = sum(self.weights)
        combined = np.zeros((len(inputs), len(self.labels)))
        for member, weight in zip(self.members, self.weights, strict=True):
            probs = np.asarray(member.predict_proba(inputs, batch_size=batch_size), dtype=np.float64)
            probs = probs[:, [list(member.labels).index(label) for label in self.labels]]
            combined += (weight / total) * (
                np.log(np.clip(probs, 1e-12, 1.0)) if self.combine == "logits" else probs
            )
        if self.combine == "logits":  # back to probabilities: a softmax of the mean log-probabilities
            combined = np.exp(combined - combined.max(axis=1, keepdims=True))
            combined /= combined.sum(axis=1, keepdims=True)
        return combined

    def predict(self, inputs: Sequence[Example], batch_size: int = 32) -> list[str]:
        if not inputs:
            return []
        return [self.labels[i] for i in self.predict_proba(inputs, batch_size).argmax(axis=1)]


def check_options(config: Mapping[str, Any], where: str = "methods.method_ensemble") -> None:
    check_keys(config, ENSEMBLE_KEYS, where, f"{where.rsplit('.', 1)[-1]} option")
    members = config.get("members")
    if not isinstance(members, Sequence | Mapping) or isinstance(members, str) or len(members) < 2:
        raise ConfigError(
            f"{where}.members lists the methods to combine, at least two, e.g. [prompt_ft_lora, prompt_ft_ia3]"
        )
    unknown = sorted(set(members) - set(METHODS))
    nested = sorted(m for m in members if getattr(METHODS.get(m), "composite", False))
    if unknown or nested:
        raise ConfigError(
            f"{where}.members: unknown or nested method(s) {unknown or nested}: choose from "
            f"{sorted(m for m in METHODS if not getattr(METHODS[m], 'composite', False))}"
        )
    if config.get("weighting", "dev") not in ("dev", "uniform"):
        raise ConfigError(
            f"{where}.weighting is dev (each member's dev score) or uniform, got {config['weighting']!r}"
        )
    if config.get("combine", "logits") not in ("logits", "probabilities"):
        raise ConfigError(f"{where}.combine is logits or probabilities, got {config['combine']!r}")


@method("method_ensemble", task_types=("single_label",), check_options=check_options, composite=True)
def method_ensemble(
    task: TaskSpec, data: SplitData, model: ModelRef, seed: int, config: dict[str, Any]
) -> Fitted:
    """Train every member on the split, weight each by its dev score, combine their probabilities."""
    return train_ensemble("method_ensemble", task, data, model, seed, config)


# The same vote with SetFit (its own MiniLM encoder) among the members: a different model family errs on
# different inputs. A row of its own, so that no prompt-only row is credited with SetFit's help.
@method("ensemble_with_setfit", task_types=("single_label",), check_options=check_options, composite=True)
def ensemble_with_setfit(
    task: TaskSpec, data: SplitData, model: ModelRef, seed: int, config: dict[str, Any]
) -> Fitted:
    """Prompt fine-tuned models and SetFit trained on the split, voting (weights: dev scores)."""
    return train_ensemble("ensemble_with_setfit", task, data, model, seed, config)


def train_ensemble(
    name: str, task: TaskSpec, data: SplitData, model: ModelRef, seed: int, config: dict[str, Any]
) -> Fitted:
    require_single_label(task, name)
    check_options(config, f"methods.{name}")
    members = config["members"]
    if not isinstance(members, Mapping):
        raise ConfigError(f"{name} needs each member's options: run it through the benchmark runner")
    batch = int(config.get("eval_batch_size", 32))
    fitted: dict[str, Fitted] = {}
    for member_name, options in members.items():
        member = METHODS[member_name](task, data, model, seed, options)
        if not hasattr(member.predictor, "predict_proba") or not hasattr(member.predictor, "labels"):
            raise ConfigError(f"{name}: {member_name} gives no label probabilities to combine; leave it out")
        if member.dev is None:
            member.dev = task_metrics(task, data.dev, member.predictor.predict(data.dev, batch_size=batch))
        fitted[member_name] = member
    uniform = config.get("weighting", "dev") == "uniform"
    weights = [1.0 if uniform else max(float(f.dev[task.metric]), 1e-6) for f in fitted.values()]  # type: ignore[index]
    predictor = EnsemblePredictor(
        [f.predictor for f in fitted.values()], weights, task.label_names, config.get("combine", "logits")
    )
    info = {
        "members": {
            member_name: {
                "weight": weight,
                "dev": f.dev,
                "train_time_s": f.train_time_s,
                "steps": f.steps,
                "best_step": f.best_step,
                **({"stopped_early": f.info["stopped_early"]} if "stopped_early" in f.info else {}),
            }
            for (member_name, f), weight in zip(fitted.items(), weights, strict=True)
        },
        "weighting": "uniform" if uniform else "dev",
        "combine": config.get("combine", "logits"),
    }
    return Fitted(
        predictor,
        train_time_s=sum(f.train_time_s for f in fitted.values()),
        steps=sum(f.steps for f in fitted.values()),
        info=info,
    )
