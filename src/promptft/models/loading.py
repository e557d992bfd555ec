"""Load a backbone (model + tokenizer) by name: alias, local folder or hub id."""

from __future__ import annotations

import logging
from pathlib import Path

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


def available_devices() -> list[str]:
    """The device names this torch can use here: cpu, and cuda:N / mps when present."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names


def check_device(device: str | torch.device | None) -> torch.device:
    """The device to use, or ModelError naming the devices that exist (before anything is loaded:
    torch's own errors for `cuda` on a CPU-only build, or `gpu`, are tracebacks)."""
    if device is None:
        return default_device()
    available = available_devices()
    hint = f"available here: {', '.join(available)}"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ModelError(f"unknown device {str(device)!r}: {hint}") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = "has no CUDA support (a CPU-only build)" if torch.version.cuda is None else "sees no GPU"
            raise ModelError(f"device {str(device)!r} is not available: this torch {build}; {hint}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ModelError(f"device {str(device)!r} does not exist: {hint}")
        return dev
    if str(dev) in available or dev.type in available:
        return dev
    raise ModelError(f"device {str(device)!r} is not available: {hint}")


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

    device = check_device(device)
    path = resolve_model(name)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        folder = Path(name).expanduser()
        missing = "" if folder.exists() else f"no such folder: {folder.resolve()}, and "
        raise ModelError(
            f"could not load model {name!r}: {missing}as a hub id: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0]}. Offline? Use a local folder or an alias ("
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
