"""Model resolution (offline registry, GGUF import, cache) and prompt backbones."""

from promptft.models.backbones import Backbone, CausalBackbone, MaskedBackbone, Seq2SeqBackbone
from promptft.models.loading import backbone_from_model, detect_kind, load_backbone
from promptft.models.registry import DEFAULT_MODEL, REGISTRY, resolve_model

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
