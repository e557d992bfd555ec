"""Load a backbone (model + tokenizer) by name: alias, local folder or hub id."""

from __future__ import annotations

import logging

import torch

from promptft.errors import ModelError
from promptft.models.backbones import BACKBONES, KINDS, Backbone
from promptft.models.registry import REGISTRY, resolve_model

log = logging.getLogger(__name__)


def detect_kind(config_or_model) -> str:
    """causal / masked / seq2seq / encoder (no LM head), from a loaded model or a config."""
    config = getattr(config_or_model, "config", config_or_model)
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    if config is not config_or_model:  # a model object: its class says what head it has
        archs = type(config_or_model).__name__
    else:
        archs = " ".join(getattr(config, "architectures", None) or [])
    if "ForMaskedLM" in archs:
        return "masked"
    if "ForCausalLM" in archs or "LMHeadModel" in archs or "ForConditionalGeneration" in archs:
        return "causal"
    if not archs:
        from transformers.models.auto.modeling_auto import (
            MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
            MODEL_FOR_MASKED_LM_MAPPING_NAMES,
        )

        # A config alone is ambiguous for BERT-like types (they have causal heads too): most are MLMs.
        if config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
            return "masked"
        if config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
            return "causal"
    return "encoder"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    # bf16 is far slower than fp32 on CPUs without AMX; use it only on a GPU that supports it.
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_backbone(
    name: str,
    *,
    kind: str | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    trust_remote_code: bool = False,
) -> Backbone:
    """Load `name` as a prompt backbone. `kind` overrides detection (causal / masked / seq2seq)."""
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForMaskedLM,
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
    )

    path = resolve_model(name)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"could not load model {name!r} ({exc.__class__.__name__}: {str(exc).splitlines()[0]}). "
            "Offline? Use a local folder or an alias ("
            + ", ".join(REGISTRY)
            + "), or run once online so the Hugging Face cache holds it"
        ) from exc
    kind = kind or detect_kind(config)
    if kind == "encoder":
        raise ModelError(
            f"{name!r} is an encoder without a language-model head, so it cannot fill a prompt's slot: "
            "use it with the standard fine-tuning baseline (HeadClassifier) or SetFit, "
            "or pick a masked, causal or seq2seq LM"
        )
    if kind not in KINDS:
        raise ModelError(f"unknown backbone kind {kind!r}: use one of {KINDS}")
    auto = {"causal": AutoModelForCausalLM, "masked": AutoModelForMaskedLM, "seq2seq": AutoModelForSeq2SeqLM}[
        kind
    ]
    device = torch.device(device) if device is not None else default_device()
    dtype = dtype or default_dtype(device)
    try:
        model = auto.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not load {kind} model {name!r}: {str(exc).splitlines()[0]}") from exc
    model.to(device)
    model.eval()
    return BACKBONES[kind](model, tokenizer, name=name)


def backbone_from_model(model, tokenizer, kind: str | None = None, name: str = "") -> Backbone:
    """Wrap an already-loaded model (used by tests and by users holding a model object)."""
    kind = kind or detect_kind(model)
    if kind not in BACKBONES:
        raise ModelError(f"cannot build a prompt backbone of kind {kind!r}: use one of {KINDS}")
    return BACKBONES[kind](model, tokenizer, name=name)
