"""The `auto` benchmark method (issue 11): the `train --auto` recipe (`promptft.recipes.auto`) on a cell's
split: the task's prompt scored zero-shot on dev, label words and templates searched, the finalists
fine-tuned with LoRA (budget allowing), the best on dev kept; the cell's train time is the whole recipe.
Options: the prompt methods' (learning_rate, max_steps, lora, ...) plus `budget_minutes`, `generate`,
`ensemble` (the recipe's ensemble stage, on by default) and `demonstrations_finalist` (off by default; a
mapping of demonstrations options, e.g. `{selection: similar, n_sets: 2}`: the best prompt is also
fine-tuned with demonstrations in context and kept if it wins on dev).

It is registered here, not in `promptft.bench`, because the benchmark sits below the recipes (it runs
methods, the recipes run it); `promptft.recipes.bench` imports this module, so `promptft bench run` has it.
"""

from __future__ import annotations

import tempfile
from typing import Any

from promptft.bench.methods import (
    Fitted,
    ModelRef,
    SplitData,
    _PreparedPredictor,
    job_of,
    method,
    require_single_label,
)
from promptft.bench.search_methods import JOB_KEYS
from promptft.bench.tasks import TaskSpec
from promptft.config import apply_overrides
from promptft.config.base import check_keys
from promptft.recipes.auto import auto_train_examples

AUTO_KEYS = ("budget_minutes", "generate", "ensemble", "demonstrations_finalist")


@method("auto", task_types=("single_label",))
def auto(task: TaskSpec, data: SplitData, model: ModelRef, seed: int, config: dict[str, Any]) -> Fitted:
    """The `train --auto` recipe within `budget_minutes`: searches, LoRA fine-tunes, the best on dev kept."""
    from promptft.classifiers import load_classifier

    require_single_label(task, "auto")
    check_keys(config, [*JOB_KEYS, *AUTO_KEYS], "methods.auto", "auto option")
    budget = float(config.get("budget_minutes", 30))
    generate = bool(config.get("generate", True))
    ensemble = bool(config.get("ensemble", True))
    demonstrations = config.get("demonstrations_finalist")
    spec = task.prompt_for(model.kind)
    job = job_of({k: v for k, v in config.items() if k not in AUTO_KEYS}, seed, "prompt", "lora")
    with tempfile.TemporaryDirectory(prefix="promptft-auto-") as tmp:
        job = apply_overrides(
            job,
            {
                "model.name": str(model.path),
                "model.kind": model.kind,
                **({"model.device": model.device} if model.device else {}),
                "prompt.template": spec.template,
                "prompt.label_words": dict(spec.label_words),
                "task.type": "single_label",
                "output": f"{tmp}/run",
            },
        )
        result = auto_train_examples(
            job,
            spec.prepare(data.train),
            spec.prepare(data.dev),
            budget,
            task_type=task.template_type,
            generate=generate,
            ensemble=ensemble,
            demonstrations=demonstrations,
        )
        clf = load_classifier(f"{tmp}/run/best", device=model.device)
    chosen = result.chosen
    info = {
        "kind": model.kind,
        "prompt": spec.to_dict(),
        "chosen": chosen,
        "beats_manual": result.beats_manual,
        "manual": result.manual,
        "decisions": [
            {"stage": d.stage, "outcome": d.outcome, "reason": d.reason, "seconds": round(d.seconds, 2)}
            for d in result.decisions
        ],
        "budget_minutes": budget,
        **({"demonstrations_finalist": demonstrations} if demonstrations is not None else {}),
    }
    finalists = (
        next((d.details.get("finalists") for d in result.decisions if d.stage == "choice"), None) or []
    )
    winner = next((f for f in finalists if f.get("name") == chosen.get("name")), {})
    return Fitted(
        _PreparedPredictor(clf, spec.prepare),
        train_time_s=result.seconds,
        best_step=int(winner.get("best_step") or 0),
        dev=chosen.get("dev"),
        info=info,
    )
