"""Export a classifier to ONNX: the prompt classifier through the one forward (backbone -> label-word
scores -> label logits), or the head classifier (standard fine-tuning, e.g. a distilled MiniLM student).

The graph is traced through the model's own forward with the backbone's pre-hook on the output head, so
only the scoring positions reach the head, as in PyTorch. Its inputs are `input_ids`, `attention_mask`,
`score_rows` and `score_cols` (where to read the slot; built by `ScoringPlan.arrays`) and, for seq2seq,
`decoder_input_ids` / `decoder_attention_mask`; its output `label_logits` `[batch, n_labels]` equals the
classifier's `label_logits`. LoRA/IA3 adapters are merged into the weights first; prompt-learning adapters
(soft prompts, prefixes) are refused with an explanation.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from promptft.classifiers import HeadClassifier, PromptClassifier
from promptft.classifiers.base import BaseClassifier
from promptft.deploy.onnx_runtime import (
    ONNX_CONFIG,
    ONNX_FORMAT_VERSION,
    ONNX_MODEL,
    TOKENIZER_DIR,
    ScoringPlan,
    head_arrays,
)
from promptft.errors import ModelError, PromptFTError
from promptft.files import write_dir_atomically
from promptft.models.backbones import gathered_input

log = logging.getLogger(__name__)

OPSET = 17  # fixed: every op the graphs use exists there, and onnxruntime >= 1.14 runs it


class PromptGraph(nn.Module):
    """Tensor-in, tensor-out form of `PromptScorer` for tracing: padded ids + scoring positions -> label
    logits, with the plan's gathers and reductions as constant buffers."""

    def __init__(self, clf: PromptClassifier, plan: ScoringPlan) -> None:
        super().__init__()
        backbone = clf.backbone
        self.net = backbone.net
        self.kind = backbone.kind
        self.head = backbone.head if self.kind == "masked" else backbone.model.get_output_embeddings()
        scorer = clf.module
        self.calibration = scorer.calibration
        self.word_reduction = scorer.word_reduction
        self.n_positions = len(plan.positions)
        vocab = backbone.model.get_output_embeddings().weight.shape[0]
        self.vocab = vocab
        flat = [p * vocab + tok for p, tok, _ in plan.targets]
        self.register_buffer("flat_index", torch.tensor(flat, dtype=torch.long), persistent=False)
        n_words = len(plan.word_label)
        to_word = torch.zeros(len(plan.targets), n_words)
        for i, (_, _, word) in enumerate(plan.targets):
            to_word[i, word] = 1.0 / plan.word_lengths[word] if scorer.token_reduction == "mean" else 1.0
        self.register_buffer("to_word", to_word, persistent=False)
        labels = torch.tensor(plan.word_label)
        member = labels[None, :] == torch.arange(scorer.n_labels)[:, None]  # [L, W]
        self.register_buffer("member", member, persistent=False)
        self.register_buffer("mean_weights", member.float() / member.sum(1, keepdim=True), persistent=False)

    def forward(
        self,
        input_ids,
        attention_mask,
        score_rows,
        score_cols,
        decoder_input_ids=None,
        decoder_attention_mask=None,
    ):
        seq_len = input_ids.shape[1]
        seq2seq = decoder_input_ids is not None

        def select(hidden):
            offset = 0 if seq2seq else hidden.shape[1] - seq_len
            return hidden[score_rows, score_cols + offset]

        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if seq2seq:
            inputs.update(decoder_input_ids=decoder_input_ids, decoder_attention_mask=decoder_attention_mask)
        with gathered_input(self.head, select):
            logits = self.net(**inputs, use_cache=False).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1)  # [batch * positions, vocab]
        per_example = logprobs.reshape(-1, self.n_positions * self.vocab)
        picked = per_example.index_select(1, self.flat_index)  # [batch, targets]
        words = picked @ self.to_word  # [batch, words]
        if self.word_reduction == "mean":
            scores = words @ self.mean_weights.T
        else:
            masked = words[:, None, :].masked_fill(~self.member[None], float("-inf"))
            scores = torch.logsumexp(masked, dim=-1)
        return scores if self.calibration is None else self.calibration(scores)


class HeadGraph(nn.Module):
    """`HeadScorer` on tensors: ids (+ token types) -> label logits."""

    def __init__(self, clf: HeadClassifier) -> None:
        super().__init__()
        self.model = clf.peft_model if clf.peft_model is not None else clf.model
        self.normalise = clf.module.normalise

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        logits = self.model(**kwargs).logits.float()
        return torch.log_softmax(logits, dim=-1) if self.normalise else logits


def merge_adapter(clf: BaseClassifier) -> None:
    """Fold a LoRA/IA3 adapter into the weights (in place); refuse soft prompts and prefixes."""
    adapter = getattr(clf, "adapter", None)
    name = getattr(adapter, "name", "full")
    if name in ("full", "none", "frozen"):
        return
    if name not in ("lora", "ia3"):
        raise PromptFTError(
            f"ONNX export supports full, frozen, LoRA and IA3 models, not {name!r}: its virtual tokens are "
            "added inside peft's forward, which the exported graph does not reproduce; train with "
            "finetune lora (or full) to export"
        )
    if getattr(clf, "peft_model", None) is None:
        return  # merged already
    if isinstance(clf, PromptClassifier):
        merged = clf.backbone.peft_model.merge_and_unload()
        clf.backbone.model = merged
        clf.backbone.peft_model = None
    else:
        clf.model = clf.peft_model.merge_and_unload()
        clf.peft_model = None
        clf.module.model = clf.model


def _sample_prompt_inputs(clf: PromptClassifier, plan: ScoringPlan) -> dict[str, torch.Tensor]:
    texts = ["a short example", "a somewhat longer example sentence for the export"]
    examples = [{f: t for f in clf.fields} for t in texts]
    encoded = clf.encode(examples)
    mask_id = clf.backbone.tokenizer.mask_token_id
    return {k: torch.from_numpy(v) for k, v in plan.arrays(encoded, clf.backbone.pad_id, mask_id).items()}


def prompt_plan(clf: PromptClassifier) -> ScoringPlan:
    backbone = clf.backbone
    prefix = getattr(backbone, "decoder_prefix", ())
    return ScoringPlan.build(backbone.kind, clf.words.word_ids, clf.words.word_label, prefix)


def export_graph(clf: BaseClassifier, path: Path, opset: int = OPSET) -> dict[str, Any]:
    """Trace `clf` into `path` (an .onnx file); returns what the folder's JSON records about the graph."""
    merge_adapter(clf)
    if isinstance(clf, PromptClassifier):
        if getattr(clf.module, "calibration", None) is None and clf.objective.name == "multi_label":
            raise ModelError("a multi-label prompt classifier without calibration cannot be exported")
        plan = prompt_plan(clf)
        graph: nn.Module = PromptGraph(clf, plan)
        sample = _sample_prompt_inputs(clf, plan)
        names = ["input_ids", "attention_mask", "score_rows", "score_cols"]
        if plan.kind == "seq2seq":
            names += ["decoder_input_ids", "decoder_attention_mask"]
        dynamic = {
            "input_ids": {0: "rows", 1: "sequence"},
            "attention_mask": {0: "rows", 1: "sequence"},
            "score_rows": {0: "positions"},
            "score_cols": {0: "positions"},
            "decoder_input_ids": {0: "rows", 1: "decoder_sequence"},
            "decoder_attention_mask": {0: "rows", 1: "decoder_sequence"},
            "label_logits": {0: "batch"},
        }
        extra: dict[str, Any] = {"plan": plan.to_dict()}
    elif isinstance(clf, HeadClassifier):
        graph = HeadGraph(clf)
        encoded = clf.encode(
            [{f: "a short example" for f in clf.fields}, {f: "a longer example here" for f in clf.fields}]
        )
        with_types = encoded[0].token_type_ids is not None
        sample = {k: torch.from_numpy(v) for k, v in head_arrays(encoded, clf.pad_id, with_types).items()}
        names = list(sample)
        dynamic = {n: {0: "batch", 1: "sequence"} for n in names} | {"label_logits": {0: "batch"}}
        extra = {}
    else:
        raise ModelError(f"cannot export a {type(clf).__name__} to ONNX: export a prompt or head classifier")
    graph.eval()
    args = tuple(sample[n] for n in names)
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about every Python branch on a shape in transformers' mask code (taken the same
        # way for any padded batch: the parity tests run other batch sizes and lengths than the trace) and
        # about negative indices (ours are never negative): noise for a user who cannot act on it.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*advanced indexing.*", category=UserWarning)
        torch.onnx.export(
            graph,
            args,
            str(path),
            input_names=names,
            output_names=["label_logits"],
            dynamic_axes={k: v for k, v in dynamic.items() if k in names or k == "label_logits"},
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )
    return {"inputs": names, "opset": opset, **extra}


def folder_config(clf: BaseClassifier, graph_info: dict[str, Any], source: str) -> dict[str, Any]:
    from promptft.version import __version__

    common = {
        "format_version": ONNX_FORMAT_VERSION,
        "promptft_version": __version__,
        "source": source,
        "base_model": getattr(clf, "base_model", ""),
        "adapter": clf.adapter.name,
        "labels": list(clf.labels),
        "objective": clf.objective.to_dict(),
        "max_length": clf.max_length,
        "quantization": None,
        **graph_info,
    }
    if isinstance(clf, PromptClassifier):
        backbone = clf.backbone
        return {
            "type": "prompt",
            "kind": backbone.kind,
            "template": clf.template.text,
            "verbalizer": clf.verbalizer.to_dict(),
            "slot_text": backbone.slot_text,
            "pad_id": backbone.pad_id,
            **common,
        }
    return {"type": "head", "fields": list(clf.fields), "pad_id": clf.pad_id, **common}


def tokenizer_of(clf: BaseClassifier):
    return clf.backbone.tokenizer if isinstance(clf, PromptClassifier) else clf.tokenizer


def export_onnx(
    clf: BaseClassifier,
    out_dir: str | Path,
    *,
    int8: bool = False,
    int4: bool = False,
    source: str = "",
    overwrite: bool = False,
    opset: int = OPSET,
) -> Path:
    """Write `out_dir/` with model.onnx, promptft_onnx.json and tokenizer/ (atomically); `int8` quantizes
    the graph's weights with onnxruntime's dynamic int8 quantization, `int4` to weight-only int4 blocks
    (onnxruntime MatMulNBits). Returns the folder.

    The classifier is changed in place (LoRA merged into the weights): pass one loaded for export."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise PromptFTError(f"{out_dir} already exists: choose another --onnx folder, or pass --overwrite")
    if clf.device.type != "cpu":
        raise PromptFTError("export from a classifier on the CPU: load it with device='cpu'")

    def build(folder: Path) -> None:
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            fp32 = Path(tmp) / ONNX_MODEL
            info = export_graph(clf, fp32, opset)
            config = folder_config(clf, info, source)
            if int8 and int4:
                raise PromptFTError("choose one of int8 and int4")
            if int8:
                from promptft.deploy.quantize import quantize_onnx_int8

                quantize_onnx_int8(fp32, folder / ONNX_MODEL)
                config["quantization"] = "int8 (onnxruntime dynamic, per-channel weights)"
            elif int4:
                from promptft.deploy.quantize import quantize_onnx_int4

                quantize_onnx_int4(fp32, folder / ONNX_MODEL)
                config["quantization"] = "int4 weight-only (onnxruntime MatMulNBits, blocks of 32)"
            else:
                _copy_model(fp32, folder / ONNX_MODEL)
        tokenizer_of(clf).save_pretrained(folder / TOKENIZER_DIR)
        (folder / ONNX_CONFIG).write_text(json.dumps(config, indent=2))

    write_dir_atomically(out_dir, build)
    return out_dir


def _copy_model(src: Path, dst: Path) -> None:
    """One self-contained .onnx file (external-data files, if the exporter wrote any, folded back in)."""
    import onnx

    model = onnx.load(str(src), load_external_data=True)
    if model.ByteSize() < 2**31 - 2**20:
        onnx.save_model(model, str(dst))
    else:  # over protobuf's 2 GB limit: keep the weights beside it
        onnx.save_model(model, str(dst), save_as_external_data=True, location=dst.name + ".data")
    if not dst.exists():  # pragma: no cover
        shutil.copy(src, dst)
