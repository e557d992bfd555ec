"""`ChatModel`: a causal LM, its tokenizer, its chat format and (optionally) an adapter from the adapters
registry; the assistant-token loss; saving and loading (peft adapter or whole model, safetensors + JSON).

The loss runs the model's decoder once and applies the output head only at the positions that carry loss
(assistant tokens), never building `[batch, seq, vocab]` logits for system and user text.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from promptft.adapters import AdapterSettings, adapter_settings
from promptft.chat.encoding import IGNORE
from promptft.chat.templates import ChatFormat, end_of_turn_ids, resolve_template
from promptft.errors import ConfigError, ModelError
from promptft.files import write_dir_atomically
from promptft.models.limits import fit_max_length

log = logging.getLogger(__name__)

SAVED = "chat_model.json"
_CHAT_ADAPTERS = ("full", "lora", "ia3")  # adapters that change weights in place (no soft prompts)


def saved_model_dir(path: str | Path) -> Path | None:
    """The saved chat model in `path`: the folder itself, or a run folder's `best/`."""
    path = Path(path).expanduser()
    for candidate in (path, path / "best"):
        if (candidate / SAVED).is_file():
            return candidate
    return None


class ChatModel:
    def __init__(
        self,
        model,
        tokenizer,
        fmt: ChatFormat,
        base_model: str = "",
        adapter: AdapterSettings | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.format = fmt
        self.base_model = base_model
        self.adapter = adapter
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.stop_ids = end_of_turn_ids(tokenizer, fmt)

    # ----- building -----
    @classmethod
    def from_pretrained(
        cls,
        name: str | Path,
        *,
        adapter: str | AdapterSettings | None = None,
        template: str | None = None,
        system_prompt: str | None = None,
        device: str | None = None,
        merge: bool = False,
        dtype: torch.dtype | None = None,
    ) -> ChatModel:
        """A base model (alias, folder, hub id) or a saved chat model / run folder. `adapter` ("lora",
        "full", LoraSettings(...)) makes a base model trainable; `merge` folds a saved LoRA into the weights
        (faster generation). `template`/`system_prompt` override the saved or the tokenizer's own."""
        saved = saved_model_dir(name)
        if saved is not None:
            return cls._load_saved(saved, template, system_prompt, device, merge, dtype)
        model, tokenizer = _load_causal(str(name), device, dtype)
        fmt = resolve_template(tokenizer, template, system_prompt)
        chat = cls(model, tokenizer, fmt, base_model=str(name))
        if adapter is not None:
            chat.add_adapter(adapter)
        return chat

    @classmethod
    def _load_saved(cls, folder: Path, template, system_prompt, device, merge, dtype) -> ChatModel:
        from transformers import AutoTokenizer

        info = json.loads((folder / SAVED).read_text())
        tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
        if info["weights"] == "full":
            model, _ = _load_causal(str(folder / "model"), device, dtype, tokenizer=tokenizer)
            adapter = adapter_settings("full")
        else:
            from peft import PeftModel

            base, _ = _load_causal(info["base_model"], device, dtype, tokenizer=tokenizer)
            model = PeftModel.from_pretrained(base, folder / "adapter")
            adapter = adapter_settings(info["adapter"], **info.get("adapter_options", {}))
            if merge:
                model = model.merge_and_unload()
            model.eval()
        saved_fmt = ChatFormat(**info["format"])
        fmt = ChatFormat(
            saved_fmt.template if template is None else resolve_template(tokenizer, template).template,
            saved_fmt.system_prompt if system_prompt is None else system_prompt,
            saved_fmt.source if template is None else "user",
        )
        return cls(model, tokenizer, fmt, base_model=info["base_model"], adapter=adapter)

    def add_adapter(self, adapter: str | AdapterSettings) -> None:
        settings = adapter_settings(adapter) if isinstance(adapter, str) else adapter
        if settings.name not in _CHAT_ADAPTERS:
            raise ConfigError(
                f"adapter {settings.name!r} is not supported for chat fine-tuning; use one of "
                f"{', '.join(_CHAT_ADAPTERS)}"
            )
        wrapped = settings.apply(self.model, "causal")
        if wrapped is not None:
            self.model = wrapped
        self.adapter = settings

    # ----- parts -----
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _base(self):
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    def fit_length(self, max_length: int, setting: str = "max_length") -> int:
        """`max_length`, or the most tokens this model reads when that is fewer (with a warning): a longer
        conversation would fail in a learned position table (GPT-2) or read positions a rotary model never saw."""
        return fit_max_length(
            max_length, self._base().config, self.tokenizer, self.base_model, setting=setting
        )

    def token_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """(summed negative log-likelihood of the label tokens, how many there are)."""
        base = self._base()
        decoder = getattr(base, base.base_model_prefix)
        head = base.get_output_embeddings()
        batch = {k: v.to(self.device) for k, v in batch.items()}
        labels = batch.pop("labels")
        hidden = decoder(**batch, use_cache=False).last_hidden_state[:, :-1]
        target = labels[:, 1:]
        selected = target != IGNORE
        logits = head(hidden[selected]).float()
        cap = getattr(base.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        nll = F.cross_entropy(logits, target[selected], reduction="sum")
        return nll, int(selected.sum())

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value.to(params[name].device))

    # ----- saving -----
    def save_pretrained(self, path: str | Path) -> None:
        """Atomically: `chat_model.json`, `tokenizer/`, and `adapter/` (peft's format) or `model/`."""
        peft = hasattr(self.model, "peft_config")

        def build(tmp: Path) -> None:
            if peft:
                self.model.save_pretrained(tmp / "adapter")
            else:
                self.model.save_pretrained(tmp / "model", safe_serialization=True)
            self.tokenizer.save_pretrained(tmp / "tokenizer")
            adapter = self.adapter.name if self.adapter is not None else "full"
            info: dict[str, Any] = {
                "base_model": self.base_model,
                "weights": "adapter" if peft else "full",
                "adapter": adapter,
                "adapter_options": self.adapter.to_dict() if self.adapter is not None and peft else {},
                "format": self.format.to_dict(),
            }
            (tmp / SAVED).write_text(json.dumps(info, indent=2))

        write_dir_atomically(Path(path), build)


def _load_causal(name: str, device: str | None, dtype, tokenizer=None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from promptft.models.loading import check_device, default_dtype
    from promptft.models.registry import REGISTRY, resolve_model

    dev = check_device(device)
    try:
        path = resolve_model(name)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or default_dtype(dev))
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"could not load causal LM {name!r}: {str(exc).splitlines()[0]}. Use a local folder, a run "
            f"folder, or an alias ({', '.join(REGISTRY)})"
        ) from None
    model.to(dev)
    model.eval()
    return model, tokenizer
