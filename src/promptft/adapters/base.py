"""What every adapter is: a typed settings dataclass that knows how to make a backbone trainable.

An adapter decides which parameters train. The peft-based ones build a peft config, wrap the backbone's
model with `get_peft_model` and attach the wrapper to the backbone, whose forward then runs *through*
`PeftModel.forward` (where soft prompts and prefixes are added). They are saved only in peft's own format
(`adapter/adapter_config.json` + `adapter_model.safetensors`); promptft's JSON records just the name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from promptft.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

# peft task types per backbone kind. Masked LMs use FEATURE_EXTRACTION: peft has no masked-LM task, and
# that one is the class that prepends soft prompts while leaving the model's own head in place.
PEFT_TASK_TYPES = {"causal": "CAUSAL_LM", "seq2seq": "SEQ_2_SEQ_LM", "masked": "FEATURE_EXTRACTION"}


@dataclass
class AdapterSettings:
    """Base of every adapter's settings. Subclasses are dataclasses with defaults for every field."""

    name: ClassVar[str] = ""
    uses_peft: ClassVar[bool] = True
    # Soft prompts and prefixes act inside PeftModel.forward and change the sequence the model sees.
    prompt_learning: ClassVar[bool] = False
    # Backbone kinds peft supports for this method (others get a clear error instead of a peft traceback).
    kinds: ClassVar[tuple[str, ...]] = ("causal", "masked", "seq2seq")
    # What a user gets when they give no learning rate: adapters train far fewer weights and want more.
    default_learning_rate: ClassVar[float] = 3e-4

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError for settings peft would reject later with a traceback."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # ----- applying -----
    def apply(self, model: nn.Module, kind: str, label_token_ids: list[int] | None = None):
        """Make `model` trainable this way; returns the peft wrapper (None for full and frozen)."""
        self.check_kind(kind)
        config = self.peft_config(model, kind, label_token_ids or [])
        try:
            return wrap(model, config)
        except (ValueError, TypeError, AttributeError, NotImplementedError) as exc:
            raise ConfigError(
                f"peft could not apply {self.name} to {type(model).__name__}: {str(exc).splitlines()[0]}"
            ) from exc

    def peft_config(self, model: nn.Module, kind: str, label_token_ids: list[int]):
        raise NotImplementedError

    def check_kind(self, kind: str) -> None:
        if kind not in self.kinds:
            raise ConfigError(
                f"{self.name} does not work with {kind} models in peft (it supports {', '.join(self.kinds)}): "
                "choose another adapter, e.g. lora"
            )


def wrap(model: nn.Module, config):
    """`peft.get_peft_model`, without the deprecation warning transformers 5.2x raises when peft reads
    `is_gradient_checkpointing`: it is peft's to fix and tells a user nothing they can act on."""
    import warnings

    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)


def positive(settings: AdapterSettings, *names: str) -> list[str]:
    """Problems for fields that must be >= 1."""
    return [
        f"{settings.name} {n} must be >= 1, got {getattr(settings, n)}"
        for n in names
        if getattr(settings, n) < 1
    ]


def raise_problems(problems: list[str]) -> None:
    if problems:
        raise ConfigError("; ".join(problems))
