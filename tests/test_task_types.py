"""Multi-label and regression classifiers end to end in Python on tiny models: fit through the same
trainer, predict label sets / floats, probabilities, evaluate, save and load with thresholds and range."""

import numpy as np
import pytest
import torch

from promptft import Example, HeadClassifier, PromptClassifier, TrainConfig, load_classifier
from promptft.errors import PromptFTError
from promptft.models import backbone_from_model
from promptft.objectives import MultiLabel, Regression
from tiny import tiny_llama

EMOTIONS = {"joy": "great", "anger": "terrible", "love": "wonderful"}
MULTI = [
    Example({"text": t}, labels)
    for t, labels in [
        ("I loved it, a wonderful film", ("joy", "love")),
        ("I hated it", ("anger",)),
        ("great and good", ("joy",)),
        ("an awful mess, bad", ("anger",)),
        ("wonderful fantastic", ("love",)),
        ("boring and bad, I hated it", ("anger",)),
        ("good acting, I loved it", ("joy", "love")),
        ("horrible", ("anger",)),
    ]
]
PAIRS = [
    Example({"sentence1": a, "sentence2": b}, score)
    for a, b, score in [
        ("It was great.", "It was great.", 5.0),
        ("It was great.", "It was terrible.", 0.5),
        ("I loved it.", "I loved it.", 4.8),
        ("The movie was good.", "The acting was bad.", 1.2),
        ("A wonderful film.", "A wonderful, moving film.", 4.0),
        ("I hated it.", "A boring, awful mess.", 2.6),
    ]
]
STEPS = TrainConfig(learning_rate=1e-2, max_steps=6, eval_every=3, batch_size=4, progress="off")


@pytest.fixture
def base_dir(tmp_path):
    model, tok = tiny_llama()
    model.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    return str(tmp_path / "base")


def prompt(template, words, objective, finetune="full", base=None):
    if base is not None:  # saved and loaded by name
        return PromptClassifier.from_model(
            base, template, words, finetune=finetune, max_length=64, device="cpu", objective=objective
        )
    model, tok = tiny_llama()
    clf = PromptClassifier(
        backbone_from_model(model, tok, "causal"), template, words, max_length=64, objective=objective
    )
    clf.set_finetune(finetune)
    return clf


def multi_label_clf(finetune="lora", base=None):
    return prompt("{text} It was {mask}.", EMOTIONS, MultiLabel(list(EMOTIONS)), finetune, base)


def test_multi_label_prompt_fit_predict_save_load(tmp_path, base_dir):
    clf = multi_label_clf(base=base_dir)
    assert clf.module.calibration is not None and not clf.module.calibration.initialised
    result = clf.fit(MULTI, MULTI[:6], STEPS)
    assert set(result.best_dev) >= {"macro_f1", "micro_f1", "subset_accuracy", "f1_joy", "n"}
    # the calibration was centred on the training data: several labels can exceed 0.5 at once
    assert clf.module.calibration.initialised and clf.module.calibration.bias.abs().sum() > 0
    probs = clf.predict_proba(MULTI)
    assert probs.shape == (8, 3) and ((probs > 0) & (probs < 1)).all()
    assert not np.allclose(probs.sum(1), 1)  # independent per label, not a softmax
    # the thresholds kept are those tuned on dev for the kept weights
    tuned = list(clf.objective.thresholds)
    clf.tune(MULTI[:6])
    assert clf.objective.thresholds == pytest.approx(tuned)
    predictions = clf.predict(MULTI)
    assert all(isinstance(p, tuple) and set(p) <= set(EMOTIONS) for p in predictions)
    assert predictions == [
        tuple(sorted(label for label, p, t in zip(clf.labels, row, tuned, strict=True) if p >= t))
        for row in probs
    ]
    metrics = clf.evaluate(MULTI)
    assert 0 <= metrics["macro_f1"] <= 1 and metrics["n"] == 8
    clf.save_pretrained(tmp_path / "ml")
    again = load_classifier(tmp_path / "ml", device="cpu")
    assert isinstance(again.objective, MultiLabel) and again.objective.thresholds == pytest.approx(tuned)
    np.testing.assert_allclose(again.predict_proba(MULTI), probs, atol=1e-5)
    assert again.predict(MULTI) == predictions


def test_multi_label_sigmoid_score_is_the_calibrated_label_word_log_probability():
    clf = multi_label_clf("none")
    encoded = clf.encode(MULTI[:3])
    with torch.no_grad():
        clf.module.calibration.scale.fill_(2.0)
        clf.module.calibration.bias.copy_(torch.tensor([1.0, 2.0, 3.0]))
        raw = clf.module.label_scores(encoded)
        torch.testing.assert_close(clf.module(encoded), raw * 2 + torch.tensor([1.0, 2.0, 3.0]))
    assert (raw < 0).all()  # log-probabilities: sigmoid(raw) alone would stay below 0.5


def test_regression_prompt_with_two_fields_fit_predict_save_load(tmp_path, base_dir):
    objective = Regression(["low", "high"], value_range=(0, 5))
    clf = prompt("{sentence1} {mask}, {sentence2}", {"low": "no", "high": "yes"}, objective, "lora", base_dir)
    result = clf.fit(PAIRS, PAIRS, STEPS)
    assert set(result.best_dev) >= {"pearson", "spearman", "mse"}
    assert result.history[-1]["train_loss"] < result.history[1]["train_loss"]  # KL goes down
    values = clf.predict(PAIRS)
    assert all(isinstance(v, float) and 0 <= v <= 5 for v in values)
    np.testing.assert_allclose(clf.predict_proba(PAIRS), values, atol=1e-5)  # [n] values
    assert clf.evaluate(PAIRS)["n"] == 6
    clf.save_pretrained(tmp_path / "reg")
    again = load_classifier(tmp_path / "reg", device="cpu")
    assert isinstance(again.objective, Regression) and again.objective.value_range == (0.0, 5.0)
    np.testing.assert_allclose(again.predict(PAIRS), values, atol=1e-5)


def test_objective_must_match_the_classifiers_labels():
    with pytest.raises(PromptFTError, match="labels"):
        prompt("{text} It was {mask}.", EMOTIONS, MultiLabel(["joy", "anger"]))
    with pytest.raises(Exception, match="two pole labels"):
        prompt("{text} It was {mask}.", EMOTIONS, Regression(list(EMOTIONS), value_range=(0, 1)))


def test_head_baseline_multi_label_sigmoid_bce(tmp_path, base_dir):
    clf = HeadClassifier.from_model(
        base_dir, list(EMOTIONS), objective=MultiLabel(list(EMOTIONS)), device="cpu", seed=0
    )
    result = clf.fit(MULTI, MULTI[:6], STEPS)
    assert "micro_f1" in result.best_dev
    probs = clf.predict_proba(MULTI)
    assert probs.shape == (8, 3) and not np.allclose(probs.sum(1), 1)
    clf.save_pretrained(tmp_path / "h")
    again = load_classifier(tmp_path / "h", device="cpu")
    assert again.objective.thresholds == pytest.approx(clf.objective.thresholds)
    np.testing.assert_allclose(again.predict_proba(MULTI), probs, atol=1e-5)


def test_head_baseline_regression_one_output_mse(tmp_path, base_dir):
    objective = Regression(
        ["low", "high"], value_range=(0, 5)
    )  # poles are a prompt's: the head has one output
    clf = HeadClassifier.from_model(
        base_dir, fields=("sentence1", "sentence2"), objective=objective, device="cpu", seed=0
    )
    assert clf.labels == ["value"] and clf.objective.loss_name == "mse"
    result = clf.fit(PAIRS, PAIRS, STEPS)
    assert "pearson" in result.best_dev
    values = clf.predict(PAIRS)
    assert all(0 <= v <= 5 for v in values)
    clf.save_pretrained(tmp_path / "h")
    again = load_classifier(tmp_path / "h", device="cpu")
    np.testing.assert_allclose(again.predict(PAIRS), values, atol=1e-5)
