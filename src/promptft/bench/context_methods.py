"""Benchmark methods of issue 11 that change what the LM reads (registered when `promptft.bench.methods`
is imported):

* `demonstrations`: LoRA prompt FT with LM-BFF's demonstrations in context (one training example per label,
  its label word filled in; chosen by MiniLM similarity by default; averaged over `n_sets` sets at test).
* `channel`: LoRA fine-tuning of channel scoring, P(text | label) (Min et al. 2022), on the task's causal
  prompt turned around (`channel_template`: "Review: {text}\\nSentiment: {mask}" -> "Sentiment: {mask}\\n
  Review: {text}"); the step-0 dev evaluation in the history is zero-shot channel scoring.
"""

from __future__ import annotations

from typing import Any

from promptft.bench.methods import (
    Fitted,
    ModelRef,
    SplitData,
    _PreparedPredictor,
    _prompt_method,
    job_of,
    method,
    require_single_label,
)
from promptft.bench.tasks import TaskSpec
from promptft.errors import ConfigError


@method("demonstrations", job=("prompt", "lora"), task_types=("single_label",))
def demonstrations(
    task: TaskSpec, data: SplitData, model: ModelRef, seed: int, config: dict[str, Any]
) -> Fitted:
    """LoRA prompt FT with one demonstration per label in context (LM-BFF), averaged over sets at test."""
    require_single_label(task, "demonstrations")
    config = dict(config)
    config.setdefault("demonstrations", {"selection": "similar"})
    return _prompt_method(task, data, model, seed, config, "lora")


@method("channel", job=("channel", "lora"), task_types=("single_label",))
def channel(task: TaskSpec, data: SplitData, model: ModelRef, seed: int, config: dict[str, Any]) -> Fitted:
    """LoRA fine-tuning of channel scores log P(text | label), cross-entropy over the labels."""
    from promptft.classifiers import ChannelClassifier, channel_template
    from promptft.training import Trainer, set_seed

    require_single_label(task, "channel")
    if model.kind != "causal":
        raise ConfigError(f"channel scoring needs a causal LM; {model.name} is {model.kind}")
    spec = task.prompt_for(model.kind)
    template = channel_template(spec.template)
    job = job_of(config, seed, "channel", "lora")
    set_seed(seed)
    clf = ChannelClassifier(
        model.load_backbone(),
        template,
        spec.label_words,
        max_length=job.prompt.max_length,
        base_model=model.name,
        objective=task.objective(),
    )
    clf.set_finetune(job.model.adapter_settings())
    trainable, total = clf.parameter_counts()
    result = Trainer(clf, job.train).train(spec.prepare(data.train), spec.prepare(data.dev))
    return Fitted(
        _PreparedPredictor(clf, spec.prepare),
        train_time_s=result.train_time_s,
        steps=result.steps,
        best_step=result.best_step,
        dev=result.best_dev,
        info={
            "prompt": {**spec.to_dict(), "template": template, "direct_template": spec.template},
            "kind": model.kind,
            "adapter": clf.adapter.to_dict(),
            "trainable_parameters": trainable,
            "total_parameters": total,
            "stopped_early": result.stopped_early,
            "history": result.history,
        },
    )
