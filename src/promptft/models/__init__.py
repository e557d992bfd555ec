"""Model resolution (offline registry, GGUF import, cache) and prompt backbones.

The registry is imported at once (configs name models without loading torch); backbones and loading on
first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from promptft.models.registry import DEFAULT_MODEL, REGISTRY, resolve_model

_LAZY = {
    "Backbone": "promptft.models.backbones",
    "CausalBackbone": "promptft.models.backbones",
    "MaskedBackbone": "promptft.models.backbones",
    "Seq2SeqBackbone": "promptft.models.backbones",
    "backbone_from_model": "promptft.models.loading",
    "detect_kind": "promptft.models.loading",
    "load_backbone": "promptft.models.loading",
}

__all__ = [
    "Backbone",
    "CausalBackbone",
    "MaskedBackbone",
    "Seq2SeqBackbone",
    "backbone_from_model",
    "detect_kind",
    "load_backbone",
    "DEFAULT_MODEL",
    "REGISTRY",
    "resolve_model",
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'promptft.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from promptft.models.backbones import Backbone, CausalBackbone, MaskedBackbone, Seq2SeqBackbone
    from promptft.models.loading import backbone_from_model, detect_kind, load_backbone
