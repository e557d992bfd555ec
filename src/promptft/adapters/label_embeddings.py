"""Trainable label-word embeddings: only the label words' rows of the output embedding train.

The label words' output-embedding rows are exactly the weights that turn the hidden state at the slot into
label scores, so training just those rows moves the decision boundary with a few thousand parameters.
peft's trainable tokens do it; with tied embeddings the input rows are the same weights and train too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from promptft.adapters.base import AdapterSettings
from promptft.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn


@dataclass
class LabelEmbeddingSettings(AdapterSettings):
    name: ClassVar[str] = "label_embeddings"
    default_learning_rate: ClassVar[float] = 3e-3

    def peft_config(self, model: nn.Module, kind, label_token_ids=()):
        from peft import TrainableTokensConfig

        if not label_token_ids:
            raise ConfigError(
                "label_embeddings needs the label words' token ids: use it on a PromptClassifier"
            )
        output = model.get_output_embeddings()
        tied = output is None or output.weight is model.get_input_embeddings().weight
        target = None if tied else [_module_name(model, output)]
        return TrainableTokensConfig(token_indices=sorted(set(label_token_ids)), target_modules=target)


def _module_name(model: nn.Module, module: nn.Module) -> str:
    return next(name for name, m in model.named_modules() if m is module)
