"""The chat fine-tuning job (`promptft chat-train --config job.yaml`, `promptft.recipes.chat_train`):
model, data, training and output sections, validated like every other config (unknown keys name the nearest
valid one). Training settings follow the classifier's TrainConfig (same names, same meaning) plus the
chat-only ones (max_length, overflow, packing, max_minutes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import Field, model_validator

from promptft.adapters import adapter_class
from promptft.config.base import Section


class ChatModelConfig(Section):
    name: str = "smollm2-135m"
    """Base model: alias, local folder or hub id."""
    finetune: str = "lora"
    """Adapter from promptft.adapters: lora, full or ia3."""
    adapter: dict[str, Any] = Field(default_factory=dict)
    """Options of the adapter, e.g. {r: 16, alpha: 32} for LoRA."""
    template: str = "auto"
    """Chat template: auto (the tokenizer's own, else the built-in default), tokenizer, default, a .jinja file or
    Jinja text."""
    system_prompt: str | None = None
    """Added as the first message of every conversation that has none."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        name = adapter_class(self.finetune).name
        if name not in ("lora", "full", "ia3"):
            raise ValueError(f"model.finetune must be lora, full or ia3 for chat, got {self.finetune!r}")
        self.finetune = name
        adapter_class(name)(**self.adapter)  # the adapter's own checks
        return self


class ChatDataConfig(Section):
    train: str
    """Training conversations: JSONL (messages, prompt/completion or instruction records), an SGD folder, or a
    DailyDialog file."""
    dev: str | None = None
    """Dev conversations (pick the best step); without one, dev_fraction of train is held out."""
    test: str | None = None
    """Test conversations (perplexity before/after)."""
    dev_fraction: float = 0.1
    """Share of the training conversations held out as dev when no dev file is given (0 = none)."""
    limit_train: int | None = None
    """Use only this many training conversations (after the seeded shuffle)."""
    limit_dev: int | None = None
    """Use only this many dev conversations."""
    max_length: int = 1024
    """Longest conversation in tokens."""
    overflow: Literal["truncate", "drop"] = "truncate"
    """What happens to a longer conversation: truncate it or drop it (counted in the log either way)."""
    sgd_service_results: int = Field(default=0, ge=0)
    """SGD folders: before each assistant turn that called a service, a tool message with the call, its result
    count and its first N result rows (0: utterances only, as the published text)."""


class ChatTrainConfig(Section):
    key_word = "training option"

    learning_rate: float | None = None
    """AdamW peak learning rate; None = the adapter's default (LoRA 3e-4, full 1e-5)."""
    batch_size: int = Field(8, ge=1)
    """Conversations (or packed rows) per forward pass."""
    grad_accum: int = Field(1, ge=1)
    """Forward passes per optimizer step."""
    max_steps: int = Field(200, ge=1)
    """Optimizer steps."""
    max_minutes: float | None = None
    """Stop (keeping the best step so far) once training has run this long; None = no limit."""
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    eval_every: int = Field(50, ge=1)
    """Steps between dev evaluations (assistant-token loss)."""
    eval_batch_size: int = Field(8, ge=1)
    eval_at_start: bool = True
    """Evaluate the untrained model too: the run never ends worse than its start on dev."""
    early_stopping_patience: int | None = None
    """Evaluations without improvement before stopping; None = never stop early."""
    seed: int = 42
    group_by_length: bool = True
    """Batches of similar length: little padding."""
    packing: bool = False
    """Pack several conversations into each row of max_length tokens (block-diagonal attention)."""
    checkpoint_every: int | None = None
    """Steps between checkpoints; None = at every evaluation."""
    progress: bool = True


class ChatJob(Section):
    model: ChatModelConfig = Field(default_factory=ChatModelConfig)
    data: ChatDataConfig
    train: ChatTrainConfig = Field(default_factory=ChatTrainConfig)
    output: str | None = None
    """Run folder (config, metrics.jsonl, checkpoint/, best/, final_metrics.json)."""
    device: str | None = None

    @classmethod
    def from_yaml(cls, path: str | Path) -> ChatJob:
        return cls.parse(yaml.safe_load(Path(path).read_text()) or {}, where=str(path))

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    def learning_rate(self) -> float:
        if self.train.learning_rate is not None:
            return self.train.learning_rate
        return adapter_class(self.model.finetune).default_learning_rate
