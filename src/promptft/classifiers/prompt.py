"""PromptClassifier: classify by asking the LM to fill a template's slot with one of the label words."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from promptft.adapters import AdapterSettings, LoraSettings, adapter_settings
from promptft.classifiers.base import BaseClassifier
from promptft.classifiers.saving import (
    CALIBRATION_FILE,
    FORMAT_VERSION,
    load_peft_adapter,
    read_config,
    read_tensors,
    save_folder,
    write_config,
    write_tensors,
    write_weights,
)
from promptft.data import Example
from promptft.data.inputs import as_examples
from promptft.errors import ConfigError, PromptFTError
from promptft.models.backbones import Backbone
from promptft.models.loading import load_backbone
from promptft.models.shared_prefix import can_share_prefix, shared_prefix_scores, shares_in_batches
from promptft.objectives import MultiLabel, Objective, SingleLabel, objective_from_dict
from promptft.prompts.calibration import (
    ContextualCalibration,
    apply_prior,
    calibration_name,
    calibration_parts,
    content_free_prior,
)
from promptft.prompts.demonstrations import (
    DemonstrationEncoder,
    DemonstrationPool,
    DemonstrationSettings,
    DemoPrompts,
    Embed,
)
from promptft.prompts.encoding import EncodedPrompt
from promptft.prompts.template import Template
from promptft.prompts.verbalizer import Verbalizer

log = logging.getLogger(__name__)


class LabelCalibration(nn.Module):
    """Per-label scale and bias on the label-word log-probabilities: `scale * log p(word) + bias`, the
    log-odds that a multi-label objective puts through a sigmoid.

    Why: the words' log-probabilities share one softmax over the vocabulary, so `sigmoid(log p)` < 0.5
    for every label (and several words cannot all be likely at once). An affine map per label turns each
    into an independent log-odds while keeping the score the LM was pre-trained to give (no change to the
    backbone's contract; the unnormalised logit would drop the softmax's shared term but has an arbitrary,
    per-position offset). The bias is set from the training data before the first step
    (`PromptClassifier.prepare_training`): at small learning rates (LoRA 3e-4) it would barely move from 0.
    """

    def __init__(self, n_labels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(n_labels))
        self.bias = nn.Parameter(torch.zeros(n_labels))
        self.initialised = False  # set once by the data-dependent initialisation, or by loading

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        return scores * self.scale.to(scores.dtype) + self.bias.to(scores.dtype)

    @torch.no_grad()
    def initialise(self, scores: torch.Tensor, targets: torch.Tensor) -> None:
        """Centre each label on the training data: the median example gets the label's prior (its share
        of positives, kept in [1%, 99%]) as probability."""
        prior = targets.float().mean(0).clamp(0.01, 0.99)
        self.scale.fill_(1.0)
        self.bias.copy_(torch.logit(prior) - scores.float().median(0).values)
        self.initialised = True


class PromptScorer(nn.Module):
    """The trainable module of a PromptClassifier: encoded prompts -> label logits `[batch, n_labels]`.

    Word scores come from the backbone's forward; a label with several words combines them by
    log-sum-exp (any of its words) or mean. A multi-label classifier adds a per-label calibration.

    With contextual calibration (`content_free` set: encoded content-free prompts), the module in eval
    mode divides out the label distribution those prompts get (`promptft.prompts.calibration`); training
    sees the raw scores. The bias is computed with the current weights and recomputed whenever a weight
    has changed since (a parameter's in-place version counter moves with every optimizer step or load)."""

    def __init__(self, backbone: Backbone, words, verbalizer: Verbalizer) -> None:
        super().__init__()
        self.backbone = backbone
        self.words = words
        self.token_reduction = verbalizer.token_reduction
        self.word_reduction = verbalizer.word_reduction
        self.n_labels = len(verbalizer.labels)
        # Multi-token words on a causal LM reuse the prompt's KV cache (word_scores); False runs it again.
        self.share_prefix = True
        self.calibration: LabelCalibration | None = None
        self.content_free: list[EncodedPrompt] | None = None
        self._prior: tuple[tuple, torch.Tensor] | None = None

    def forward(self, encoded: Sequence[EncodedPrompt] | Sequence[DemoPrompts]) -> torch.Tensor:
        if encoded and isinstance(encoded[0], DemoPrompts):
            scores = self.averaged_over_sets(encoded)  # type: ignore[arg-type]
        else:
            scores = self.label_scores(encoded)  # type: ignore[arg-type]
        if self.calibration is not None:
            return self.calibration(scores)
        if self.content_free is not None and not self.training:
            return apply_prior(scores, self.content_free_prior())
        return scores

    def _weights_key(self) -> tuple:
        return tuple((id(p), p._version) for p in self.parameters())

    def content_free_prior(self) -> torch.Tensor:
        """`p_cf` `[n_labels]` for the current weights (cached until a weight changes)."""
        if self.content_free is None:
            raise PromptFTError("this classifier is not calibrated: set_calibration('contextual') first")
        key = self._weights_key()
        if self._prior is None or self._prior[0] != key:
            was_training = self.training
            self.eval()
            try:
                with torch.no_grad():
                    prior = content_free_prior(self.label_scores(self.content_free))
            finally:
                self.train(was_training)
            self._prior = (key, prior)
        return self._prior[1]

    def averaged_over_sets(self, encoded: Sequence[DemoPrompts]) -> torch.Tensor:
        """Inputs with demonstrations: the log of the label probabilities averaged over each input's
        demonstration sets `[batch, n_labels]` (one set, as in training: the log-softmax of its scores)."""
        flat = [p for e in encoded for p in e.prompts]
        logp = self.label_scores(flat).float().log_softmax(-1)
        out, start = [], 0
        for e in encoded:
            n = len(e.prompts)
            out.append(torch.logsumexp(logp[start : start + n], dim=0) - math.log(n))
            start += n
        return torch.stack(out)

    def word_scores(self, encoded: Sequence[EncodedPrompt]) -> torch.Tensor:
        """Each label word's log-probability at the slot `[batch, n_words]`.

        A causal LM scores a k-token word on the prompt again followed by the word's first k-1 tokens (one
        more row per multi-token word). With the prompt's KV cache shared, only those few tokens run again:
        label names such as "Sci/Tech" no longer double the cost (`benchmarks/results/multi_token_words.json`)."""
        if (
            self.share_prefix
            and encoded
            and self.words.max_tokens > 1
            and can_share_prefix(self.backbone)
            and shares_in_batches(self.backbone)
            and min(len(p.input_ids) for p in encoded) > 1
        ):
            rows = [[p.input_ids] for p in encoded]
            return shared_prefix_scores(self.backbone, rows, self.words, self.token_reduction)
        return self.backbone(encoded, self.words, self.token_reduction)

    def label_scores(self, encoded: Sequence[EncodedPrompt]) -> torch.Tensor:
        """Each label's log-probability at the slot `[batch, n_labels]` (before any calibration)."""
        scores = self.word_scores(encoded)
        labels = torch.tensor(self.words.word_label, device=scores.device)
        member = labels[None, :] == torch.arange(self.n_labels, device=scores.device)[:, None]  # [L, W]
        if self.word_reduction == "mean":
            weights = member.to(scores.dtype) / member.sum(1, keepdim=True)
            return scores @ weights.T
        masked = scores[:, None, :].masked_fill(~member[None], float("-inf"))
        return torch.logsumexp(masked, dim=-1)


class PromptClassifier(BaseClassifier):
    """Classify by asking the LM to fill a template's slot with one of the label words."""

    contextual: ContextualCalibration | None = None  # subclasses (channel scoring) have no calibration

    @property
    def peft_model(self):
        """The peft wrapper (None without a peft adapter): the backbone's, where forward routes through it."""
        return self.backbone.peft_model

    def __init__(
        self,
        backbone: Backbone,
        template: Template | str,
        verbalizer: Verbalizer | Mapping[str, str | Sequence[str]],
        *,
        max_length: int = 256,
        base_model: str | None = None,
        objective: Objective | None = None,
        calibrate: str | None = None,
        content_free: Sequence[str] | None = None,
        demonstrations: DemonstrationSettings | None = None,
    ) -> None:
        """`objective`: the task type (default single-label); its labels are the verbalizer's.
        `calibrate="contextual"`: divide out the label bias of content-free inputs at prediction time
        (`content_free`, default "N/A", "" and "[MASK]"); "temperature": a softmax temperature fitted on
        dev; "contextual+temperature": both. See `set_calibration`.
        `demonstrations`: one training example per label, its label word filled in, shown with every
        input (LM-BFF; `promptft.prompts.demonstrations`); the pool is the training set (`fit` sets it;
        zero-shot: `set_demonstration_pool`)."""
        self.backbone = backbone
        self.template = template if isinstance(template, Template) else Template(template)
        self.verbalizer = verbalizer if isinstance(verbalizer, Verbalizer) else Verbalizer(verbalizer)
        self.labels = self.verbalizer.labels
        self.fields = self.template.fields
        self.max_length = max_length = backbone.fit_length(max_length)
        self.base_model = base_model or backbone.name
        self.adapter: AdapterSettings = adapter_settings("full")  # the model as loaded trains in full
        self.words = self.verbalizer.tokenize(backbone.tokenizer, backbone.leading_space(self.template))
        self.demonstrations = demonstrations
        self.demonstration_pool: DemonstrationPool | None = None
        self.embed: Embed | None = None  # similar demonstrations: texts -> vectors (default: MiniLM)
        if demonstrations is None:
            self.encoder = backbone.make_encoder(self.template, max_length, reserve=self.words.max_tokens - 1)
        else:
            if backbone.kind == "seq2seq" and backbone.slot_text is None:
                raise ConfigError(
                    "demonstrations need a slot in the encoder input; this seq2seq model has no sentinel "
                    "token: use a causal or masked LM, or turn demonstrations off"
                )
            self.encoder = DemonstrationEncoder(
                backbone.tokenizer,
                self.template,
                [words[0] for words in self.verbalizer.label_words.values()],
                slot_text=backbone.slot_text,
                max_length=max_length,
                reserve=self.words.max_tokens - 1,
                separator=demonstrations.separator,
            )
        self.module = PromptScorer(backbone, self.words, self.verbalizer)
        dropped = [seg.value for seg in self.template.after_slot if seg.kind == "field"]
        if backbone.kind == "causal" and dropped:
            log.warning(
                "template %r puts field(s) %s after {mask}: a causal LM reads only the text before the slot, "
                'so they are not seen; move them before {mask}, e.g. "{sentence1}\\n{sentence2}\\nSame? {mask}"',
                self.template.text,
                dropped,
            )
        if objective is not None:
            self.objective = objective
        self.contextual: ContextualCalibration | None = None
        if calibrate is not None or content_free is not None:  # else keep the objective's own temperature
            self.set_calibration(calibrate, content_free)

    @property
    def calibrate(self) -> str | None:
        """The prediction-time calibration: "contextual", "temperature", "contextual+temperature" or None."""
        temperature = bool(getattr(self.objective, "tune_temperature", False))
        return calibration_name(self.contextual is not None, temperature)

    def set_calibration(self, method: str | None, content_free: Sequence[str] | None = None) -> None:
        """Calibration at prediction time (single-label objectives only; saved with the classifier):

        * "contextual" (Zhao et al. 2021): content-free inputs (each fills every field) go through the
          template; their average label distribution `p_cf` is divided out of every prediction, dev
          evaluations during `fit` included (training itself sees the raw scores). Moves which label wins.
        * "temperature" (Guo et al. 2017): `predict_proba` gives `softmax(logits / T)`, T fitted on labelled
          dev examples by `fit` (its dev split) or `tune(dev)` (after training, or zero-shot). Changes
          confidence only, never the predicted label. Until fitted, T = 1.
        * "contextual+temperature": both, T fitted on the contextually calibrated scores.
        * None / "none": neither (a fitted temperature is reset to 1)."""
        contextual, temperature = calibration_parts(method)
        if content_free is not None and not contextual:
            raise PromptFTError("content_free inputs are only used with calibrate='contextual'")
        if (contextual or temperature) and not isinstance(self.objective, SingleLabel):
            raise PromptFTError(
                f"calibrate={method!r} is for a single-label objective (probabilities over mutually "
                f"exclusive labels); the {self.objective.name} objective has none: drop calibrate"
            )
        if isinstance(self.objective, SingleLabel):
            if self.objective.tune_temperature and not temperature:
                self.objective.calibration_temperature = 1.0  # the fitted one goes with the setting
            self.objective.tune_temperature = temperature
        if not contextual:
            self.contextual, self.module.content_free, self.module._prior = None, None, None
            return
        settings = (
            ContextualCalibration(tuple(content_free))
            if content_free is not None
            else (ContextualCalibration())
        )
        inputs = settings.inputs(self.fields, self.backbone.slot_text)
        self.contextual = settings
        self.module.content_free = [self.encoder.encode(values) for values in inputs]
        self.module._prior = None

    def content_free_prior(self) -> list[float]:
        """The label distribution `p_cf` of the content-free inputs (labels order), with current weights."""
        return self.module.content_free_prior().tolist()

    def _objective_changed(self, objective: Objective) -> None:
        if getattr(self, "contextual", None) is not None and objective.name != "single_label":
            raise PromptFTError(
                f"this classifier uses contextual calibration, which needs a single-label objective, not "
                f"{objective.name}: call set_calibration(None) first"
            )
        if getattr(self, "demonstrations", None) is not None and not isinstance(objective, SingleLabel):
            raise ConfigError(
                f"demonstrations fill in one label word per example, so they are for single-label tasks, "
                f"not {objective.name}: turn demonstrations off"
            )
        if isinstance(objective, MultiLabel):
            if self.module.calibration is None:
                device = next(self.backbone.model.parameters()).device
                self.module.calibration = LabelCalibration(len(self.labels)).to(device)
        else:
            self.module.calibration = None

    def prepare_training(self, encoded: Sequence[EncodedPrompt], targets: torch.Tensor) -> None:
        """Multi-label: set the calibration's bias from (up to 256 of) the training examples' scores."""
        calibration = self.module.calibration
        if calibration is None or calibration.initialised:
            return
        take = list(range(min(len(encoded), 256)))
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.inference_mode():
                scores = torch.cat(
                    [
                        self.module.label_scores([encoded[i] for i in take[j : j + 32]]).float().cpu()
                        for j in range(0, len(take), 32)
                    ]
                )
        finally:
            self.module.train(was_training)
        calibration.initialise(scores.to(calibration.bias.device), targets[take].to(calibration.bias.device))

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
        objective: Objective | None = None,
        calibrate: str | None = None,
        content_free: Sequence[str] | None = None,
        demonstrations: DemonstrationSettings | None = None,
    ) -> PromptClassifier:
        """Load a model by alias, folder or hub id. `finetune`: an adapter name ("full", "lora", "none"
        for zero-shot, "ia3", "prompt_tuning", "p_tuning", "prefix_tuning", "label_embeddings") or
        its settings (e.g. `LoraSettings(r=8)`); see `promptft.adapters`. `objective`: the task type,
        e.g. `MultiLabel(labels)` or `Regression(["low", "high"], value_range=(0, 5))` (default single-label).
        `calibrate="contextual"`: contextual calibration at prediction time (see `set_calibration`).
        `demonstrations`: e.g. `DemonstrationSettings(selection="similar")` (LM-BFF's demonstrations)."""
        if label_words is None:
            raise PromptFTError('label_words is required, e.g. {"negative": "terrible", "positive": "great"}')
        backbone = load_backbone(model, kind=kind, device=device, dtype=dtype)
        clf = cls(
            backbone,
            template,
            label_words,
            max_length=max_length,
            base_model=model,
            objective=objective,
            calibrate=calibrate,
            content_free=content_free,
            demonstrations=demonstrations,
        )
        clf.set_finetune(finetune, lora)
        return clf

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
            self.fit_to_backbone()
        self.adapter = adapter
        log.info("%s: %s", adapter.name, self.describe_trainable())

    def fit_to_backbone(self) -> None:
        """Cut `max_length` to what the backbone reads now (an attached soft prompt takes positions too)."""
        self.max_length = self.encoder.max_length = self.backbone.fit_length(self.max_length)

    def enable_training_cache(self) -> bool:
        return self.backbone.enable_prefix_cache()

    def disable_training_cache(self) -> None:
        self.backbone.disable_prefix_cache()

    def encode(self, examples: Sequence[Example]) -> list[EncodedPrompt] | list[DemoPrompts]:
        examples = as_examples(examples, self.fields)
        if self.demonstrations is not None:
            return self._encode_with_demonstrations(examples, self.demonstrations.n_sets, training=False)
        return [self.encoder.encode(ex.fields) for ex in examples]

    def encode_for_training(self, examples: Sequence[Example]) -> list[EncodedPrompt] | list[DemoPrompts]:
        """With demonstrations the training set becomes the pool, and each example gets one set (never
        itself); otherwise the same as `encode`."""
        examples = as_examples(examples, self.fields)
        if self.demonstrations is None:
            return self.encode(examples)
        self.set_demonstration_pool(examples)
        return self._encode_with_demonstrations(examples, 1, training=True)

    def set_demonstration_pool(self, examples: Sequence[Example]) -> None:
        """The labelled examples demonstrations are drawn from (`fit` uses the training set)."""
        if self.demonstrations is None:
            raise ConfigError("this classifier has no demonstrations: build it with demonstrations=...")
        examples = as_examples(examples, self.fields)
        if self.embed is None and self.demonstrations.selection == "similar":
            self.embed = sentence_embedder(self.demonstrations.encoder)
        self.demonstration_pool = DemonstrationPool(
            examples, self.labels, self.fields, self.demonstrations, self.embed
        )

    def _encode_with_demonstrations(
        self, examples: Sequence[Example], n_sets: int, *, training: bool
    ) -> list[DemoPrompts]:
        pool = self.demonstration_pool
        if pool is None:
            raise ConfigError(
                "demonstrations come from the training set, and this classifier has none yet: train it (fit), "
                "or give labelled examples with set_demonstration_pool(examples)"
            )
        assert isinstance(self.encoder, DemonstrationEncoder)
        chosen = pool.choose(examples, n_sets, training=training)
        return [
            DemoPrompts(
                tuple(
                    self.encoder.encode_with(ex.fields, [pool.examples[i] for i in demo_set])
                    for demo_set in sets
                )
            )
            for ex, sets in zip(examples, chosen, strict=True)
        ]

    @staticmethod
    def length_of(encoded) -> int:
        if isinstance(encoded, DemoPrompts):
            return sum(len(p.input_ids) for p in encoded.prompts)
        return len(encoded.input_ids)

    def save_pretrained(self, directory: str | Path, *, overwrite: bool = False) -> None:
        """Adapter (peft format) or full weights (safetensors) plus the prompt as JSON and a model card
        (README.md); refuses to replace a saved classifier unless `overwrite=True`."""

        def write(folder: Path) -> None:
            write_weights(folder, self.adapter, self.backbone.model, self.backbone.tokenizer, self.peft_model)
            write_config(folder, self.saved_config(), self.card_details())
            calibration = getattr(self.module, "calibration", None)
            if calibration is not None:
                write_tensors(folder / CALIBRATION_FILE, calibration)

        save_folder(directory, overwrite, write)

    def saved_config(self) -> dict:
        """What promptft_config.json holds (read back by `from_pretrained`)."""
        config = {
            "type": "prompt",
            "format_version": FORMAT_VERSION,
            "base_model": self.base_model,
            "kind": self.backbone.kind,
            "adapter": self.adapter.name,
            "template": self.template.text,
            "verbalizer": self.verbalizer.to_dict(),
            "labels": self.labels,
            "max_length": self.max_length,
            "objective": self.objective.to_dict(),
            **self._demonstrations_config(),
        }
        if self.contextual is not None:  # with p_cf of the saved weights, for the record
            config["calibration"] = self.contextual.to_dict(self.content_free_prior())
        return config

    def _demonstrations_config(self) -> dict:
        if self.demonstrations is None:
            return {}
        pool = self.demonstration_pool
        return {
            "demonstrations": {
                "settings": self.demonstrations.to_dict(),
                "pool": pool.to_dict() if pool is not None else None,
            }
        }

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device=None, dtype=None) -> PromptClassifier:
        directory = Path(directory)
        config = read_config(directory, "prompt")
        backbone = load_saved_backbone(directory, config, device, dtype)
        demos = config.get("demonstrations")
        clf = cls(
            backbone,
            config["template"],
            Verbalizer.from_dict(config["verbalizer"]),
            max_length=config["max_length"],
            base_model=config["base_model"],
            objective=objective_from_dict(config.get("objective"), config["labels"]),
            demonstrations=DemonstrationSettings(**demos["settings"]) if demos else None,
        )
        if demos and demos.get("pool") is not None:
            clf.set_demonstration_pool([Example(e["fields"], e["label"]) for e in demos["pool"]])
        if clf.module.calibration is not None:
            read_tensors(directory / CALIBRATION_FILE, clf.module.calibration)
        restore_adapter(clf, directory, config)
        contextual = ContextualCalibration.from_dict(config.get("calibration"))
        if contextual is not None:  # p_cf is recomputed from the restored weights (equal to the saved one)
            temperature = bool(getattr(clf.objective, "tune_temperature", False))  # T itself is kept
            clf.set_calibration(calibration_name(True, temperature), contextual.content_free)
        return clf

    def describe(self) -> str:
        return f"prompt {self.template.text!r} words={dict(self.verbalizer.label_words)} on {self.base_model}"


def sentence_embedder(name: str, device: str | torch.device | None = None) -> Embed:
    """texts -> normalised sentence embeddings of the encoder `name` (alias or folder), loaded on first use."""
    model = None

    def embed(texts: list[str]):
        nonlocal model
        if model is None:
            from sentence_transformers import SentenceTransformer

            from promptft.models.registry import resolve_model

            model = SentenceTransformer(resolve_model(name), device=str(device or "cpu"))
        return model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)

    return embed


def load_saved_backbone(directory: Path, config: dict, device, dtype) -> Backbone:
    """The backbone a saved prompt classifier runs on: its own full weights, or the base model named."""
    from promptft.adapters import adapter_class

    full = adapter_class(config["adapter"]).name == "full"
    source = str(directory / "model") if full else config["base_model"]
    return load_backbone(source, kind=config["kind"], device=device, dtype=dtype)


def restore_adapter(clf: PromptClassifier, directory: Path, config: dict) -> None:
    """Put a saved classifier's adapter back on its backbone (peft's files, or full/frozen weights)."""
    from promptft.adapters import adapter_class

    adapter_cls = adapter_class(config["adapter"])
    backbone = clf.backbone
    # Settings that shape training only (e.g. LoRA's top_layers) are not needed to predict: peft's
    # adapter_config.json holds everything the forward needs.
    clf.adapter = adapter_cls(**(config.get("lora") or {})) if adapter_cls is LoraSettings else adapter_cls()
    if adapter_cls.uses_peft:
        backbone.attach(load_peft_adapter(backbone.model, directory / "adapter"))
        clf.fit_to_backbone()
    else:
        clf.adapter.apply(backbone.model, backbone.kind)  # full: trainable again; none: frozen
    backbone.eval()
