"""PromptClassifier (backbone + template + verbalizer) and the standard fine-tuning baseline beside it.

Both share one API: `fit`, `predict`, `predict_proba`, `evaluate`, `save_pretrained`, `from_pretrained`.
Training itself lives in `promptft.training`; `fit` is a convenience that delegates there.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from promptft.adapters import AdapterSettings, LoraSettings, adapter_settings, apply_lora
from promptft.data import Example
from promptft.errors import DataError, ModelError, PromptFTError
from promptft.evaluation.metrics import classification_metrics
from promptft.models.backbones import Backbone, pad_token_id
from promptft.models.loading import default_device, default_dtype, load_backbone
from promptft.prompts.encoding import EncodedPrompt
from promptft.prompts.template import Template
from promptft.prompts.verbalizer import Verbalizer

CONFIG_FILE = "promptft_config.json"
# 2: the adapter is named ("adapter": "lora") and its settings live only in peft's adapter_config.json.
FORMAT_VERSION = 2

log = logging.getLogger(__name__)

Inputs = Sequence[Example] | Sequence[str] | Sequence[Mapping[str, str]]


def as_examples(inputs: Inputs | Example | str, fields: Sequence[str]) -> list[Example]:
    """Accept Examples, plain strings (for one-field templates) or dicts of field -> text."""
    if isinstance(inputs, str | Example | Mapping):
        inputs = [inputs]  # type: ignore[list-item]
    out: list[Example] = []
    for item in inputs:  # type: ignore[union-attr]
        if isinstance(item, Example):
            out.append(item)
        elif isinstance(item, str):
            if len(fields) != 1:
                raise DataError(
                    f"got a plain string, but the template needs fields {list(fields)}: "
                    "pass dicts or Examples with those fields"
                )
            out.append(Example({fields[0]: item}))
        elif isinstance(item, Mapping):
            label = item.get("label")
            out.append(
                Example(
                    {k: str(v) for k, v in item.items() if k != "label"},
                    None if label is None else str(label),
                )
            )
        else:
            raise DataError(
                f"cannot classify an input of type {type(item).__name__}: pass strings, dicts or Examples"
            )
    return out


class BaseClassifier:
    """What the trainer and the benchmark need from any classifier."""

    labels: list[str]
    fields: tuple[str, ...]
    module: nn.Module  # the trainable torch module
    peft_model: Any = None  # the peft wrapper when LoRA is applied

    # ----- to implement -----
    def encode(self, examples: Sequence[Example]) -> list[Any]:
        raise NotImplementedError

    def label_logits(self, encoded: Sequence[Any]) -> torch.Tensor:
        """`[batch, n_labels]` scores (log-space); gradients flow when the module is in training.

        Always `self.module(encoded)`: the trainer calls the (possibly DDP-wrapped) module itself, so
        whatever a classifier computes must live in its module's forward."""
        return self.module(encoded)

    @staticmethod
    def length_of(encoded: Any) -> int:
        return len(encoded.input_ids)

    def save_pretrained(self, directory: str | Path) -> None:
        raise NotImplementedError

    # ----- shared -----
    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def label_index(self, examples: Sequence[Example]) -> list[int]:
        index = {label: i for i, label in enumerate(self.labels)}
        out = []
        for ex in examples:
            if ex.label is None:
                raise DataError("an example has no label: training and evaluation need labelled data")
            if ex.label not in index:
                raise DataError(
                    f"unknown label {ex.label!r}: this classifier knows {self.labels}; "
                    "fix the label map or add label words for it"
                )
            out.append(index[ex.label])
        return out

    def predict_proba(self, inputs: Inputs, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Probabilities `[n, n_labels]` in `self.labels` order, in input order."""
        examples = as_examples(inputs, self.fields)
        if not examples:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return self.predict_proba_encoded(self.encode(examples), batch_size, progress)

    def predict_proba_encoded(
        self, encoded: Sequence[Any], batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        # Sorting by length cuts padding; results are put back in input order.
        order = sorted(range(len(encoded)), key=lambda i: self.length_of(encoded[i]))
        probs = np.zeros((len(encoded), len(self.labels)), dtype=np.float32)
        was_training = self.module.training
        self.module.eval()
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        iterator = batches
        if progress:
            from rich.progress import track

            iterator = track(batches, description="predicting", transient=True)
        try:
            with torch.inference_mode():
                for batch in iterator:
                    logits = self.label_logits([encoded[i] for i in batch])
                    probs[batch] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        finally:
            self.module.train(was_training)
        return probs

    def predict(self, inputs: Inputs, batch_size: int = 32) -> list[str]:
        probs = self.predict_proba(inputs, batch_size)
        return [self.labels[i] for i in probs.argmax(axis=1)]

    def evaluate(
        self, examples: Sequence[Example], batch_size: int = 32, progress: bool = False
    ) -> dict[str, float]:
        examples = as_examples(examples, self.fields)
        if not examples:
            raise DataError("cannot evaluate on an empty split: check the file and its label column")
        self.label_index(examples)  # fail early on unknown labels
        probs = self.predict_proba(examples, batch_size, progress)
        predicted = [self.labels[i] for i in probs.argmax(axis=1)]
        return classification_metrics([ex.label for ex in examples], predicted, self.labels)

    def fit(
        self,
        train: Sequence[Example],
        dev: Sequence[Example] | None = None,
        config=None,
        run_dir: str | Path | None = None,
    ):
        """Train through `promptft.training.Trainer` (imported here: training sits above this layer)."""
        from promptft.training import TrainConfig, Trainer

        trainer = Trainer(self, config or TrainConfig(), run_dir=run_dir)
        return trainer.train(train, dev)

    def enable_training_cache(self) -> bool:
        """Let the trainer cache what frozen layers compute (no-op unless the model supports it)."""
        return False

    def disable_training_cache(self) -> None:
        pass

    def parameter_counts(self) -> tuple[int, int]:
        """(trainable, total) parameters, each shared tensor counted once."""
        params = list(self.module.parameters())
        return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)

    def describe_trainable(self) -> str:
        trainable, total = self.parameter_counts()
        share = 100 * trainable / total if total else 0.0
        return f"trainable parameters: {trainable:,} of {total:,} ({share:.3g}%)"

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The parameters that training changes (all for full FT, LoRA's for LoRA)."""
        return {n: p.detach().clone() for n, p in self.module.named_parameters() if p.requires_grad}

    def load_trainable_state(self, state: Mapping[str, torch.Tensor]) -> None:
        params = dict(self.module.named_parameters())
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value)


def _write_config(directory: Path, config: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2))


def _read_config(directory: str | Path, expected_type: str) -> dict:
    path = Path(directory) / CONFIG_FILE
    if not path.exists():
        raise ModelError(f"{directory} holds no {CONFIG_FILE}: point at a folder written by save_pretrained")
    config = json.loads(path.read_text())
    if config.get("type") != expected_type:
        raise ModelError(
            f"{directory} holds a {config.get('type')!r} classifier, not {expected_type!r}: "
            f"load it with {'HeadClassifier' if config.get('type') == 'head' else 'PromptClassifier'}.from_pretrained"
        )
    if "adapter" not in config:  # format 1 named it "finetune" and kept LoRA settings twice
        config["adapter"] = config.get("finetune", "full")
    return config


def _write_weights(directory: Path, adapter: AdapterSettings, model, tokenizer, peft_model) -> None:
    """peft adapters in peft's own format (adapter/); full fine-tuning the whole model (model/); frozen
    nothing but the config (the base model is named there)."""
    if adapter.uses_peft:
        peft_model.save_pretrained(directory / "adapter")
    elif adapter.name == "full":
        model.save_pretrained(directory / "model")
        tokenizer.save_pretrained(directory / "model")


def save_folder(directory: str | Path, overwrite: bool, write: Callable[[Path], None]) -> None:
    """Write a classifier folder atomically: into a temporary sibling, then renamed into place.

    An existing classifier is replaced only with `overwrite=True`, and only once the new one is complete,
    so a crash mid-save never loses the previous one."""
    directory = Path(directory)
    if (directory / CONFIG_FILE).exists() and not overwrite:
        raise ModelError(
            f"{directory} already holds a saved classifier: pass overwrite=True to replace it, "
            "or save to another folder"
        )
    if directory.exists() and not directory.is_dir():
        raise ModelError(f"{directory} is a file: give a folder to save the classifier in")
    if directory.is_dir() and any(directory.iterdir()) and not (directory / CONFIG_FILE).exists():
        raise ModelError(
            f"{directory} is not empty and holds no saved classifier: choose an empty or new folder"
        )
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    try:
        write(tmp)
        old = None
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
            os.replace(directory, old)
        os.replace(tmp, directory)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_peft_adapter(model: nn.Module, adapter_dir: Path):
    from peft import PeftModel

    if not (adapter_dir / "adapter_config.json").exists():
        raise ModelError(f"{adapter_dir} holds no adapter_config.json: the saved classifier is incomplete")
    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)


class PromptScorer(nn.Module):
    """The trainable module of a PromptClassifier: encoded prompts -> label logits `[batch, n_labels]`.

    Word scores come from the backbone's forward; a label with several words combines them by
    log-sum-exp (any of its words) or mean."""

    def __init__(self, backbone: Backbone, words, verbalizer: Verbalizer) -> None:
        super().__init__()
        self.backbone = backbone
        self.words = words
        self.token_reduction = verbalizer.token_reduction
        self.word_reduction = verbalizer.word_reduction
        self.n_labels = len(verbalizer.labels)

    def forward(self, encoded: Sequence[EncodedPrompt]) -> torch.Tensor:
        scores = self.backbone(encoded, self.words, self.token_reduction)
        labels = torch.tensor(self.words.word_label, device=scores.device)
        member = labels[None, :] == torch.arange(self.n_labels, device=scores.device)[:, None]  # [L, W]
        if self.word_reduction == "mean":
            weights = member.to(scores.dtype) / member.sum(1, keepdim=True)
            return scores @ weights.T
        masked = scores[:, None, :].masked_fill(~member[None], float("-inf"))
        return torch.logsumexp(masked, dim=-1)


class PromptClassifier(BaseClassifier):
    """Classify by asking the LM to fill a template's slot with one of the label words."""

    def __init__(
        self,
        backbone: Backbone,
        template: Template | str,
        verbalizer: Verbalizer | Mapping[str, str | Sequence[str]],
        *,
        max_length: int = 256,
        base_model: str | None = None,
    ) -> None:
        self.backbone = backbone
        self.template = template if isinstance(template, Template) else Template(template)
        self.verbalizer = verbalizer if isinstance(verbalizer, Verbalizer) else Verbalizer(verbalizer)
        self.labels = self.verbalizer.labels
        self.fields = self.template.fields
        self.max_length = max_length
        self.base_model = base_model or backbone.name
        self.adapter: AdapterSettings = adapter_settings("full")  # the model as loaded trains in full
        self.words = self.verbalizer.tokenize(backbone.tokenizer, backbone.leading_space(self.template))
        self.encoder = backbone.make_encoder(self.template, max_length, reserve=self.words.max_tokens - 1)
        self.module = PromptScorer(backbone, self.words, self.verbalizer)

    @classmethod
    def from_model(
        cls,
        model: str = "smollm2-135m",
        template: Template | str = "{text} It was {mask}.",
        label_words: Verbalizer | Mapping[str, str | Sequence[str]] | None = None,
        *,
        kind: str | None = None,
        finetune: str | AdapterSettings = "full",
        lora: LoraSettings | None = None,
        max_length: int = 256,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> PromptClassifier:
        """Load a model by alias, folder or hub id. `finetune`: an adapter name ("full", "lora", "none"
        for zero-shot, "ia3", "prompt_tuning", "p_tuning", "prefix_tuning", "label_embeddings") or
        its settings (e.g. `LoraSettings(r=8)`); see `promptft.adapters`."""
        if label_words is None:
            raise PromptFTError('label_words is required, e.g. {"negative": "terrible", "positive": "great"}')
        backbone = load_backbone(model, kind=kind, device=device, dtype=dtype)
        clf = cls(backbone, template, label_words, max_length=max_length, base_model=model)
        clf.set_finetune(finetune, lora)
        return clf

    @property
    def finetune(self) -> str:
        """The adapter's name ("full", "lora", "none", ...)."""
        return self.adapter.name

    @property
    def lora_settings(self) -> LoraSettings | None:
        return self.adapter if isinstance(self.adapter, LoraSettings) else None

    def set_finetune(self, finetune: str | AdapterSettings, lora: LoraSettings | None = None) -> None:
        """Choose what trains: an adapter name or settings (`lora` is the LoRA settings for "lora")."""
        if lora is not None and finetune == "lora":
            finetune = lora
        self.set_adapter(adapter_settings(finetune))

    def set_adapter(self, adapter: AdapterSettings) -> None:
        if self.backbone.peft_model is not None:
            raise PromptFTError(
                f"this classifier already has a {self.adapter.name} adapter: build a new classifier "
                "(from_model) to train another one"
            )
        label_tokens = [t for word in self.words.word_ids for t in word]
        peft_model = adapter.apply(self.backbone.model, self.backbone.kind, label_tokens)
        if peft_model is not None:
            if hasattr(adapter, "init_from_text"):
                adapter.init_from_text(peft_model, self.backbone.tokenizer)
            self.backbone.attach(peft_model)
            self.peft_model = peft_model
        self.adapter = adapter
        log.info("%s: %s", adapter.name, self.describe_trainable())

    def enable_training_cache(self) -> bool:
        return self.backbone.enable_prefix_cache()

    def disable_training_cache(self) -> None:
        self.backbone.disable_prefix_cache()

    def encode(self, examples: Sequence[Example]) -> list[EncodedPrompt]:
        examples = as_examples(examples, self.fields)
        return [self.encoder.encode(ex.fields) for ex in examples]

    def save_pretrained(self, directory: str | Path, *, overwrite: bool = False) -> None:
        """Adapter (peft format) or full weights (safetensors) plus the prompt as JSON; refuses to replace
        a saved classifier unless `overwrite=True`."""

        def write(folder: Path) -> None:
            _write_weights(
                folder, self.adapter, self.backbone.model, self.backbone.tokenizer, self.peft_model
            )
            _write_config(
                folder,
                {
                    "type": "prompt",
                    "format_version": FORMAT_VERSION,
                    "base_model": self.base_model,
                    "kind": self.backbone.kind,
                    "adapter": self.adapter.name,
                    "template": self.template.text,
                    "verbalizer": self.verbalizer.to_dict(),
                    "labels": self.labels,
                    "max_length": self.max_length,
                },
            )

        save_folder(directory, overwrite, write)

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device=None, dtype=None) -> PromptClassifier:
        from promptft.adapters import adapter_class

        directory = Path(directory)
        config = _read_config(directory, "prompt")
        adapter_cls = adapter_class(config["adapter"])
        source = str(directory / "model") if adapter_cls.name == "full" else config["base_model"]
        backbone = load_backbone(source, kind=config["kind"], device=device, dtype=dtype)
        clf = cls(
            backbone,
            config["template"],
            Verbalizer.from_dict(config["verbalizer"]),
            max_length=config["max_length"],
            base_model=config["base_model"],
        )
        # Settings that shape training only (e.g. LoRA's top_layers) are not needed to predict: peft's
        # adapter_config.json holds everything the forward needs.
        clf.adapter = (
            adapter_cls(**(config.get("lora") or {})) if adapter_cls is LoraSettings else adapter_cls()
        )
        if adapter_cls.uses_peft:
            clf.peft_model = load_peft_adapter(backbone.model, directory / "adapter")
            backbone.attach(clf.peft_model)
        backbone.eval()
        return clf

    def describe(self) -> str:
        return f"prompt {self.template.text!r} words={dict(self.verbalizer.label_words)} on {self.base_model}"


@dataclass(frozen=True)
class EncodedInput:
    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...] | None = None


class HeadScorer(nn.Module):
    """The trainable module of the head baseline: encoded inputs -> log-probabilities `[batch, n_labels]`."""

    def __init__(self, model: nn.Module, pad_id: int) -> None:
        super().__init__()
        self.model = model
        self.pad_id = pad_id

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
        return torch.log_softmax(self.model(**kwargs).logits.float(), dim=-1)


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
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.labels = [str(x) for x in labels]
        self.fields = tuple(fields)
        if not 1 <= len(self.fields) <= 2:
            raise PromptFTError(f"the head baseline takes one or two text fields, got {list(self.fields)}")
        self.max_length = max_length
        self.base_model = base_model
        self.adapter: AdapterSettings = adapter_settings("full")
        self.pad_id = pad_token_id(tokenizer, model.config)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = self.pad_id  # causal LMs need it to find each row's last token
        self.module = HeadScorer(model, self.pad_id)

    @classmethod
    def from_model(
        cls,
        model: str,
        labels: Sequence[str],
        fields: Sequence[str] = ("text",),
        *,
        finetune: str = "full",
        lora: LoraSettings | None = None,
        max_length: int = 256,
        device=None,
        dtype=None,
        seed: int | None = None,
    ) -> HeadClassifier:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from promptft.models.registry import resolve_model

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
        clf = cls(hf, tokenizer, labels, fields, max_length=max_length, base_model=model)
        clf.set_finetune(finetune, lora)
        return clf

    @property
    def finetune(self) -> str:
        return self.adapter.name

    @property
    def lora_settings(self) -> LoraSettings | None:
        return self.adapter if isinstance(self.adapter, LoraSettings) else None

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
            _write_weights(folder, self.adapter, self.model, self.tokenizer, self.peft_model)
            _write_config(
                folder,
                {
                    "type": "head",
                    "format_version": FORMAT_VERSION,
                    "base_model": self.base_model,
                    "adapter": self.adapter.name,
                    "labels": self.labels,
                    "fields": list(self.fields),
                    "max_length": self.max_length,
                },
            )

        save_folder(directory, overwrite, write)

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device=None, dtype=None) -> HeadClassifier:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from promptft.models.registry import resolve_model

        directory = Path(directory)
        config = _read_config(directory, "head")
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


def load_classifier(directory: str | Path, **kwargs) -> BaseClassifier:
    """Load whichever classifier type a folder holds."""
    path = Path(directory) / CONFIG_FILE
    if not path.exists():
        raise ModelError(f"{directory} holds no {CONFIG_FILE}: point at a folder written by save_pretrained")
    kind = json.loads(path.read_text()).get("type")
    cls = {"prompt": PromptClassifier, "head": HeadClassifier}.get(kind)
    if cls is None:
        raise ModelError(f"{path} has unknown classifier type {kind!r}")
    return cls.from_pretrained(directory, **kwargs)
