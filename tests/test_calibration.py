import numpy as np
import pytest
import torch
from planted import PlantedBackbone

from promptft import Example, PromptClassifier
from promptft.errors import ConfigError, PromptFTError
from promptft.evaluation import expected_calibration_error
from promptft.models import backbone_from_model
from promptft.objectives import MultiLabel, SingleLabel, objective_from_dict
from promptft.objectives.single_label import fit_temperature
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


# ----- temperature scaling -----


@pytest.mark.parametrize("true_t", [0.4, 2.5])
def test_fit_temperature_recovers_the_temperature_labels_were_drawn_at(true_t):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(20000, 3, generator=g) * 2
    labels = torch.multinomial((logits / true_t).softmax(-1), 1, generator=g).squeeze(1)
    assert fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.05)


def test_temperature_changes_confidence_not_predictions():
    objective = SingleLabel(["a", "b"], calibration_temperature=0.5)
    logits = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    torch.testing.assert_close(objective.scores(logits), (logits * 2).softmax(-1))
    assert objective.decode(logits) == SingleLabel(["a", "b"]).decode(logits)
    assert objective_from_dict(objective.to_dict(), ["a", "b"]).calibration_temperature == 0.5
    assert SingleLabel(["a", "b"]).to_dict() == {"name": "single_label", "labels": ["a", "b"]}  # as before
    with pytest.raises(ConfigError, match="positive"):
        SingleLabel(["a", "b"], calibration_temperature=0)
    with pytest.raises(ConfigError, match="at least 2 labels"):  # every prediction would be "a"
        SingleLabel(["a"])


def under_confident():
    """Always right, but only slightly sure: a small cue per class."""
    return PlantedBackbone(cues={"good": {"great": 0.3}, "bad": {"terrible": 0.3}})


def test_temperature_calibration_sharpens_an_under_confident_model_and_cuts_ece():
    clf = PromptClassifier(under_confident(), "{text} It was {mask}.", WORDS, calibrate="temperature")
    assert clf.calibrate == "temperature"
    before, _ = ece(clf, DATA)
    predictions = clf.predict(DATA)
    assert clf.objective.calibration_temperature == 1.0  # not fitted yet
    clf.tune(DATA)
    t = clf.objective.calibration_temperature
    assert t < 0.2  # always right: the likelihood wants it sharp (down to the search's bound)
    after, probs = ece(clf, DATA)
    assert after < before - 0.3
    assert clf.predict(DATA) == predictions
    clf.set_calibration(None)  # off: the fitted temperature goes with it
    assert clf.objective.calibration_temperature == 1.0 and clf.calibrate is None


def test_temperature_softens_an_over_confident_model():
    noisy = [
        Example(ex.fields, ex.label if i % 3 else ("positive" if ex.label == "negative" else "negative"))
        for i, ex in enumerate(DATA)
    ]  # a third of the labels flipped: 67% accuracy at best
    backbone = PlantedBackbone(cues={"good": {"great": 6.0}, "bad": {"terrible": 6.0}})
    clf = PromptClassifier(backbone, "{text} It was {mask}.", WORDS, calibrate="temperature")
    clf.tune(noisy)
    assert clf.objective.calibration_temperature > 2
    assert clf.predict_proba(DATA).max(1).mean() == pytest.approx(clf.evaluate(noisy)["accuracy"], abs=0.05)


def test_contextual_plus_temperature_survives_save_and_load(tmp_path):
    model, tok = tiny_llama()
    backbone = backbone_from_model(model, tok, "causal")
    clf = PromptClassifier(backbone, "{text} It was {mask}.", WORDS, calibrate="contextual+temperature")
    assert clf.calibrate == "contextual+temperature" and clf.contextual is not None
    clf.tune(DATA)
    t = clf.objective.calibration_temperature
    assert t != 1.0
    clf.save_pretrained(tmp_path / "c")
    loaded = PromptClassifier.from_pretrained(tmp_path / "c")
    assert loaded.calibrate == "contextual+temperature"
    assert loaded.objective.calibration_temperature == pytest.approx(t)
    np.testing.assert_allclose(loaded.predict_proba(DATA), clf.predict_proba(DATA), atol=1e-5)


def test_an_objectives_own_temperature_is_kept_without_calibrate():
    clf = PromptClassifier(
        under_confident(),
        "{text} It was {mask}.",
        WORDS,
        objective=SingleLabel(["negative", "positive"], 0.5),
    )
    assert clf.objective.calibration_temperature == 0.5 and clf.calibrate is None


def test_temperature_errors():
    with pytest.raises(PromptFTError, match="only used with calibrate='contextual'"):
        PromptClassifier(
            biased(), "{text} It was {mask}.", WORDS, calibrate="temperature", content_free=["N/A"]
        )
    clf = PromptClassifier(biased(), "{text} It was {mask}.", WORDS)
    clf.objective = MultiLabel(clf.labels)
    with pytest.raises(PromptFTError, match="single-label"):
        clf.set_calibration("temperature")
