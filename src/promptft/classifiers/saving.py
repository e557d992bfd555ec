"""The on-disk format of a saved classifier: a folder with promptft_config.json plus the weights.

peft adapters are saved in peft's own format (`adapter/`), full fine-tuning as a whole model (`model/`),
a frozen model as nothing but the config. Folders are written to a temporary sibling and renamed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from torch import nn

from promptft.adapters import AdapterSettings
from promptft.classifiers.card import write_model_card
from promptft.errors import ModelError
from promptft.files import write_dir_atomically

CONFIG_FILE = "promptft_config.json"
CALIBRATION_FILE = "label_calibration.safetensors"  # a multi-label prompt's per-label scale and bias
# Loading checks it: a folder of a newer format is a clear error (upgrade promptft); older ones load:
# 1: the adapter was "finetune" and LoRA settings were kept twice (read_config converts it).
# 2: the adapter is named ("adapter": "lora") and its settings live only in peft's adapter_config.json.
# Written beside it (no format change): "promptft_version", "card" (the model card's notes) and README.md.
FORMAT_VERSION = 2


def write_config(directory: Path, config: dict, card: dict | None = None) -> None:
    """promptft_config.json (with the promptft version and the model card's notes), then the model card
    (README.md, `promptft.classifiers.card`); call it once the weights are in `directory`."""
    from promptft.version import __version__

    directory.mkdir(parents=True, exist_ok=True)
    config = {**config, "promptft_version": __version__, "card": card or {}}
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=_plain))
    write_model_card(directory)


def _plain(value):
    """numpy / torch scalars in card notes as plain numbers."""
    return value.item() if hasattr(value, "item") else str(value)


_LOADERS = {
    "head": "HeadClassifier.from_pretrained",
    "prompt": "PromptClassifier.from_pretrained",
    "yes_no": "YesNoClassifier.from_pretrained",
    "channel": "ChannelClassifier.from_pretrained",
    "ensemble": "EnsembleClassifier.from_pretrained",
}


def read_config(directory: str | Path, expected_type: str) -> dict:
    path = Path(directory) / CONFIG_FILE
    if not path.exists():
        raise ModelError(f"{directory} holds no {CONFIG_FILE}: point at a folder written by save_pretrained")
    config = json.loads(path.read_text())
    if config.get("type") != expected_type:
        raise ModelError(
            f"{directory} holds a {config.get('type')!r} classifier, not {expected_type!r}: "
            f"load it with {_LOADERS.get(config.get('type'), 'promptft.load_classifier')}"
        )
    version = config.get("format_version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelError(
            f"{directory} was saved in format {version!r} by promptft {config.get('promptft_version', '?')}; "
            f"this promptft ({_installed_version()}) reads formats up to {FORMAT_VERSION}: upgrade it "
            "(pip install -U promptft)"
        )
    if "adapter" not in config:  # format 1 named it "finetune" and kept LoRA settings twice
        config["adapter"] = config.get("finetune", "full")
    return config


def _installed_version() -> str:
    from promptft.version import __version__

    return __version__


def write_weights(directory: Path, adapter: AdapterSettings, model, tokenizer, peft_model) -> None:
    """peft adapters in peft's own format (adapter/); full fine-tuning the whole model (model/); frozen
    nothing but the config (the base model is named there)."""
    if adapter.uses_peft:
        peft_model.save_pretrained(directory / "adapter")
    elif adapter.name == "full":
        model.save_pretrained(directory / "model")
        tokenizer.save_pretrained(directory / "model")


def save_folder(directory: str | Path, overwrite: bool, write: Callable[[Path], None]) -> None:
    """Write a classifier folder atomically (`<folder>.tmp`, then renamed into place).

    An existing classifier is replaced only with `overwrite=True`, and only once the new one is complete,
    so a crash mid-save never loses the previous one."""
    check_save_target(directory, overwrite)
    write_dir_atomically(Path(directory), write)


def check_save_target(
    directory: str | Path, overwrite: bool, replace_hint: str = "pass overwrite=True"
) -> None:
    """Fail where saving a classifier to `directory` would replace one without `overwrite`, or land in a
    file or a folder of other things (callers check early, before models load; `replace_hint`: the flag
    that allows replacing, e.g. "pass --overwrite")."""
    directory = Path(directory)
    if (directory / CONFIG_FILE).exists() and not overwrite:
        raise ModelError(
            f"{directory} already holds a saved classifier: {replace_hint} to replace it, "
            "or save to another folder"
        )
    if directory.exists() and not directory.is_dir():
        raise ModelError(f"{directory} is a file: give a folder to save the classifier in")
    if directory.is_dir() and any(directory.iterdir()) and not (directory / CONFIG_FILE).exists():
        raise ModelError(
            f"{directory} is not empty and holds no saved classifier: choose an empty or new folder"
        )


def load_peft_adapter(model: nn.Module, adapter_dir: Path):
    from peft import PeftModel

    if not (adapter_dir / "adapter_config.json").exists():
        raise ModelError(f"{adapter_dir} holds no adapter_config.json: the saved classifier is incomplete")
    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)


def write_tensors(path: Path, module: nn.Module) -> None:
    """A small module's parameters as safetensors (e.g. the multi-label calibration beside peft's files)."""
    from safetensors.torch import save_file

    save_file({n: p.detach().cpu().contiguous() for n, p in module.named_parameters()}, str(path))


def read_tensors(path: Path, module: nn.Module) -> None:
    from safetensors.torch import load_file

    if not path.exists():
        raise ModelError(f"{path} is missing: the saved classifier is incomplete; save it again")
    module.load_state_dict(load_file(str(path)))
    module.initialised = True  # type: ignore[assignment]
