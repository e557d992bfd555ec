"""torch int8 dynamic quantization: 8-bit activations (`FullRangeDynamicLinear`) where the CPU has VNNI,
torch's stock 7-bit module otherwise; the quantized engine; layers kept fp32."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.ao.nn.quantized import dynamic as nnqd

from promptft import PromptClassifier
from promptft.deploy import quantize
from promptft.deploy.quantize import FullRangeDynamicLinear, quantize_torch_int8
from promptft.errors import PromptFTError
from promptft.models import backbone_from_model
from tiny import tiny_llama

TEXTS = ["I loved it", "a wonderful film, with great acting", "I hated it", "boring and bad"]


def prompt_clf():
    model, tok = tiny_llama()
    words = {"negative": "terrible", "positive": "great"}
    return PromptClassifier(backbone_from_model(model, tok), "{text} It was {mask}.", words, max_length=64)


def quantized_linear_error(full_range: bool) -> float:
    torch.manual_seed(0)
    linear = nn.Linear(256, 256)
    x = torch.randn(64, 256)
    model = nn.Sequential(linear)
    mapping = {nn.Linear: FullRangeDynamicLinear} if full_range else None
    q = torch.ao.quantization.quantize_dynamic(
        model, {nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}, mapping=mapping
    )
    assert isinstance(q[0], FullRangeDynamicLinear if full_range else nnqd.Linear)
    with torch.inference_mode():
        return (q(x) - linear(x)).abs().mean().item()


def test_eight_bit_activations_halve_the_activation_rounding_error():
    # 8 bits: half the quantization step of torch's stock 7-bit activations (weights identical)
    assert quantized_linear_error(full_range=True) < 0.75 * quantized_linear_error(full_range=False)


@pytest.mark.parametrize("vnni", [True, False])
def test_default_range_follows_the_cpu(monkeypatch, vnni):
    monkeypatch.setattr(quantize, "cpu_has_vnni", lambda: vnni)
    clf = prompt_clf()
    reference = clf.predict_proba(TEXTS)
    quantize_torch_int8(clf)
    model = clf.backbone.model
    dynamic = [m for m in model.modules() if isinstance(m, nnqd.Linear)]
    assert dynamic and all(isinstance(m, FullRangeDynamicLinear) == vnni for m in dynamic)
    assert ("8-bit" if vnni else "7-bit") in clf.quantization
    # kept fp32: the output head and the MLP down projections
    assert type(model.get_output_embeddings()) is nn.Linear
    assert all(type(m) is nn.Linear for n, m in model.named_modules() if n.endswith("down_proj"))
    assert np.abs(clf.predict_proba(TEXTS) - reference).max() < 0.05


def test_engine_is_set_and_an_unknown_one_is_refused():
    before = torch.backends.quantized.engine
    try:
        clf = quantize_torch_int8(prompt_clf(), engine="fbgemm", reduce_range=False, keep=())
        assert torch.backends.quantized.engine == "fbgemm" and "fbgemm engine" in clf.quantization
        model = clf.backbone.model
        assert all(
            isinstance(m, FullRangeDynamicLinear) for n, m in model.named_modules() if n.endswith("down_proj")
        )
        with pytest.raises(PromptFTError, match="choose one of"):
            quantize_torch_int8(prompt_clf(), engine="no-such-engine")
    finally:
        torch.backends.quantized.engine = before
