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
from promptft.deploy.quantize import FullRangeDynamicLinear, quantize_torch_int8, smooth_quant
from promptft.errors import PromptFTError
from promptft.models import backbone_from_model
from tiny import bpe_tokenizer, tiny_llama, tiny_roberta

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


def test_eight_bit_activations_halve_the_error_with_vnni_and_saturate_without():
    """8 bits: half the quantization step of torch's stock 7-bit activations (weights identical), where the
    CPU has VNNI. Without it fbgemm sums u8 x s8 pairs in int16, which 8-bit activations saturate (on an
    AVX2-only CPU: 0.024 vs 0.009 mean error): why `quantize_torch_int8` keeps 7 bits there."""
    full, reduced = quantized_linear_error(full_range=True), quantized_linear_error(full_range=False)
    if quantize.cpu_has_vnni():
        assert full < 0.75 * reduced
    else:
        assert full > 1.5 * reduced


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


def input_ids():
    return bpe_tokenizer()(TEXTS, return_tensors="pt", padding=True)


@pytest.mark.parametrize("alpha", [0.5, 0.8])
def test_smoothquant_fold_is_exact_in_fp32(alpha):
    clf = prompt_clf()
    model = clf.backbone.model
    batch = input_ids()
    with torch.no_grad():
        before = model(**batch).logits
    down = [m.weight.clone() for n, m in model.named_modules() if n.endswith("down_proj")]
    norms = [m.weight.clone() for n, m in model.named_modules() if n.endswith("input_layernorm")]
    counts = smooth_quant(clf, TEXTS, alpha)
    assert counts == {"norm": 4, "rows": 2}  # 2 layers: 2 RMSNorms and 1 up_proj each
    # the weights did change (a fold that does nothing would pass the equality below)
    after_down = [m.weight for n, m in model.named_modules() if n.endswith("down_proj")]
    assert all(not torch.allclose(a, b) for a, b in zip(down, after_down, strict=True))
    after_norms = [m.weight for n, m in model.named_modules() if n.endswith("input_layernorm")]
    assert all(not torch.allclose(a, b) for a, b in zip(norms, after_norms, strict=True))
    with torch.no_grad():
        after = model(**batch).logits
    assert (after - before).abs().max().item() < 1e-4


def test_smoothquant_flattens_the_down_proj_input():
    # channel j's activation maximum becomes max|X_j| / s_j: with alpha 0.8 the spread between channels
    # (max over min of the per-channel maxima) shrinks
    def spread(clf):
        maxima = []
        down = next(m for n, m in clf.backbone.model.named_modules() if n.endswith("layers.0.mlp.down_proj"))
        hook = down.register_forward_pre_hook(lambda m, a: maxima.append(a[0].abs().reshape(-1, 64).amax(0)))
        clf.predict_proba(TEXTS)
        hook.remove()
        return (maxima[0].max() / maxima[0].min()).item()

    clf = prompt_clf()
    before = spread(clf)
    smooth_quant(clf, TEXTS, 0.8)
    assert spread(clf) < 0.5 * before


def test_smoothquant_only_with_calibration_inputs():
    plain = quantize_torch_int8(prompt_clf())
    assert "SmoothQuant" not in plain.quantization
    smoothed = quantize_torch_int8(prompt_clf(), calibration=TEXTS)
    assert f"SmoothQuant alpha {quantize.SMOOTH_ALPHA}" in smoothed.quantization
    # the rewrite happened: the RMSNorm weights (all 1 in the tiny model) are no longer 1
    norm = next(m for n, m in smoothed.backbone.model.named_modules() if n.endswith("input_layernorm"))
    assert not torch.allclose(norm.weight, torch.ones_like(norm.weight))


def test_quantize_with_smoothquant_quantizes_down_proj():
    clf = prompt_clf()
    reference = clf.predict_proba(TEXTS)
    quantize_torch_int8(clf, keep=(), smooth=0.5, calibration=TEXTS[:2])
    model = clf.backbone.model
    assert all(isinstance(m, nnqd.Linear) for n, m in model.named_modules() if n.endswith("down_proj"))
    assert "SmoothQuant alpha 0.5" in clf.quantization
    assert np.abs(clf.predict_proba(TEXTS) - reference).max() < 0.05


def test_smoothquant_refuses_bad_settings():
    with pytest.raises(PromptFTError, match="pass smooth=alpha"):
        quantize_torch_int8(prompt_clf(), calibration=TEXTS, smooth=None)
    with pytest.raises(PromptFTError, match="between 0 and 1"):
        smooth_quant(prompt_clf(), TEXTS, 1.5)
    with pytest.raises(PromptFTError, match="few dozen"):
        smooth_quant(prompt_clf(), [], 0.5)
    model, tok = tiny_roberta()
    words = {"negative": "terrible", "positive": "great"}
    mlm = PromptClassifier(backbone_from_model(model, tok), "{text} It was {mask}.", words, max_length=64)
    with pytest.raises(PromptFTError, match="Llama-style"):
        smooth_quant(mlm, TEXTS, 0.5)


def test_serve_int8_calibration_file_turns_smoothquant_on(tmp_path):
    from promptft.recipes.serve import load_for_serving

    folder = tmp_path / "clf"
    prompt_clf().save_pretrained(folder)
    calibration = tmp_path / "calibration.txt"
    calibration.write_text("\n".join(TEXTS) + "\n\n")
    clf = load_for_serving(folder, int8=True, int8_calibration=calibration)
    assert "SmoothQuant" in clf.quantization
    assert "SmoothQuant" not in load_for_serving(folder, int8=True).quantization
    with pytest.raises(PromptFTError, match="add --int8"):
        load_for_serving(folder, int8_calibration=calibration)
    with pytest.raises(PromptFTError, match="not found"):
        load_for_serving(folder, int8=True, int8_calibration=tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(PromptFTError, match="is empty"):
        load_for_serving(folder, int8=True, int8_calibration=tmp_path / "empty.txt")
