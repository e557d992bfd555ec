"""Approach (a) of multi-label: a yes/no question per label, the text's KV cache shared across labels."""

import numpy as np
import pytest
import torch
from test_task_types import MULTI, STEPS

from promptft import LoraSettings, load_classifier
from promptft.classifiers import YesNoClassifier
from promptft.errors import TemplateError
from promptft.models import backbone_from_model
from promptft.models.shared_prefix import common_prefix_length
from promptft.objectives import MultiLabel
from tiny import tiny_llama, tiny_roberta

TEMPLATE = "{text}\nDoes it express {label}? {mask}"
LABELS = {"joy": "joy", "anger": "anger or rage", "love": "love"}


def make(factory=tiny_llama, kind="causal", **kw):
    model, tok = factory()
    return YesNoClassifier(backbone_from_model(model, tok, kind), TEMPLATE, LABELS, max_length=64, **kw)


@pytest.mark.parametrize("finetune", ["none", "lora"])
def test_shared_kv_cache_gives_the_scores_of_whole_prompts(finetune):
    clf = make()
    clf.set_finetune(finetune if finetune == "none" else LoraSettings(r=4))
    with torch.no_grad():  # LoRA starts as a no-op (B = 0): make it count, so the cache carries its effect
        for name, param in clf.module.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))
    encoded = clf.encode(MULTI)
    prompts = encoded[0].prompts
    assert common_prefix_length([p.input_ids for p in prompts]) >= 5  # the text is shared
    with torch.no_grad():
        shared = clf.module(encoded)
        clf.module.share_prefix = False
        whole = clf.module(encoded)
    assert shared.shape == (8, 3)
    torch.testing.assert_close(shared, whole, atol=1e-5, rtol=1e-5)


def test_score_is_the_log_odds_of_yes_over_no():
    clf = make()
    clf.set_finetune("none")
    encoded = clf.encode(MULTI[:2])
    flat = [p for q in encoded for p in q.prompts]
    with torch.no_grad():
        words = clf.backbone(flat, clf.words).view(2, 3, 2)
        torch.testing.assert_close(clf.module(encoded), words[..., 1] - words[..., 0], atol=1e-5, rtol=1e-5)


def test_fit_predict_save_load(tmp_path):
    model, tok = tiny_llama()
    model.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    clf = YesNoClassifier.from_model(str(tmp_path / "base"), TEMPLATE, LABELS, finetune="lora", device="cpu")
    assert isinstance(clf.objective, MultiLabel) and clf.fields == ("text",)
    result = clf.fit(MULTI, MULTI[:6], STEPS)
    assert "macro_f1" in result.best_dev
    probs = clf.predict_proba(MULTI)
    assert probs.shape == (8, 3)
    predictions = clf.predict(MULTI)
    assert all(isinstance(p, tuple) for p in predictions)
    clf.save_pretrained(tmp_path / "yn")
    again = load_classifier(tmp_path / "yn", device="cpu")
    assert isinstance(again, YesNoClassifier) and again.label_texts == LABELS
    assert again.objective.thresholds == pytest.approx(clf.objective.thresholds)
    np.testing.assert_allclose(again.predict_proba(MULTI), probs, atol=1e-5)


def test_masked_lm_asks_every_question_whole():
    clf = make(tiny_roberta, "masked")
    clf.set_finetune("none")
    assert clf.predict_proba(MULTI[:2]).shape == (2, 3)


def test_template_needs_a_label_field():
    with pytest.raises(TemplateError, match=r"no \{label\} field"):
        model, tok = tiny_llama()
        YesNoClassifier(backbone_from_model(model, tok, "causal"), "{text} {mask}", LABELS)
