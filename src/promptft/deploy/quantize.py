"""Quantization for CPU inference: torch int8 dynamic quantization, and onnxruntime int8.

* `quantize_torch_int8(clf)`: the transformer's `nn.Linear` layers become int8 dynamically quantized ones
  (`torch.ao.quantization.quantize_dynamic`: int8 weights, activations quantized per batch at run time).
  The output head (the label-word scores, computed only at the scoring positions) stays fp32: it costs
  little and its rows are what the prediction reads.
* `quantize_onnx_int8(src, dst)`: onnxruntime's dynamic quantization of an exported graph (MatMul/Gemm
  weights int8, per channel).
* int4 weight-only: onnxruntime's `MatMulNBitsQuantizer` (CPU `MatMulNBits` kernel) needs the `onnx_ir`
  package, which is not installed here; torch's int4 weight-only path (torchao) is not installed either.
  Neither is attempted; see the README's Production section.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from promptft.errors import PromptFTError

log = logging.getLogger(__name__)


def quantize_torch_int8(clf, *, keep_head: bool = True):
    """Quantize a classifier's Linear layers to int8 in place (CPU only); returns the classifier.

    Works for prompt and head classifiers; a LoRA adapter is merged into the weights first."""
    from promptft.classifiers import PromptClassifier
    from promptft.deploy.onnx_export import merge_adapter

    if clf.device.type != "cpu":
        raise PromptFTError("int8 dynamic quantization runs on the CPU: load the classifier with device='cpu'")
    merge_adapter(clf)
    model = clf.backbone.model if isinstance(clf, PromptClassifier) else clf.model
    head = model.get_output_embeddings() if isinstance(clf, PromptClassifier) else None
    skip = {id(head)} if keep_head and head is not None else set()
    targets = {
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and id(module) not in skip
    }
    torch.ao.quantization.quantize_dynamic(model, qconfig_spec=targets, dtype=torch.qint8, inplace=True)
    clf.quantization = "int8 (torch dynamic)"
    return clf


def quantize_onnx_int8(src: str | Path, dst: str | Path) -> Path:
    """onnxruntime dynamic int8 quantization of an ONNX graph's weights (`src` -> `dst`)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"MatMulConstBOnly": True},
    )
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
