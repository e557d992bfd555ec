"""Prompt tuning: trainable virtual-token embeddings prepended to the input (Lester et al., 2021).

The virtual tokens come first, so every scoring position moves right by `num_virtual_tokens`; the
backbone reads that shift off the hidden states, so templates and encodings do not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from promptft.adapters.base import PEFT_TASK_TYPES, AdapterSettings, positive, raise_problems


@dataclass
class PromptTuningSettings(AdapterSettings):
    name: ClassVar[str] = "prompt_tuning"
    prompt_learning: ClassVar[bool] = True
    default_learning_rate: ClassVar[float] = 1e-2  # soft prompts need large steps (Lester et al.: 0.3)

    num_virtual_tokens: int = 20
    # Start from the embeddings of this text (repeated to fill the tokens); None: embeddings of tokens
    # sampled from the vocabulary, which Lester et al. found far better than random vectors.
    init_text: str | None = None

    def validate(self) -> None:
        raise_problems(positive(self, "num_virtual_tokens"))

    def peft_config(self, model, kind, label_token_ids=()):
        from peft import PromptTuningConfig

        return PromptTuningConfig(
            task_type=PEFT_TASK_TYPES[kind],
            num_virtual_tokens=self.num_virtual_tokens,
            prompt_tuning_init="SAMPLE_VOCAB",
        )

    def init_from_text(self, peft_model, tokenizer) -> None:
        """Copy the embeddings of `init_text` into the soft prompt (peft's own TEXT init needs a tokenizer
        path to load, which offline models and in-memory models do not have)."""
        if not self.init_text:
            return
        ids = tokenizer(self.init_text, add_special_tokens=False)["input_ids"]
        if not ids:
            return
        ids = (ids * (self.num_virtual_tokens // len(ids) + 1))[: self.num_virtual_tokens]
        import torch

        embeddings = peft_model.get_input_embeddings()
        weight = peft_model.prompt_encoder[peft_model.active_adapter].embedding.weight
        with torch.no_grad():
            weight.copy_(embeddings(torch.tensor(ids, device=weight.device)).to(weight.dtype))
