"""Quantization for CPU inference: torch int8 dynamic quantization, and onnxruntime int8.

* `quantize_torch_int8(clf)`: the transformer's `nn.Linear` layers become int8 dynamically quantized ones
  (`torch.ao.quantization.quantize_dynamic`: int8 weights per output channel, activations quantized per
  batch at run time). torch's dynamic Linear hard-codes `reduce_range=True` (7-bit activations, fbgemm's
  guard against int16 saturation in CPUs without VNNI), where onnxruntime uses all 8 bits; on a CPU with
  VNNI the layers here use the full range (`FullRangeDynamicLinear`), see `reduce_range` below.
  The output head (the label-word scores, computed only at the scoring positions) stays fp32: it costs
  little and its rows are what the prediction reads.
* `smooth_quant(clf, calibration, alpha)`: SmoothQuant (Xiao et al. 2023), an exact fp32 rewrite that moves
  the activation outliers of a Llama-style decoder into the weights before quantizing (see below);
  `quantize_torch_int8(clf, calibration=texts)` applies it first (alpha `SMOOTH_ALPHA`).
* `quantize_onnx_int8(src, dst)`: onnxruntime's dynamic quantization of an exported graph (MatMul/Gemm
  weights int8, per channel).
* `quantize_onnx_int4(src, dst)`: weight-only int4 with onnxruntime's `MatMulNBitsQuantizer` (blockwise
  4-bit weights, run by the CPU `MatMulNBits` kernel; needs the `onnx-ir` package, in the [onnx] extra).
  torch's own int4 weight-only path lives in torchao, whose CPU kernels target recent x86 (AMX) and which
  promptft does not depend on; onnxruntime's is the maintained CPU route taken here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.ao.nn.quantized import dynamic as nnqd

from promptft.errors import PromptFTError

log = logging.getLogger(__name__)

# Kept in fp32 by default (both torch and onnxruntime): the output heads, whose rows are the label-word
# scores (cheap: computed at the scoring positions only), and the MLP's down projection, whose input has
# the activation outliers of LLMs (LLM.int8): on SmolLM2 SST-2 *dev* sentences, quantizing it flipped 25% of
# the predictions against 12.5% without it (per-tensor weights: 44%).
KEEP_FP32 = ("down_proj",)
# SmoothQuant's alpha when quantize_torch_int8 gets calibration inputs: the best agreement with fp32 on 500
# SmolLM2 SST-2 train sentences of 0.5, 0.65, 0.8 and 0.9 (benchmarks/results/experiments/int8_smoothquant.json).
SMOOTH_ALPHA = 0.9
_HEADS = ("lm_head", "/cls/", "/classifier", "/score/")


def cpu_has_vnni() -> bool:
    """Whether this CPU has the VNNI int8 dot-product instructions (AVX512-VNNI or AVX-VNNI), read from
    /proc/cpuinfo (Linux); False where that cannot be read (the safe answer: keep torch's reduced range)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_vnni", "avx_vnni"})


class FullRangeDynamicLinear(nnqd.Linear):
    """torch's dynamic int8 Linear with 8-bit activations (`reduce_range=False`): the stock module always
    passes `reduce_range=True`, quantizing activations to 7 bits (0..127). That range guards fbgemm's
    `vpmaddubsw` (u8 x s8 pairs summed in int16) against saturation on CPUs without VNNI; with VNNI the
    products are summed in int32 and the lost bit only costs accuracy."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._packed_params.dtype != torch.qint8:
            return super().forward(x)
        y = torch.ops.quantized.linear_dynamic(x, self._packed_params._packed_params, reduce_range=False)
        return y.to(x.dtype)


def _smooth_groups(model: nn.Module) -> Iterator[tuple[nn.Module, list[nn.Linear], bool]]:
    """(scaled, linears, rows) per Llama-style decoder layer: the modules whose output is the input of
    `linears`, and whether that output is a Linear's (`rows`: scale its output rows) or an RMSNorm's
    (scale its weight). The attention's o_proj is left alone: its input is the attention's output, which
    grouped-query attention shares between heads."""
    for layer in model.modules():
        attn = getattr(layer, "self_attn", None)
        mlp = getattr(layer, "mlp", None)
        norms = (getattr(layer, "input_layernorm", None), getattr(layer, "post_attention_layernorm", None))
        if attn is None or mlp is None or None in norms:
            continue
        names = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj", "down_proj")
        if not all(isinstance(getattr(attn if n[0] in "qkv" else mlp, n, None), nn.Linear) for n in names):
            continue
        yield norms[0], [attn.q_proj, attn.k_proj, attn.v_proj], False
        yield norms[1], [mlp.gate_proj, mlp.up_proj], False
        # down_proj's input is act(gate(x)) * up(x): linear in up_proj's output, channel by channel
        yield mlp.up_proj, [mlp.down_proj], True


@torch.no_grad()
def smooth_quant(clf, calibration: Sequence, alpha: float = 0.5) -> dict[str, int]:
    """SmoothQuant (Xiao et al. 2023), in place: an exact fp32 rewrite of a Llama-style decoder that
    divides each input channel j of the q/k/v, gate/up and down projections by
    `s_j = max|X_j| ** alpha / max|W[:, j]| ** (1 - alpha)` and multiplies the weights' column j by it.
    The division is folded into what produces the input: the RMSNorm's weight (q/k/v, gate/up) or
    up_proj's output rows (down_proj). The activation maxima `max|X_j|` are measured on `calibration`
    (inputs `clf.predict_proba` takes: a few dozen training sentences; never the test set).
    Returns how many layers of each kind were smoothed."""
    if not 0 < alpha < 1:
        raise PromptFTError(f"SmoothQuant's alpha must be between 0 and 1 (e.g. 0.5), got {alpha}")
    if not len(calibration):
        raise PromptFTError("SmoothQuant needs calibration inputs: pass a few dozen training sentences")
    from promptft.classifiers import PromptClassifier

    model = clf.backbone.model if isinstance(clf, PromptClassifier) else clf.model
    groups = list(_smooth_groups(model))
    if not groups:
        raise PromptFTError(
            "SmoothQuant folds into Llama-style decoder layers (RMSNorm -> q/k/v, gate/up -> down_proj); "
            f"{type(model).__name__} has none: quantize without smooth"
        )
    amax: dict[int, torch.Tensor] = {}

    def record(module, args):
        x = args[0].detach().abs().reshape(-1, args[0].shape[-1]).amax(0).float()
        key = id(module)
        amax[key] = x if key not in amax else torch.maximum(amax[key], x)

    hooks = [linears[0].register_forward_pre_hook(record) for _, linears, _ in groups]
    try:
        clf.predict_proba(list(calibration))
    finally:
        for hook in hooks:
            hook.remove()
    counts = {"norm": 0, "rows": 0}
    for scaled, linears, rows in groups:
        x_max = amax[id(linears[0])]
        w_max = torch.stack([lin.weight.detach().abs().amax(0).float() for lin in linears]).amax(0)
        s = x_max.clamp(min=1e-5).pow(alpha) / w_max.clamp(min=1e-5).pow(1 - alpha)
        s = torch.where(x_max > 0, s, torch.ones_like(s))  # channels never seen: left as they are
        for lin in linears:
            lin.weight.mul_(s.to(lin.weight.dtype))
        if rows:
            scaled.weight.div_(s.to(scaled.weight.dtype)[:, None])
            if scaled.bias is not None:
                scaled.bias.div_(s.to(scaled.bias.dtype))
        else:
            scaled.weight.div_(s.to(scaled.weight.dtype))
        counts["rows" if rows else "norm"] += 1
    return counts


def quantize_torch_int8(
    clf,
    *,
    keep: Sequence[str] = KEEP_FP32,
    keep_head: bool = True,
    reduce_range: bool | None = None,
    engine: str | None = None,
    calibration: Sequence | None = None,
    smooth: float | None = SMOOTH_ALPHA,
):
    """Quantize a classifier's Linear layers to int8 in place (CPU only); returns the classifier.

    Layers whose name contains one of `keep` stay fp32 (see `KEEP_FP32`), as does the output head. Works
    for prompt and head classifiers (an ensemble's members one by one); a LoRA adapter is merged into the
    weights first.

    `reduce_range`: quantize activations to 7 bits (torch's stock dynamic Linear) instead of 8. Default:
    8 bits where the CPU has VNNI (`cpu_has_vnni`), 7 otherwise. `engine`: torch's quantized engine
    (`torch.backends.quantized.engine`: x86, fbgemm, onednn, qnnpack), set process-wide before packing
    the weights (the packed weights belong to it); default: leave it as it is (x86 on x86 CPUs).
    `calibration`: a few dozen training inputs (what `predict_proba` takes); given, SmoothQuant
    (`smooth_quant`, alpha `smooth`) rewrites the model before quantizing, its activation maxima measured
    on them (on SmolLM2 SST-2 train sentences it raised the agreement with fp32 from 93.8% to 98.0%, see
    `SMOOTH_ALPHA`); `smooth=None` turns it off."""
    from promptft.classifiers import EnsembleClassifier, PromptClassifier
    from promptft.deploy.onnx_export import merge_adapter

    if isinstance(clf, EnsembleClassifier):  # each member quantized as it would be alone
        for member in clf.members:
            quantize_torch_int8(
                member, keep=keep, keep_head=keep_head, reduce_range=reduce_range, engine=engine,
                calibration=calibration, smooth=smooth,
            )  # fmt: skip
        return clf
    if clf.device.type != "cpu":
        raise PromptFTError(
            "int8 dynamic quantization runs on the CPU: load the classifier with device='cpu'"
        )
    merge_adapter(clf)
    if calibration is not None and smooth is None:
        raise PromptFTError("calibration inputs are used by SmoothQuant only: pass smooth=alpha too")
    if calibration is None:
        smooth = None
    else:
        smooth_quant(clf, calibration, smooth)
    model = clf.backbone.model if isinstance(clf, PromptClassifier) else clf.model
    head = model.get_output_embeddings() if isinstance(clf, PromptClassifier) else None
    skip = {id(head)} if keep_head and head is not None else set()
    # Per output channel: one scale per row. A per-tensor scale (quantize_dynamic's default) lets a few
    # outlier weights flatten the rest; on SmolLM2 SST-2 it changed a third of the predictions.
    qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    targets = {
        name: qconfig
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and id(module) not in skip and not any(k in name for k in keep)
    }
    if engine is not None:
        if engine not in torch.backends.quantized.supported_engines:
            raise PromptFTError(
                f"quantized engine {engine!r} is not available in this torch build: choose one of "
                f"{', '.join(e for e in torch.backends.quantized.supported_engines if e != 'none')}"
            )
        torch.backends.quantized.engine = engine
    if reduce_range is None:
        reduce_range = not cpu_has_vnni()
    mapping = None if reduce_range else {nn.Linear: FullRangeDynamicLinear}
    torch.ao.quantization.quantize_dynamic(
        model, qconfig_spec=targets, mapping=mapping, dtype=torch.qint8, inplace=True
    )
    bits = 7 if reduce_range else 8
    smoothed = f", SmoothQuant alpha {smooth}" if smooth is not None else ""
    clf.quantization = (
        f"int8 (torch dynamic, per-channel weights, {bits}-bit activations, "
        f"{torch.backends.quantized.engine} engine{smoothed})"
    )
    return clf


def onnx_nodes_to_quantize(model_path: str | Path, op_types: Sequence[str], keep: Sequence[str]) -> list[str]:
    """Names of the graph's `op_types` nodes inside the model (exported scopes /net/ or /model/), except the
    output heads and nodes whose name contains one of `keep`. The graph's own small MatMuls after the model
    (summing a word's token log-probabilities) are never quantized: they act on log-probabilities."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    return [
        node.name
        for node in model.graph.node
        if node.op_type in op_types
        and node.name.startswith(("/net/", "/model/"))
        and not any(part in node.name for part in (*_HEADS, *keep))
    ]


def quantize_onnx_int8(src: str | Path, dst: str | Path, keep: Sequence[str] = KEEP_FP32) -> Path:
    """onnxruntime dynamic int8 quantization of an ONNX graph's weights (`src` -> `dst`): per-channel int8
    MatMul weights, a uint8 embedding table; activations quantized per batch at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QInt8,
        per_channel=True,
        nodes_to_quantize=onnx_nodes_to_quantize(src, ("MatMul", "Gemm", "Gather"), keep),
        extra_options={"MatMulConstBOnly": True},
    )
    return Path(dst)


def quantize_onnx_int4(
    src: str | Path, dst: str | Path, block_size: int = 32, keep: Sequence[str] = KEEP_FP32
) -> Path:
    """onnxruntime weight-only int4 (`MatMulNBits`, symmetric blocks of `block_size` weights) of an ONNX
    graph's MatMul weights (`src` -> `dst`); activations stay fp32."""
    import onnx

    try:
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    except ImportError as err:
        raise PromptFTError(
            f"int4 quantization needs onnxruntime's MatMulNBits quantizer ({err}): pip install 'promptft[onnx]'"
        ) from None
    quantizer = MatMulNBitsQuantizer(
        onnx.load(str(src)),
        bits=4,
        block_size=block_size,
        is_symmetric=True,
        accuracy_level=4,
        nodes_to_include=onnx_nodes_to_quantize(src, ("MatMul",), keep),
    )
    chatty = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level = chatty.level
    chatty.setLevel(logging.WARNING)  # it logs every node it skips
    try:
        quantizer.process()
    finally:
        chatty.setLevel(level)
    quantizer.model.save_model_to_file(str(dst), False)
    return Path(dst)


def state_size_bytes(module: nn.Module) -> int:
    """Bytes of a module's state on disk (torch.save of its state dict to a temporary file): what a
    quantized model, whose packed int8 weights safetensors cannot hold, would take to store."""
    import os
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".pt", delete=False) as f:
        path = f.name
    try:
        torch.save(module.state_dict(), path)
        return os.path.getsize(path)
    finally:
        os.unlink(path)
