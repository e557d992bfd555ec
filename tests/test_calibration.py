import numpy as np
import pytest
import torch
from planted import PlantedBackbone

from promptft import Example, PromptClassifier
from promptft.errors import ConfigError, PromptFTError
from promptft.evaluation import expected_calibration_error
from promptft.models import backbone_from_model
from promptft.objectives import MultiLabel
from promptft.prompts.calibration import ContextualCalibration, apply_prior, content_free_prior
from tiny import tiny_bert, tiny_llama

WORDS = {"negative": "terrible", "positive": "great"}
DATA = [
    Example({"text": f"{w} movie number {i}"}, lab)
    for i in range(6)
    for w, lab in (("good", "positive"), ("bad", "negative"))
]


def biased():
    """Says "great" far more than "terrible" whatever the input, with a real signal on top."""
    return PlantedBackbone(bias={"great": 4.0}, cues={"good": {"great": 2.0}, "bad": {"great": -2.0}})


def ece(clf, data):
    probs = clf.predict_proba(data)
    gold = np.array([clf.labels.index(ex.label) for ex in data])
    return expected_calibration_error(probs.max(1), probs.argmax(1) == gold)[0], probs


def test_prior_and_division_arithmetic():
    logits = torch.log(torch.tensor([[0.8, 0.2], [0.6, 0.4]]))
    prior = content_free_prior(logits)
    torch.testing.assert_close(prior, torch.tensor([0.7, 0.3]))
    calibrated = apply_prior(torch.log(torch.tensor([[0.7, 0.3]])), prior).softmax(-1)
    torch.testing.assert_close(calibrated, torch.tensor([[0.5, 0.5]]))  # the prior itself becomes uniform


def test_contextual_calibration_balances_a_biased_model_and_cuts_ece():
    clf = PromptClassifier(biased(), "{text} It was {mask}.", WORDS, max_length=32)
    before, raw = ece(clf, DATA)
    assert set(clf.predict(DATA)) == {"positive"}  # the bias wins everywhere
    clf.set_calibration("contextual")
    after, probs = ece(clf, DATA)
    predictions = clf.predict(DATA)
    assert predictions.count("positive") == predictions.count("negative") == 6
    assert clf.evaluate(DATA)["accuracy"] == 1.0
    assert after < before - 0.2
    p_cf = clf.content_free_prior()
    assert p_cf[1] > 0.95  # content-free inputs show the lean
    clf.set_calibration(None)
    np.testing.assert_allclose(clf.predict_proba(DATA), raw)


def test_content_free_input_is_uniform_after_calibration_on_a_real_tiny_model():
    model, tok = tiny_llama()
    clf = PromptClassifier(
        backbone_from_model(model, tok, "causal"),
        "{text} It was {mask}.",
        WORDS,
        calibrate="contextual",
        content_free=["N/A"],
    )
    np.testing.assert_allclose(clf.predict_proba(["N/A"]), [[0.5, 0.5]], atol=1e-5)
    assert clf.calibrate == "contextual"


def test_prior_follows_the_weights():
    clf = PromptClassifier(biased(), "{text} It was {mask}.", WORDS, calibrate="contextual")
    first = clf.content_free_prior()
    with torch.no_grad():
        clf.backbone.base[clf.backbone.word_id("terrible")] += 3.0  # not a parameter: cached prior stays
    assert clf.content_free_prior() == first
    with torch.no_grad():
        clf.backbone.knob.add_(0.0)  # any in-place change to a weight marks the prior stale
    assert clf.content_free_prior() != first


def test_calibration_survives_save_and_load(tmp_path):
    model, tok = tiny_llama()
    clf = PromptClassifier(
        backbone_from_model(model, tok, "causal"), "{text} It was {mask}.", WORDS, calibrate="contextual"
    )
    clf.save_pretrained(tmp_path / "c")
    config = clf.saved_config()
    assert config["calibration"]["method"] == "contextual"
    assert config["calibration"]["content_free"] == ["N/A", "", "[MASK]"]
    assert len(config["calibration"]["prior"]) == 2
    loaded = PromptClassifier.from_pretrained(tmp_path / "c")
    assert loaded.calibrate == "contextual"
    np.testing.assert_allclose(loaded.predict_proba(DATA), clf.predict_proba(DATA), atol=1e-5)
    plain = PromptClassifier(backbone_from_model(model, tok, "causal"), "{text} It was {mask}.", WORDS)
    assert "calibration" not in plain.saved_config()
    assert not np.allclose(plain.predict_proba(DATA), clf.predict_proba(DATA))


def test_masked_model_skips_its_own_mask_token_as_content_free_input():
    model, tok = tiny_bert()
    clf = PromptClassifier(
        backbone_from_model(model, tok, "masked"),
        "{text} It was {mask}.",
        {"a": "good", "b": "bad"},
        calibrate="contextual",
    )
    assert len(clf.module.content_free) == 2  # "[MASK]" is BERT's mask token: left out
    assert clf.predict_proba(["fine"]).shape == (1, 2)
    with pytest.raises(ConfigError, match="slot token"):
        clf.set_calibration("contextual", ["[MASK]"])


def test_calibration_errors():
    clf = PromptClassifier(biased(), "{text} It was {mask}.", WORDS)
    with pytest.raises(ConfigError, match="unknown calibration"):
        clf.set_calibration("platt")
    with pytest.raises(ConfigError, match="at least one"):
        ContextualCalibration(())
    clf.objective = MultiLabel(clf.labels)
    with pytest.raises(PromptFTError, match="multi_label"):
        clf.set_calibration("contextual")
    calibrated = PromptClassifier(biased(), "{text} It was {mask}.", WORDS, calibrate="contextual")
    with pytest.raises(PromptFTError, match="set_calibration"):
        calibrated.objective = MultiLabel(calibrated.labels)
