"""Approach (a) of multi-label: a yes/no question per label, the text's KV cache shared across labels."""

import numpy as np
import pytest
import torch
from test_task_types import MULTI, STEPS

from promptft import LoraSettings, load_classifier
from promptft.classifiers import YesNoClassifier
from promptft.classifiers.yes_no import ask_labels
from promptft.errors import ConfigError, TemplateError
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


# ----- training-time label subsampling (train_negatives) -----


def lora_made_to_count(clf):
    clf.set_finetune(LoraSettings(r=4, dropout=0.0))  # no dropout: forwards in training mode compare
    with torch.no_grad():  # LoRA starts as a no-op (B = 0): make it count, so gradients reach every question
        for name, param in clf.module.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))
    return clf


def test_ask_labels_keeps_positives_draws_seeded_and_afresh():
    positives = (3, 17)
    torch.manual_seed(0)
    first = [ask_labels(positives, 28, 4) for _ in range(5)]
    torch.manual_seed(0)
    assert [ask_labels(positives, 28, 4) for _ in range(5)] == first  # seeded: the run repeats
    assert len({tuple(a) for a in first}) > 1  # drawn afresh every step
    for asked in first:
        assert set(positives) <= set(asked) and len(asked) == 6 and asked == sorted(set(asked))
    assert ask_labels((), 28, 0) and len(ask_labels((), 28, 0)) == 1  # always at least one question
    state = torch.get_rng_state()
    assert ask_labels(positives, 28, 26) == list(range(28))  # N covers the rest: everything, nothing drawn
    assert torch.equal(torch.get_rng_state(), state)


def test_only_asked_questions_run_and_carry_loss(monkeypatch):
    clf = lora_made_to_count(make(train_negatives=1))
    encoded = clf.encode_for_training(MULTI)
    assert encoded[0].positives == (0, 2)  # joy, love
    run = []
    log_odds = clf.module.log_odds
    monkeypatch.setattr(
        clf.module, "log_odds", lambda groups: run.append(sum(map(len, groups))) or log_odds(groups)
    )
    clf.module.train()
    torch.manual_seed(1)
    logits = clf.module(encoded)
    logits.retain_grad()
    asked = ~logits.isnan()
    targets = clf.objective.targets(MULTI)
    assert run == [int(asked.sum())] and run[0] < 8 * 3  # only the asked questions ran
    assert bool(asked[targets.bool()].all())  # positives always asked
    assert asked.sum(1).tolist() == [min(len(ex.label) + 1, 3) for ex in MULTI]
    loss = clf.objective.loss(logits, targets)
    by_hand = [
        torch.nn.functional.binary_cross_entropy_with_logits(logits[i][asked[i]], targets[i][asked[i]])
        for i in range(len(MULTI))
    ]
    torch.testing.assert_close(loss, torch.stack(by_hand))
    loss.sum().backward()
    assert bool((logits.grad[~asked] == 0).all()) and bool((logits.grad[asked] != 0).all())
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in clf.module.parameters() if p.requires_grad
    )
    clf.module.train_negatives = None  # the asked questions score as they do when every label is asked
    with torch.no_grad():
        full = clf.module(encoded)
    torch.testing.assert_close(logits.detach()[asked], full[asked], atol=1e-5, rtol=1e-5)


def test_enough_negatives_is_the_full_path_and_evaluation_asks_every_label():
    clf = lora_made_to_count(make(train_negatives=3))  # 3 labels: every label, nothing drawn
    encoded = clf.encode_for_training(MULTI)
    clf.module.train()
    torch.manual_seed(0)
    with torch.no_grad():
        every = clf.module(encoded)
        clf.train_negatives = None
        full = clf.module(encoded)
        clf.train_negatives = 0
        clf.module.eval()  # evaluation (dev selection, prediction) asks every label
        evaluated = clf.module(encoded)
    assert not every.isnan().any()
    torch.testing.assert_close(every, full)
    torch.testing.assert_close(evaluated, full, atol=1e-5, rtol=1e-5)


def test_fit_with_train_negatives_saves_and_loads(tmp_path):
    model, tok = tiny_llama()
    model.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    clf = YesNoClassifier.from_model(
        str(tmp_path / "base"), TEMPLATE, LABELS, finetune="lora", device="cpu", train_negatives=1
    )
    result = clf.fit(MULTI, MULTI[:6], STEPS)
    assert np.isfinite(result.history[-1]["train_loss"]) and "macro_f1" in result.best_dev
    probs = clf.predict_proba(MULTI)
    assert probs.shape == (8, 3) and np.isfinite(probs).all()
    clf.save_pretrained(tmp_path / "yn")
    again = load_classifier(tmp_path / "yn", device="cpu")
    assert again.train_negatives == 1 and "train_negatives=1" in again.describe()
    np.testing.assert_allclose(again.predict_proba(MULTI), probs, atol=1e-5)


@pytest.mark.parametrize("bad", [-1, 2.5, "4", True])
def test_bad_train_negatives_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="train_negatives must be a whole number >= 0"):
        make(train_negatives=bad)
    clf = make()
    with pytest.raises(ConfigError, match="train_negatives must be a whole number >= 0"):
        clf.train_negatives = bad
    with pytest.raises(ConfigError, match="train_negatives must be a whole number >= 0"):
        YesNoClassifier.from_model("no-such-model-is-loaded", TEMPLATE, LABELS, train_negatives=bad)


def test_train_negatives_in_jobs_and_bench_options():
    from promptft.config import JobConfig
    from promptft.config.bench import method_job

    job = JobConfig.parse({"model": {"method": "yes_no"}, "prompt": {"train_negatives": 4}})
    assert job.prompt.train_negatives == 4
    assert method_job({"train_negatives": 4}, "yes_no", "lora").prompt.train_negatives == 4
    with pytest.raises(ConfigError, match="train_negatives"):
        JobConfig.parse({"model": {"method": "yes_no"}, "prompt": {"train_negatives": -1}})
    with pytest.raises(ConfigError, match="for model.method yes_no, not prompt"):
        JobConfig.parse({"prompt": {"train_negatives": 4}})
    with pytest.raises(ConfigError, match="train_negatives"):
        method_job({"train_negatives": 4}, "prompt", "lora")


def test_multi_label_loss_leaves_out_nan_labels():
    objective = MultiLabel(["a", "b", "c"])
    logits = torch.tensor([[2.0, float("nan"), -1.0], [0.5, 1.0, 3.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = torch.stack([bce(logits[0, [0, 2]], targets[0, [0, 2]]), bce(logits[1], targets[1])])
    torch.testing.assert_close(objective.loss(logits, targets), expected)
