"""Adapters: how a backbone is made trainable, one file per method, each with a typed settings class.

settings = adapter_settings("lora", r=8)       # or LoraSettings(r=8)
peft_model = settings.apply(model, kind, label_token_ids)
"""

from __future__ import annotations

from typing import Any

from promptft.adapters.base import AdapterSettings
from promptft.adapters.frozen import FrozenSettings
from promptft.adapters.full import FullSettings
from promptft.adapters.ia3 import IA3Settings
from promptft.adapters.label_embeddings import LabelEmbeddingSettings
from promptft.adapters.lora import LoraSettings, apply_lora
from promptft.adapters.p_tuning import PTuningSettings
from promptft.adapters.prefix_tuning import PrefixTuningSettings
from promptft.adapters.prompt_tuning import PromptTuningSettings
from promptft.errors import ConfigError

ADAPTERS: dict[str, type[AdapterSettings]] = {
    cls.name: cls
    for cls in (
        FullSettings,
        FrozenSettings,
        LoraSettings,
        IA3Settings,
        PromptTuningSettings,
        PTuningSettings,
        PrefixTuningSettings,
        LabelEmbeddingSettings,
    )
}
ALIASES = {"frozen": "none", "zero_shot": "none", "prefix": "prefix_tuning", "ptuning": "p_tuning"}


def adapter_class(name: str) -> type[AdapterSettings]:
    key = ALIASES.get(name, name)
    if key not in ADAPTERS:
        import difflib

        close = difflib.get_close_matches(name, list(ADAPTERS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown adapter {name!r}{hint}; choose one of {', '.join(ADAPTERS)}")
    return ADAPTERS[key]


def adapter_settings(adapter: str | AdapterSettings, **options: Any) -> AdapterSettings:
    """Settings from a name and options (or settings as they are); unknown options are a ConfigError."""
    if isinstance(adapter, AdapterSettings):
        if options:
            raise ConfigError(f"options {sorted(options)} given beside ready-made {adapter.name} settings")
        return adapter
    cls = adapter_class(adapter)
    try:
        return cls(**options)
    except TypeError:
        from dataclasses import fields

        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(valid))
        raise ConfigError(
            f"unknown {cls.name} option(s) {unknown}; valid: {', '.join(valid) or 'none'}"
        ) from None


__all__ = [
    "ADAPTERS",
    "AdapterSettings",
    "FrozenSettings",
    "FullSettings",
    "IA3Settings",
    "LabelEmbeddingSettings",
    "LoraSettings",
    "PTuningSettings",
    "PrefixTuningSettings",
    "PromptTuningSettings",
    "adapter_class",
    "adapter_settings",
    "apply_lora",
]
