"""EnsembleClassifier: trained classifiers combined as one (PET's weighted log-probabilities), saved and
loaded like any classifier, refused with a clear error where one backbone is needed (export, prune)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from promptft import load_classifier
from promptft.classifiers import EnsembleClassifier, PromptClassifier
from promptft.cli import app
from promptft.errors import ConfigError, ModelError, PromptFTError
from promptft.models import backbone_from_model
from promptft.objectives import MultiLabel
from tiny import tiny_llama

WORDS = {"negative": "terrible", "positive": "great"}
TEXTS = ["a moving film", "bad and boring", "I loved the acting", "it was dull"]


def member(seed: int, template: str = "{text} It was {mask}.", **kwargs) -> PromptClassifier:
    model, tok = tiny_llama(seed)
    return PromptClassifier(
        backbone_from_model(model, tok, "causal"), template, WORDS, max_length=64, **kwargs
    )


@pytest.fixture(scope="module")
def pair():
    return member(0), member(1, "Review: {text} Sentiment: {mask}")


def test_scores_are_the_weighted_mean_of_the_members_log_probabilities(pair):
    a, b = pair
    ens = EnsembleClassifier([a, b], scores=[0.9, 0.3], names=["a", "b"])
    log_a = torch.log_softmax(torch.as_tensor(a.predict_proba(TEXTS)).log(), -1)
    log_b = torch.log_softmax(torch.as_tensor(b.predict_proba(TEXTS)).log(), -1)
    expected = torch.softmax(0.75 * log_a + 0.25 * log_b, -1)
    torch.testing.assert_close(torch.as_tensor(ens.predict_proba(TEXTS)), expected, atol=1e-5, rtol=1e-4)
    assert ens.predict(TEXTS) == [ens.labels[i] for i in expected.argmax(-1).tolist()]
    assert ens.weights.tolist() == pytest.approx([0.75, 0.25])
    assert "ensemble (logits) of 2" in ens.describe()
    # a mixture of probabilities is the other combination
    mix = EnsembleClassifier([a, b], scores=[1, 1], combine="probabilities")
    expected_mix = (torch.as_tensor(a.predict_proba(TEXTS)) + torch.as_tensor(b.predict_proba(TEXTS))) / 2
    torch.testing.assert_close(torch.as_tensor(mix.predict_proba(TEXTS)), expected_mix, atol=1e-5, rtol=1e-4)


def test_members_may_list_the_labels_in_another_order(pair, tmp_path):
    a, _ = pair
    # the same model with its label words written the other way round: labels ["positive", "negative"]
    model, tok = tiny_llama(1)
    swapped = PromptClassifier(
        backbone_from_model(model, tok, "causal"),
        "Review: {text} Sentiment: {mask}",
        {"positive": "great", "negative": "terrible"},
        max_length=64,
    )
    assert swapped.labels == ["positive", "negative"]
    ens = EnsembleClassifier([a, swapped], scores=[0.9, 0.3], names=["a", "b"])
    assert ens.labels == ["negative", "positive"]  # the first member's order
    log_a = torch.as_tensor(a.predict_proba(TEXTS)).log()
    log_b = torch.as_tensor(swapped.predict_proba(TEXTS)).log()[:, [1, 0]]  # into a's order
    expected = torch.softmax(0.75 * log_a + 0.25 * log_b, -1)
    torch.testing.assert_close(torch.as_tensor(ens.predict_proba(TEXTS)), expected, atol=1e-5, rtol=1e-4)
    ens.save_pretrained(tmp_path / "ens")  # each member keeps its own order; loading aligns them again
    back = load_classifier(tmp_path / "ens")
    torch.testing.assert_close(torch.as_tensor(back.predict_proba(TEXTS)), expected, atol=1e-5, rtol=1e-4)


def test_a_member_temperature_is_applied_before_combining(pair):
    a, b = pair
    before = EnsembleClassifier([a, b]).predict_proba(TEXTS)
    a.objective.calibration_temperature = 3.0
    try:
        after = EnsembleClassifier([a, b]).predict_proba(TEXTS)
    finally:
        a.objective.calibration_temperature = 1.0
    assert not torch.allclose(torch.as_tensor(before), torch.as_tensor(after))


def test_save_and_load_keep_members_weights_and_predictions(pair, tmp_path):
    a, b = pair
    ens = EnsembleClassifier([a, b], scores=[0.6, 0.4], names=["manual", "searched"])
    ens.save_pretrained(tmp_path / "ens")
    config = json.loads((tmp_path / "ens" / "promptft_config.json").read_text())
    assert config["type"] == "ensemble" and config["members"] == ["manual", "searched"]
    assert (tmp_path / "ens" / "members" / "searched" / "promptft_config.json").exists()
    assert (tmp_path / "ens" / "README.md").exists()
    back = load_classifier(tmp_path / "ens")
    assert isinstance(back, EnsembleClassifier) and back.names == ["manual", "searched"]
    assert back.weights.tolist() == pytest.approx([0.6, 0.4])
    torch.testing.assert_close(
        torch.as_tensor(back.predict_proba(TEXTS)),
        torch.as_tensor(ens.predict_proba(TEXTS)),
        atol=1e-5,
        rtol=1e-4,
    )
    with pytest.raises(ModelError, match="overwrite=True"):
        ens.save_pretrained(tmp_path / "ens")  # nothing already saved is replaced silently
    metrics = back.evaluate(
        [{"text": "great fun", "label": "positive"}, {"text": "awful", "label": "negative"}]
    )
    assert metrics["n"] == 2


def test_bad_ensembles_are_clear_errors(pair):
    a, b = pair
    with pytest.raises(ConfigError, match="at least one"):
        EnsembleClassifier([])
    other = PromptClassifier(
        backbone_from_model(*tiny_llama(), "causal"), "{text} {mask}", {"bad": "terrible", "good": "great"}
    )
    with pytest.raises(ConfigError, match="one label set"):
        EnsembleClassifier([a, other])
    multi = member(2, objective=MultiLabel(["negative", "positive"]))
    with pytest.raises(ConfigError, match="single-label"):
        EnsembleClassifier([a, multi])
    with pytest.raises(ConfigError, match="distinct name"):
        EnsembleClassifier([a, b], names=["x", "x"])
    with pytest.raises(ConfigError, match="folder names"):
        EnsembleClassifier([a, b], names=["x", "../y"])
    with pytest.raises(ConfigError, match="unknown ensemble combination"):
        EnsembleClassifier([a, b], combine="vote")
    with pytest.raises(PromptFTError, match="distil"):
        EnsembleClassifier([a, b]).fit([{"text": "x", "label": "positive"}])


def test_export_and_prune_refuse_an_ensemble_with_a_way_out(pair, tmp_path):
    EnsembleClassifier(list(pair), names=["a", "b"]).save_pretrained(tmp_path / "ens")
    (tmp_path / "dev.tsv").write_text("text\tlabel\ngood\tpositive\nbad\tnegative\n")
    runner = CliRunner()
    for args in (
        ["export", str(tmp_path / "ens"), "--onnx", str(tmp_path / "out")],
        [
            "prune",
            str(tmp_path / "ens"),
            "-o",
            str(tmp_path / "p"),
            "--dev",
            str(tmp_path / "dev.tsv"),
            "--no-recover",
        ],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code != 0, args
        assert "ensemble" in result.output and "members" in result.output and "distill" in result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "p").exists()


def test_eval_and_int8_serving_take_an_ensemble_folder(pair, tmp_path):
    from promptft.deploy.quantize import quantize_torch_int8

    a, b = pair
    EnsembleClassifier([a, b], names=["a", "b"]).save_pretrained(tmp_path / "ens")
    (tmp_path / "test.tsv").write_text("text\tlabel\ngood\tpositive\nbad\tnegative\nfine\tpositive\n")
    result = CliRunner().invoke(
        app, ["eval", str(tmp_path / "ens"), "--data", str(tmp_path / "test.tsv"), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{") :])["n"] == 3
    ens = load_classifier(tmp_path / "ens")
    reference = ens.predict_proba(TEXTS)
    quantize_torch_int8(ens)
    for m in ens.members:  # every member's Linear layers became int8 ones
        assert any("quantized" in type(layer).__module__ for layer in m.backbone.model.modules())
    quantized = ens.predict_proba(TEXTS)
    assert quantized.shape == reference.shape
    assert abs(quantized - reference).max() < 0.2  # int8 members, close to fp32


def test_serve_answers_with_the_ensemble_predictions(pair, tmp_path):
    from fastapi.testclient import TestClient

    from promptft.recipes.serve import build_app

    ens = EnsembleClassifier(list(pair), scores=[0.7, 0.3], names=["a", "b"])
    ens.save_pretrained(tmp_path / "ens")
    with TestClient(build_app(tmp_path / "ens", device="cpu")) as client:
        body = client.post("/predict", json={"texts": TEXTS}).json()
        info = client.get("/info").json()
    assert [p["label"] for p in body["predictions"]] == ens.predict(TEXTS)
    got = [[p["probabilities"][lab] for lab in ens.labels] for p in body["predictions"]]
    torch.testing.assert_close(
        torch.tensor(got), torch.as_tensor(ens.predict_proba(TEXTS)).float(), atol=1e-5, rtol=1e-4
    )
    assert info["model"]["classifier"] == "EnsembleClassifier" and info["labels"] == ens.labels


def test_an_ensemble_teaches_distillation_with_its_own_distribution(pair):
    from promptft.data import Example
    from promptft.deploy.distill import teacher_logits

    ens = EnsembleClassifier(list(pair), scores=[0.8, 0.2])
    examples = [Example({"text": t}, None) for t in TEXTS]
    soft = torch.softmax(teacher_logits([ens], examples), -1)
    torch.testing.assert_close(soft, torch.as_tensor(ens.predict_proba(TEXTS)).float(), atol=1e-5, rtol=1e-4)
