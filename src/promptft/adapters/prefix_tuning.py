"""Prefix tuning: trainable keys and values prepended in every attention layer (Li & Liang, 2021).

The prefix enters as a key/value cache, so the input sequence and the scoring positions do not move.
It cannot be combined with gradient checkpointing (the cache is rebuilt inside checkpointed layers), and
encoder-only masked LMs take no cache, so peft cannot prefix-tune them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

from promptft.adapters.base import PEFT_TASK_TYPES, AdapterSettings, positive, raise_problems
from promptft.errors import ConfigError

# peft hands the prefix to the model as `past_key_values`, which transformers 5.2x renames; the warning is
# peft's to fix and says nothing the user can act on.
warnings.filterwarnings("ignore", message=r"`past_key_values` is deprecated", category=FutureWarning)


@dataclass
class PrefixTuningSettings(AdapterSettings):
    name: ClassVar[str] = "prefix_tuning"
    prompt_learning: ClassVar[bool] = True
    kinds: ClassVar[tuple[str, ...]] = ("causal", "seq2seq")
    default_learning_rate: ClassVar[float] = 1e-2

    num_virtual_tokens: int = 20
    # Reparameterise the prefix through an MLP while training (Li & Liang found it steadier).
    projection: bool = False
    encoder_hidden_size: int = 128

    def validate(self) -> None:
        raise_problems(positive(self, "num_virtual_tokens", "encoder_hidden_size"))

    def apply(self, model, kind, label_token_ids=None):
        checkpointing = getattr(model, "is_activation_checkpointing", None)  # transformers >= 5.2x name
        if checkpointing is None:
            checkpointing = getattr(model, "is_gradient_checkpointing", False)
        if checkpointing:
            raise ConfigError(
                "prefix_tuning cannot be combined with gradient checkpointing: turn checkpointing off, "
                "or use prompt_tuning / lora"
            )
        return super().apply(model, kind, label_token_ids)

    def peft_config(self, model, kind, label_token_ids=()):
        from peft import PrefixTuningConfig

        return PrefixTuningConfig(
            task_type=PEFT_TASK_TYPES[kind],
            num_virtual_tokens=self.num_virtual_tokens,
            prefix_projection=self.projection,
            encoder_hidden_size=self.encoder_hidden_size,
        )
