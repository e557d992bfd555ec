"""The models at hand (`promptft models`): kind, parameters, size on disk and estimated training memory,
read from config and weight-file headers without loading a model. Returns dataclasses; the CLI prints."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from promptft.errors import ModelError

GB = 1e9  # memory and disk sizes are reported in GB = 10^9 bytes

# Training memory model (fp32 on CPU; a GPU in bf16 needs less):
FULL_FT_BYTES_PER_PARAM = 16  # weights 4 + gradients 4 + AdamW's two moments 8
FROZEN_BYTES_PER_PARAM = 4  # LoRA: frozen fp32 weights; the adapters add ~16 bytes per adapter parameter
DEFAULT_BATCH, DEFAULT_SEQ = 8, 128  # what the activation estimate assumes


# ---------------------------------------------------------------------------------------------------------
# what a model is: kind, size, memory


@dataclass
class ModelInfo:
    name: str  # alias or folder
    source: str  # "registry" | "cache" | "path"
    path: str | None
    kind: str | None  # causal | masked | seq2seq | encoder
    n_params: int | None
    params_from: str | None  # "safetensors header" | "gguf header" | "config estimate"
    size_bytes: int | None  # on disk
    full_ft_gb: float | None  # estimated training memory, full fine-tuning
    lora_gb: float | None  # estimated training memory, LoRA r=8
    ready: bool  # loads offline without a conversion step
    status: str  # what to do to use it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def safetensors_parameters(folder: str | Path) -> int | None:
    """Parameter count from the safetensors headers (reads a few KB, never the weights)."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for path in files:
        with path.open("rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
        for name, info in header.items():
            if name != "__metadata__":
                total += math.prod(info["shape"])
    return total


def gguf_parameters(path: str | Path) -> int | None:
    """Parameter count from a GGUF file's tensor table (its header; the weights are not read)."""
    scalar = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    try:
        with Path(path).open("rb") as f:

            def read(fmt: str):
                return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))[0]

            def skip_value(kind: int) -> None:
                if kind in scalar:
                    f.seek(scalar[kind], 1)
                elif kind == 8:
                    f.seek(read("Q"), 1)
                elif kind == 9:
                    inner, count = read("I"), read("Q")
                    if inner in scalar:
                        f.seek(scalar[inner] * count, 1)
                    else:
                        for _ in range(count):
                            skip_value(inner)
                else:
                    raise ValueError(f"unknown GGUF value type {kind}")

            if f.read(4) != b"GGUF":
                return None
            read("I")  # version
            n_tensors, n_kv = read("Q"), read("Q")
            for _ in range(n_kv):
                f.seek(read("Q"), 1)  # key
                skip_value(read("I"))
            total = 0
            for _ in range(n_tensors):
                f.seek(read("Q"), 1)  # name
                dims = [read("Q") for _ in range(read("I"))]
                read("I")  # type
                read("Q")  # offset
                total += math.prod(dims)
            return total
    except (OSError, ValueError, struct.error):
        return None


def _config_dims(config: Any) -> dict[str, int | None]:
    def get(*names: str) -> int | None:
        for n in names:
            v = getattr(config, n, None)
            if isinstance(v, int):
                return v
        return None

    hidden = get("hidden_size", "d_model", "n_embd", "dim")
    return {
        "hidden": hidden,
        "layers": get("num_hidden_layers", "num_layers", "n_layer", "n_layers"),
        "heads": get("num_attention_heads", "num_heads", "n_head"),
        "intermediate": get("intermediate_size", "d_ff", "n_inner", "ffn_dim")
        or (4 * hidden if hidden else None),
        "vocab": get("vocab_size"),
        "decoder_layers": get("num_decoder_layers"),
    }


def config_parameters(config: Any) -> int | None:
    """A rough parameter count from the config (embeddings + 4h^2 attention + 3 h*i MLP per layer)."""
    d = _config_dims(config)
    if not (d["hidden"] and d["layers"] and d["vocab"]):
        return None
    h, i = d["hidden"], d["intermediate"] or 4 * d["hidden"]
    layers = d["layers"] + (d["decoder_layers"] or 0)
    return d["vocab"] * h + layers * (4 * h * h + 3 * h * i)


def activation_bytes(config: Any, batch: int = DEFAULT_BATCH, seq: int = DEFAULT_SEQ) -> int | None:
    """Activations kept for the backward pass, fp32 (Korthikanti et al. 2022: s*b*h*(34 + 5*a*s/h) bytes
    per layer in 16-bit, doubled for fp32). A coarse estimate; real use varies with the attention kernel."""
    d = _config_dims(config)
    if not (d["hidden"] and d["layers"]):
        return None
    h, a = d["hidden"], d["heads"] or max(1, d["hidden"] // 64)
    layers = d["layers"] + (d["decoder_layers"] or 0)
    return int(2 * layers * seq * batch * h * (34 + 5 * a * seq / h))


def lora_parameters(config: Any, r: int = 8) -> int | None:
    """Adapter parameters of LoRA on every linear layer: r * (in + out) for q, k, v, o and a 3-matrix MLP."""
    d = _config_dims(config)
    if not (d["hidden"] and d["layers"]):
        return None
    h, i = d["hidden"], d["intermediate"] or 4 * d["hidden"]
    return d["layers"] * r * (4 * 2 * h + 3 * (h + i))


def estimate_training_memory(
    n_params: int | None,
    config: Any = None,
    batch: int = DEFAULT_BATCH,
    seq: int = DEFAULT_SEQ,
    lora_r: int = 8,
) -> tuple[float | None, float | None]:
    """(full fine-tuning GB, LoRA GB): fp32 weights, gradients and AdamW states plus activations."""
    if not n_params:
        return None, None
    act = (activation_bytes(config, batch, seq) if config is not None else None) or 0
    adapters = (lora_parameters(config, lora_r) if config is not None else None) or int(0.005 * n_params)
    full = FULL_FT_BYTES_PER_PARAM * n_params + act
    lora = FROZEN_BYTES_PER_PARAM * n_params + FULL_FT_BYTES_PER_PARAM * adapters + act
    return round(full / GB, 2), round(lora / GB, 2)


def folder_size(folder: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def describe_folder(folder: str | Path, *, name: str | None = None, source: str = "path") -> ModelInfo:
    """Kind, parameters, size and memory estimates of a Hugging Face model folder (weights not loaded)."""
    from transformers import AutoConfig

    from promptft.models.loading import detect_kind

    folder = Path(folder).expanduser()
    if not (folder / "config.json").exists():
        raise ModelError(
            f"{folder} holds no config.json: point --path at a Hugging Face model folder (one written by "
            "save_pretrained)"
        )
    try:
        config = AutoConfig.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the config in {folder}: {str(exc).splitlines()[0]}") from exc
    n_params = safetensors_parameters(folder)
    params_from = "safetensors header" if n_params else None
    if not n_params:
        n_params = config_parameters(config)
        params_from = "config estimate" if n_params else None
    full, lora = estimate_training_memory(n_params, config)
    return ModelInfo(
        name=name or str(folder),
        source=source,
        path=str(folder),
        kind=detect_kind(config),
        n_params=n_params,
        params_from=params_from,
        size_bytes=folder_size(folder),
        full_ft_gb=full,
        lora_gb=lora,
        ready=True,
        status="ready",
    )


def list_models(paths: Sequence[str | Path] = (), *, include_cache: bool = True) -> list[ModelInfo]:
    """Registry aliases, converted checkpoints in the cache, and the given local folders."""
    from promptft.models.registry import REGISTRY, converted_dir, is_ready, package_dir
    from promptft.settings import cache_dir

    out: list[ModelInfo] = []
    seen: set[Path] = set()
    for alias, entry in REGISTRY.items():
        if is_ready(alias):
            folder = package_dir(entry) / entry.subdir if entry.subdir else converted_dir(alias)  # type: ignore[operator]
            info = describe_folder(folder, name=alias, source="registry")
            seen.add(Path(folder).resolve())
            out.append(info)
            continue
        pkg = package_dir(entry)
        n_params = size = None
        params_from = None
        if pkg is not None and entry.gguf_file and (pkg / entry.gguf_file).exists():
            gguf = pkg / entry.gguf_file
            n_params, size = gguf_parameters(gguf), gguf.stat().st_size
            params_from = "gguf header" if n_params else None
        full, lora = estimate_training_memory(n_params)
        status = "converts on first use" if pkg is not None else f"not installed: {entry.make_target}"
        out.append(
            ModelInfo(
                alias, "registry", None, entry.kind, n_params, params_from, size, full, lora, False, status
            )
        )
    if include_cache:
        models = cache_dir() / "models"
        for folder in sorted(models.iterdir()) if models.is_dir() else []:
            if folder.name in REGISTRY or not (folder / "config.json").exists() or ".tmp" in folder.name:
                continue
            if folder.resolve() not in seen:
                seen.add(folder.resolve())
                out.append(describe_folder(folder, name=folder.name, source="cache"))
    for path in paths:
        folder = Path(path).expanduser()
        if folder.resolve() not in seen:
            seen.add(folder.resolve())
            out.append(describe_folder(folder, source="path"))
    return out
