"""Standard fine-tuning, the baseline: the same backbone with a new classification head."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from promptft.adapters import AdapterSettings, LoraSettings, adapter_settings, apply_lora
from promptft.classifiers.base import BaseClassifier
from promptft.classifiers.saving import (
    FORMAT_VERSION,
    load_peft_adapter,
    read_config,
    save_folder,
    write_config,
    write_weights,
)
from promptft.data import Example
from promptft.data.inputs import as_examples
from promptft.errors import DataError, ModelError, PromptFTError
from promptft.models.backbones import pad_token_id
from promptft.models.limits import fit_max_length
from promptft.models.loading import default_device, default_dtype
from promptft.objectives import Objective, SingleLabel, objective_from_dict
from promptft.objectives.regression import VALUE_LABEL

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodedInput:
    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...] | None = None


class HeadScorer(nn.Module):
    """The trainable module of the head baseline: encoded inputs -> log-probabilities `[batch, n_labels]`
    (single-label), or the head's raw outputs (`normalise=False`: multi-label log-odds, a regression value)."""

    def __init__(self, model: nn.Module, pad_id: int, normalise: bool = True) -> None:
        super().__init__()
        self.model = model
        self.pad_id = pad_id
        self.normalise = normalise

    def forward(self, encoded: Sequence[EncodedInput]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        width = max(len(e.input_ids) for e in encoded)
        ids = torch.full((len(encoded), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        types = torch.zeros_like(ids) if encoded[0].token_type_ids is not None else None
        for i, e in enumerate(encoded):
            ids[i, : len(e.input_ids)] = torch.tensor(e.input_ids)
            mask[i, : len(e.input_ids)] = 1
            if types is not None:
                types[i, : len(e.input_ids)] = torch.tensor(e.token_type_ids)
        kwargs = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
        if types is not None:
            kwargs["token_type_ids"] = types.to(device)
        logits = self.model(**kwargs).logits.float()
        return torch.log_softmax(logits, dim=-1) if self.normalise else logits


class HeadClassifier(BaseClassifier):
    """Standard fine-tuning: the same backbone with a new classification head (the baseline)."""

    def __init__(
        self,
        model,
        tokenizer,
        labels: Sequence[str],
        fields: Sequence[str] = ("text",),
        *,
        max_length: int = 256,
        base_model: str = "",
        objective: Objective | None = None,
    ) -> None:
        """`objective`: the task type (default single-label). Multi-label: one sigmoid output per label
        (BCE); regression: `labels=["value"]`, one output (MSE)."""
        self.model = model
        self.tokenizer = tokenizer
        self.labels = [str(x) for x in labels]
        self.fields = tuple(fields)
        if not 1 <= len(self.fields) <= 2:
            raise PromptFTError(f"the head baseline takes one or two text fields, got {list(self.fields)}")
        self.max_length = fit_max_length(max_length, model.config, tokenizer, base_model)
        self.base_model = base_model
        self.adapter: AdapterSettings = adapter_settings("full")
        self.pad_id = pad_token_id(tokenizer, model.config)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = self.pad_id  # causal LMs need it to find each row's last token
        self.module = HeadScorer(model, self.pad_id)
        if objective is not None:
            self.objective = objective

    def _objective_changed(self, objective: Objective) -> None:
        # Softmax only for single-label: sigmoid outputs and a regression value are read raw.
        self.module.normalise = isinstance(objective, SingleLabel)

    @classmethod
    def from_model(
        cls,
        model: str,
        labels: Sequence[str] | None = None,
        fields: Sequence[str] = ("text",),
        *,
        objective: Objective | None = None,
        finetune: str = "full",
        lora: LoraSettings | None = None,
        max_length: int = 256,
        device=None,
        dtype=None,
        seed: int | None = None,
    ) -> HeadClassifier:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from promptft.models.registry import resolve_model

        labels = list(labels) if labels is not None else list(objective.labels) if objective else []
        if not labels:
            raise PromptFTError("the head baseline needs its labels (or an objective that names them)")
        if objective is not None and objective.name == "regression" and labels != [VALUE_LABEL]:
            labels = [VALUE_LABEL]  # one output, whatever poles a prompt would use
        path = resolve_model(model)
        if seed is not None:
            torch.manual_seed(seed)  # the new head's initialisation
        device = torch.device(device) if device is not None else default_device()
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            hf = AutoModelForSequenceClassification.from_pretrained(
                path,
                num_labels=len(labels),
                dtype=dtype or default_dtype(device),
                pad_token_id=pad_token_id(tokenizer),
            )
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"could not load {model!r} with a classification head: {str(exc).splitlines()[0]}"
            ) from exc
        hf.to(device)
        if objective is not None and list(objective.labels) != labels:
            objective = objective_from_dict({**objective.to_dict(), "labels": labels}, labels)
        clf = cls(hf, tokenizer, labels, fields, max_length=max_length, base_model=model, objective=objective)
        clf.set_finetune(finetune, lora)
        return clf

    def set_finetune(self, finetune: str | AdapterSettings, lora: LoraSettings | None = None) -> None:
        adapter = adapter_settings(lora if lora is not None and finetune == "lora" else finetune)
        if adapter.name not in ("full", "lora"):
            raise PromptFTError(
                f"the head baseline trains its head: finetune must be 'full' or 'lora', got {adapter.name!r}"
            )
        if isinstance(adapter, LoraSettings):
            from dataclasses import replace

            # The new head is trained in full beside the adapters (a copy: the caller's settings stay).
            adapter = replace(
                adapter, modules_to_save=adapter.modules_to_save or _head_module_names(self.model)
            )
            self.peft_model = apply_lora(self.model, adapter)
        self.adapter = adapter
        log.info("%s: %s", adapter.name, self.describe_trainable())

    def encode(self, examples: Sequence[Example]) -> list[EncodedInput]:
        examples = as_examples(examples, self.fields)
        out = []
        for ex in examples:
            missing = [f for f in self.fields if f not in ex.fields]
            if missing:
                raise DataError(
                    f"example lacks field(s) {missing} (it has {sorted(ex.fields)}): map those columns"
                )
            texts = [ex.fields[f] for f in self.fields]
            enc = self.tokenizer(*texts, truncation=True, max_length=self.max_length)
            types = enc.get("token_type_ids")
            out.append(EncodedInput(tuple(enc["input_ids"]), tuple(types) if types is not None else None))
        return out

    def save_pretrained(self, directory: str | Path, *, overwrite: bool = False) -> None:
        def write(folder: Path) -> None:
            write_weights(folder, self.adapter, self.model, self.tokenizer, self.peft_model)
            write_config(
                folder,
                {
                    "type": "head",
                    "format_version": FORMAT_VERSION,
                    "base_model": self.base_model,
                    "adapter": self.adapter.name,
                    "labels": self.labels,
                    "fields": list(self.fields),
                    "max_length": self.max_length,
                    "objective": self.objective.to_dict(),
                },
                self.card_details(),
            )

        save_folder(directory, overwrite, write)

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device=None, dtype=None) -> HeadClassifier:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from promptft.models.registry import resolve_model

        directory = Path(directory)
        config = read_config(directory, "head")
        device = torch.device(device) if device is not None else default_device()
        dtype = dtype or default_dtype(device)
        if config["adapter"] == "full":
            path = directory / "model"
            model = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype)
            tokenizer = AutoTokenizer.from_pretrained(path)
        else:
            path = resolve_model(config["base_model"])
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForSequenceClassification.from_pretrained(
                path,
                num_labels=len(config["labels"]),
                dtype=dtype,
                pad_token_id=pad_token_id(tokenizer),
            )
        model.to(device)
        clf = cls(
            model,
            tokenizer,
            config["labels"],
            config["fields"],
            max_length=config["max_length"],
            base_model=config["base_model"],
            objective=objective_from_dict(config.get("objective"), config["labels"]),
        )
        if config["adapter"] == "lora":
            clf.adapter = LoraSettings(**(config.get("lora") or {}))
            clf.peft_model = load_peft_adapter(model, directory / "adapter")
        model.eval()
        return clf

    def describe(self) -> str:
        return f"classification head on {self.base_model}"


def _head_module_names(model: nn.Module) -> list[str]:
    """Names of the freshly initialised head modules (`score`, `classifier`, ...), trained in full under LoRA."""
    names = [n for n, _ in model.named_children() if n in ("score", "classifier", "pre_classifier", "pooler")]
    return names or ["score", "classifier"]
