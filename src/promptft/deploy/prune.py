"""Structured pruning: remove whole MLP neurons and attention heads, chosen by their importance on dev data,
so the pruned model is physically smaller (smaller matrices, an updated config that saves and loads) and
faster, not a masked copy of the original.

Importance is first-order Taylor (Molchanov et al. 2019): the gradient of the objective's loss on labelled
dev examples, accumulated over the set, times the weight, `|w * dL/dw|`, summed over every weight that
belongs to a structure (a neuron: its rows of the up/gate projections and its column of the down
projection; a query head: its rows of q_proj and its columns of o_proj).

Why our own code rather than torch-pruning (1.6 is installed): a Hugging Face config holds ONE
`intermediate_size` and ONE `num_attention_heads` for all layers, so a model pruned non-uniformly can be
neither saved nor loaded by `from_pretrained`. We therefore prune the same number of structures in every
layer (each layer keeps its own most important ones) and rewrite the config, which is a few slicing
operations per layer; torch-pruning's dependency graph adds nothing for this and does not know the
config. Grouped-query attention (Llama/SmolLM2, Qwen, Mistral: several query heads share one key/value
head): the same number of query heads is removed from every KV group, so head `h` still reads KV head
`h // (heads per group)` and `num_key_value_heads` is unchanged; with plain multi-head attention a head
goes together with its key and value. `head_dim` is written into the config explicitly (it can no
longer be derived as hidden_size / heads).

Supported: Llama-style decoders (q/k/v/o_proj attention with `head_dim`, gate/up/down MLP; SmolLM2,
Llama, Qwen2, Mistral, Gemma) — heads and neurons; BERT-style encoders (MiniLM, BERT, RoBERTa) — MLP
neurons only, since their config derives the head size from hidden_size / heads, so removing heads
cannot be saved with a standard config.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from promptft.adapters import adapter_settings
from promptft.data import Example
from promptft.errors import DataError, PromptFTError

log = logging.getLogger(__name__)


def merge_adapter(clf) -> None:
    """Fold a LoRA or (IA)3 adapter into the weights, leaving a classifier whose whole model trains ("full"):
    pruning (and a fair speed comparison) needs plain linear layers. A no-op without an adapter."""
    peft_model = clf.peft_model
    if peft_model is None:
        return
    if not hasattr(peft_model, "merge_and_unload") or clf.adapter.name not in ("lora", "ia3"):
        raise PromptFTError(
            f"a {clf.adapter.name} adapter cannot be merged into the weights: prune a classifier trained "
            "with finetune='full', 'lora' or 'ia3'"
        )
    merged = peft_model.merge_and_unload()
    if hasattr(clf, "backbone"):  # prompt classifiers: forward runs through the backbone's model again
        clf.backbone.peft_model = None
        clf.backbone.model = merged
    else:  # the head baseline
        clf.peft_model = None
        clf.model = merged
        clf.module.model = merged
    clf.adapter = adapter_settings("full")
    for p in merged.parameters():
        p.requires_grad_(True)


def hf_model(clf) -> nn.Module:
    """The Hugging Face model inside a classifier (prompt: the backbone's; head baseline: its own)."""
    if clf.peft_model is not None:
        raise PromptFTError("merge the adapter first (promptft.deploy.prune.merge_adapter)")
    return clf.backbone.model if hasattr(clf, "backbone") else clf.model


# ----- what can be pruned -----


@dataclass
class Mlp:
    """One layer's feed-forward block: neurons are rows of `rows` and columns of `cols`."""

    module: nn.Module
    rows: list[tuple[nn.Module, str]]  # (parent, attribute) of the Linear layers whose rows are neurons
    cols: list[tuple[nn.Module, str]]

    @property
    def size(self) -> int:
        parent, name = self.rows[0]
        return getattr(parent, name).out_features


@dataclass
class Attention:
    """One layer's Llama-style attention (q/k/v/o_proj, `head_dim`, grouped-query)."""

    module: nn.Module
    heads: int
    kv_heads: int
    head_dim: int

    @property
    def per_group(self) -> int:
        return self.heads // self.kv_heads


def _linear(module: nn.Module, name: str) -> bool:
    return isinstance(getattr(module, name, None), nn.Linear)


def find_structures(model: nn.Module) -> tuple[list[Mlp], list[Attention]]:
    """The MLP blocks and the prunable attention blocks of `model`, in layer order."""
    config = model.config
    mlps, attns = [], []
    for module in model.modules():
        if all(_linear(module, n) for n in ("gate_proj", "up_proj", "down_proj")):
            mlps.append(Mlp(module, [(module, "gate_proj"), (module, "up_proj")], [(module, "down_proj")]))
        elif _linear(getattr(module, "intermediate", None) or nn.Module(), "dense") and _linear(
            getattr(module, "output", None) or nn.Module(), "dense"
        ):  # BERT / RoBERTa layer: intermediate.dense (rows), output.dense (columns)
            mlps.append(Mlp(module, [(module.intermediate, "dense")], [(module.output, "dense")]))
        if all(_linear(module, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj")) and hasattr(
            module, "head_dim"
        ):
            head_dim = int(module.head_dim)
            heads = module.q_proj.out_features // head_dim
            kv_heads = module.k_proj.out_features // head_dim
            attns.append(Attention(module, heads, kv_heads, head_dim))
    if not mlps:
        raise PromptFTError(
            f"found no MLP block to prune in {type(model).__name__} ({getattr(config, 'model_type', '?')}): "
            "pruning supports Llama-style decoders (gate/up/down_proj) and BERT-style encoders"
        )
    return mlps, attns


# ----- importance -----


def taylor_importance(
    clf, examples: Sequence[Example], batch_size: int = 8, progress: bool = False
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(per MLP block: a score per neuron, per attention block: a score per query head), from the
    gradient of the objective's loss on labelled `examples` accumulated over all of them."""
    if not examples:
        raise DataError("importance needs labelled dev examples: the dev split is empty")
    model = hf_model(clf)
    mlps, attns = find_structures(model)
    objective = clf.objective
    targets = objective.targets(examples)
    encoded = clf.encode(examples)
    was_training = clf.module.training
    clf.module.eval()  # no dropout: the gradient of the model as it predicts
    grads_on = {p: p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(True)
        p.grad = None
    try:
        batches = range(0, len(encoded), batch_size)
        if progress:
            from rich.progress import track

            batches = track(batches, description="importance", transient=True)
        for start in batches:
            idx = list(range(start, min(start + batch_size, len(encoded))))
            logits = clf.module([encoded[i] for i in idx])
            objective.loss(logits, targets[idx]).sum().backward()
        mlp_scores = [_neuron_scores(m) for m in mlps]
        head_scores = [_head_scores(a) for a in attns]
    finally:
        for p, flag in grads_on.items():
            p.grad = None
            p.requires_grad_(flag)
        clf.module.train(was_training)
    return mlp_scores, head_scores


def _taylor(weight: nn.Parameter) -> torch.Tensor:
    if weight.grad is None:
        return torch.zeros_like(weight, dtype=torch.float32)
    return (weight.detach().float() * weight.grad.float()).abs()


def _neuron_scores(mlp: Mlp) -> torch.Tensor:
    score = sum(_taylor(getattr(p, n).weight).sum(1) for p, n in mlp.rows)
    return score + sum(_taylor(getattr(p, n).weight).sum(0) for p, n in mlp.cols)


def _head_scores(attn: Attention) -> torch.Tensor:
    d, m = attn.head_dim, attn.module
    q = _taylor(m.q_proj.weight).sum(1).view(attn.heads, d).sum(1)
    o = _taylor(m.o_proj.weight).sum(0).view(attn.heads, d).sum(1)
    score = q + o
    if attn.per_group == 1:  # plain multi-head attention: a head takes its key and value with it
        score = score + _taylor(m.k_proj.weight).sum(1).view(attn.heads, d).sum(1)
        score = score + _taylor(m.v_proj.weight).sum(1).view(attn.heads, d).sum(1)
    return score


# ----- slicing -----


def _slice_linear(layer: nn.Linear, keep: torch.Tensor, dim: int) -> nn.Linear:
    """A new Linear holding only the rows (dim 0: outputs) or columns (dim 1: inputs) in `keep`."""
    keep = keep.to(layer.weight.device)
    weight = layer.weight.detach().index_select(dim, keep).clone()
    out_f, in_f = weight.shape
    new = nn.Linear(in_f, out_f, bias=layer.bias is not None, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if layer.bias is not None:
            new.bias.copy_(layer.bias.detach() if dim == 1 else layer.bias.detach().index_select(0, keep))
    new.weight.requires_grad_(layer.weight.requires_grad)
    if new.bias is not None:
        new.bias.requires_grad_(layer.bias.requires_grad)
    return new


def _replace(parent: nn.Module, name: str, keep: torch.Tensor, dim: int) -> None:
    setattr(parent, name, _slice_linear(getattr(parent, name), keep, dim))


def _head_channels(heads: torch.Tensor, head_dim: int) -> torch.Tensor:
    return (heads[:, None] * head_dim + torch.arange(head_dim)[None, :]).reshape(-1)


def keep_count(total: int, sparsity: float, multiple_of: int = 1, minimum: int = 1) -> int:
    """How many of `total` structures stay at this sparsity (rounded to the nearest, ties keeping more;
    a multiple of `multiple_of` when that leaves at least `minimum`)."""
    keep = total - math.floor(total * sparsity + 0.5 - 1e-9)
    if multiple_of > 1 and keep >= multiple_of:
        keep = max(multiple_of, int(round(keep / multiple_of)) * multiple_of)
    return max(minimum, min(total, keep))


@dataclass
class PruneReport:
    """What pruning did: sizes before/after, and the share of parameters removed."""

    mlp_sparsity: float
    head_sparsity: float
    intermediate_size: tuple[int, int]  # (before, after)
    attention_heads: tuple[int, int] | None  # query heads per layer (before, after); None: not pruned
    kv_heads: tuple[int, int] | None
    parameters: tuple[int, int]
    layers: int
    notes: list[str] = field(default_factory=list)

    @property
    def parameter_share_removed(self) -> float:
        before, after = self.parameters
        return 1 - after / before

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "parameter_share_removed": round(self.parameter_share_removed, 4)}


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


@torch.no_grad()
def apply_pruning(
    model: nn.Module,
    mlp_scores: Sequence[torch.Tensor],
    head_scores: Sequence[torch.Tensor],
    mlp_sparsity: float,
    head_sparsity: float,
    multiple_of: int = 8,
) -> PruneReport:
    """Remove the least important neurons (and query heads) of every layer, the same number per layer,
    and rewrite the model's config to the new sizes."""
    for name, s in (("sparsity", mlp_sparsity), ("head sparsity", head_sparsity)):
        if not 0 <= s < 1:
            raise PromptFTError(f"{name} must be in [0, 1), got {s}: e.g. 0.3 removes 30%")
    config = model.config
    mlps, attns = find_structures(model)
    before = _count(model)
    notes: list[str] = []
    size = mlps[0].size
    if any(m.size != size for m in mlps):
        raise PromptFTError("the MLP blocks differ in size: only uniformly sized models can be pruned here")
    keep_n = keep_count(size, mlp_sparsity, multiple_of)
    for mlp, scores in zip(mlps, mlp_scores, strict=True):
        keep = scores.topk(keep_n).indices.sort().values.cpu()
        for parent, name in mlp.rows:
            _replace(parent, name, keep, 0)
        for parent, name in mlp.cols:
            _replace(parent, name, keep, 1)
        if hasattr(mlp.module, "intermediate_size"):
            mlp.module.intermediate_size = keep_n
    config.intermediate_size = keep_n

    heads_report = kv_report = None
    if head_sparsity > 0 and not attns:
        notes.append(
            f"{type(model).__name__}: attention heads kept (its config derives the head size from "
            "hidden_size / heads, so fewer heads could not be saved); only MLP neurons were pruned"
        )
    elif attns and head_sparsity > 0:
        first = attns[0]
        heads, kv, d, per_group = first.heads, first.kv_heads, first.head_dim, first.per_group
        # Configs check hidden_size % num_attention_heads == 0 (Llama's does, even with head_dim set):
        # the head count kept is the nearest valid one at or above the target.
        hidden = config.hidden_size
        if per_group > 1:  # GQA: the same number of query heads leaves every KV group
            keep_per_group = keep_count(per_group, head_sparsity)
            while hidden % (keep_per_group * kv):
                keep_per_group += 1
            new_heads, new_kv = keep_per_group * kv, kv
        else:
            keep_per_group = 1
            new_heads = keep_count(heads, head_sparsity)
            while hidden % new_heads:
                new_heads += 1
            new_kv = new_heads
        target = heads - math.floor(heads * head_sparsity + 0.5 - 1e-9)
        if new_heads != target:
            notes.append(
                f"{heads - new_heads} of {heads} attention heads removed per layer, not {heads - target}: "
                f"the same number leaves every key/value group and the count must divide hidden_size {hidden}"
            )
    if attns and head_sparsity > 0 and new_heads < heads:
        for attn, scores in zip(attns, head_scores, strict=True):
            if (attn.heads, attn.kv_heads, attn.head_dim) != (heads, kv, d):
                raise PromptFTError("the attention blocks differ in shape: cannot prune them uniformly")
            m = attn.module
            if per_group > 1:
                grouped = scores.view(kv, per_group)
                top = grouped.topk(keep_per_group, dim=1).indices.sort(dim=1).values
                keep_heads = (top + torch.arange(kv)[:, None] * per_group).reshape(-1).cpu()
            else:
                keep_heads = scores.topk(new_heads).indices.sort().values.cpu()
                kv_channels = _head_channels(keep_heads, d)
                _replace(m, "k_proj", kv_channels, 0)
                _replace(m, "v_proj", kv_channels, 0)
            channels = _head_channels(keep_heads, d)
            _replace(m, "q_proj", channels, 0)
            _replace(m, "o_proj", channels, 1)
            if hasattr(m, "num_key_value_groups"):
                m.num_key_value_groups = new_heads // new_kv
            for attr, value in (("num_heads", new_heads), ("num_key_value_heads", new_kv)):
                if hasattr(m, attr):
                    setattr(m, attr, value)
        config.head_dim = d  # explicit: hidden_size / heads no longer gives it
        config.num_attention_heads = new_heads
        config.num_key_value_heads = new_kv
        heads_report, kv_report = (heads, new_heads), (kv, new_kv)
    report = PruneReport(
        mlp_sparsity=mlp_sparsity,
        head_sparsity=head_sparsity,
        intermediate_size=(size, keep_n),
        attention_heads=heads_report,
        kv_heads=kv_report,
        parameters=(before, _count(model)),
        layers=len(mlps),
        notes=notes,
    )
    log.info(
        "pruned: intermediate %d -> %d, heads %s, parameters %d -> %d (%.1f%% removed)",
        size,
        keep_n,
        heads_report,
        before,
        report.parameters[1],
        100 * report.parameter_share_removed,
    )
    return report


def prune_classifier(
    clf,
    dev: Sequence[Example],
    sparsity: float,
    *,
    head_sparsity: float | None = None,
    batch_size: int = 8,
    multiple_of: int = 8,
    progress: bool = False,
) -> PruneReport:
    """Prune `clf` in place: merge its adapter, measure importance on labelled `dev`, remove `sparsity`
    of the MLP neurons and `head_sparsity` (default: the same) of the attention heads in every layer.
    The classifier then trains in full (for a recovery fine-tune) and saves its smaller model."""
    merge_adapter(clf)
    mlp_scores, head_scores = taylor_importance(clf, dev, batch_size, progress)
    hs = sparsity if head_sparsity is None else head_sparsity
    report = apply_pruning(hf_model(clf), mlp_scores, head_scores, sparsity, hs, multiple_of)
    for p in hf_model(clf).parameters():
        p.requires_grad_(True)
    return report
