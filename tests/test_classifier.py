import numpy as np
import pytest
import torch

from promptft import Example, HeadClassifier, LoraSettings, PromptClassifier, load_classifier
from promptft.errors import DataError, ModelError, VerbalizerError
from promptft.models import backbone_from_model
from tiny import bpe_tokenizer, tiny_llama, tiny_t5

WORDS = {"negative": "terrible", "positive": ["great", "wonderful fantastic"]}
DATA = [
    Example({"text": t}, lab)
    for t, lab in [
        ("I loved it", "positive"),
        ("a wonderful film", "positive"),
        ("I hated it", "negative"),
        ("an awful mess", "negative"),
        ("good acting", "positive"),
        ("boring and bad", "negative"),
    ]
]


def make(finetune="full", factory=tiny_llama, kind="causal", **kw):
    model, tok = factory()
    clf = PromptClassifier(
        backbone_from_model(model, tok, kind), "{text} It was {mask}.", WORDS, max_length=64
    )
    clf.set_finetune(finetune, **kw)
    return clf


def test_predict_proba_shape_order_and_sum():
    clf = make("none")
    probs = clf.predict_proba(DATA)
    assert probs.shape == (6, 2)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    # sorted-by-length batching must return rows in input order
    one_by_one = np.concatenate([clf.predict_proba([ex]) for ex in DATA])
    np.testing.assert_allclose(probs, one_by_one, atol=1e-5)
    assert clf.predict(DATA) == [clf.labels[i] for i in probs.argmax(1)]


def test_a_long_prediction_pass_logs_its_progress(monkeypatch, caplog):
    import promptft.classifiers.base as base

    clf = make("none")
    monkeypatch.setattr(base, "PROGRESS_LOG_SECONDS", 0.0)  # every batch counts as long
    with caplog.at_level("INFO", logger="promptft.classifiers.base"):
        clf.predict_proba(DATA, batch_size=2)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("predicting:")]
    assert [line.split(" (")[0] for line in lines] == ["predicting: 2/6", "predicting: 4/6"]  # not the last


def test_label_logits_combine_words_by_logsumexp_and_mean():
    clf = make("none")
    enc = clf.encode(DATA[:2])
    with torch.no_grad():
        words = clf.backbone.score(enc, clf.words)
        logits = clf.label_logits(enc)
    torch.testing.assert_close(logits[:, 0], words[:, 0])
    torch.testing.assert_close(logits[:, 1], torch.logsumexp(words[:, 1:], dim=1))


def test_multi_token_words_share_the_prompts_kv_cache_with_the_same_scores_and_gradients(monkeypatch):
    import promptft.classifiers.prompt as prompt_module

    calls = []
    real = prompt_module.shared_prefix_scores
    monkeypatch.setattr(
        prompt_module, "shared_prefix_scores", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    clf = make(LoraSettings(r=4))
    with torch.no_grad():  # LoRA starts as a no-op (B = 0): make it count, so the cache carries its effect
        for name, param in clf.module.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))
    enc = clf.encode(DATA)
    assert clf.words.max_tokens > 1  # "wonderful fantastic"

    def scores_and_grads(module):
        clf.module.zero_grad()
        scores = module(enc)
        scores.sum().backward()
        grads = [p.grad.clone() for p in clf.module.parameters() if p.requires_grad]
        return scores.detach(), grads

    clf.module.train()
    shared, shared_grads = scores_and_grads(clf.module.word_scores)
    assert calls  # the shared-cache path ran
    whole, whole_grads = scores_and_grads(lambda e: clf.backbone(e, clf.words, clf.module.token_reduction))
    torch.testing.assert_close(shared, whole, atol=1e-5, rtol=1e-5)
    for a, b in zip(shared_grads, whole_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)  # float noise of a different summation order


def test_multi_token_words_score_whole_prompts_where_the_model_takes_no_position_ids(monkeypatch):
    import promptft.classifiers.prompt as prompt_module

    clf = make("none")
    monkeypatch.setattr(prompt_module, "shares_in_batches", lambda backbone: False)
    monkeypatch.setattr(
        prompt_module, "shared_prefix_scores", lambda *a, **k: pytest.fail("one forward per prompt")
    )
    enc = clf.encode(DATA)
    with torch.no_grad():
        torch.testing.assert_close(clf.module.word_scores(enc), clf.backbone(enc, clf.words))


def test_plain_strings_and_dicts_are_accepted():
    clf = make("none")
    a = clf.predict_proba(["I loved it"])
    b = clf.predict_proba([{"text": "I loved it"}])
    np.testing.assert_allclose(a, b)


def test_evaluate_reports_accuracy_and_rejects_unknown_labels():
    clf = make("none")
    metrics = clf.evaluate(DATA)
    assert set(metrics) == {"accuracy", "macro_f1", "n"} and metrics["n"] == 6
    with pytest.raises(DataError, match="unknown label 'neutral'"):
        clf.evaluate([Example({"text": "meh"}, "neutral")])
    with pytest.raises(DataError, match="empty"):
        clf.evaluate([])


def test_bad_batch_size_and_a_file_as_run_dir_are_clear_errors(tmp_path):
    """Both were bare Python errors (range() arg 3 must not be zero; NotADirectoryError)."""
    from promptft import TrainConfig
    from promptft.errors import ConfigError, RunDirError

    clf = make("none")
    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        clf.predict(DATA, batch_size=0)
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    with pytest.raises(RunDirError, match="is a file"):
        make("lora").fit(DATA, DATA, TrainConfig(max_steps=1), run_dir=file)
    assert file.read_text() == "mine"


@pytest.mark.parametrize("finetune", ["full", "lora", "none"])
def test_save_and_reload_predicts_the_same(tmp_path, finetune, monkeypatch):
    clf = make(finetune, **({"lora": LoraSettings(r=2)} if finetune == "lora" else {}))
    with torch.no_grad():  # move off the initial weights so the test can tell a reload of stale weights
        for p in clf.module.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    expected = clf.predict_proba(DATA)
    base_dir = tmp_path / "base"
    model, tok = tiny_llama()
    model.save_pretrained(base_dir)
    tok.save_pretrained(base_dir)
    clf.base_model = str(base_dir)
    clf.save_pretrained(tmp_path / "clf")
    again = load_classifier(tmp_path / "clf", device="cpu")
    assert isinstance(again, PromptClassifier) and again.labels == clf.labels
    np.testing.assert_allclose(again.predict_proba(DATA), expected, atol=1e-5)
    if finetune == "lora":
        assert (tmp_path / "clf" / "adapter" / "adapter_model.safetensors").exists()
    if finetune == "full":
        assert (tmp_path / "clf" / "model" / "model.safetensors").exists()


def test_seq2seq_classifier_roundtrip(tmp_path):
    clf = make("full", factory=tiny_t5, kind="seq2seq")
    expected = clf.predict_proba(DATA)
    clf.save_pretrained(tmp_path / "t5")
    np.testing.assert_allclose(
        load_classifier(tmp_path / "t5", device="cpu").predict_proba(DATA), expected, atol=1e-5
    )


def test_from_pretrained_on_a_folder_without_config():
    with pytest.raises(ModelError, match="save_pretrained"):
        load_classifier("/nonexistent/folder")


def test_lora_trains_only_adapters():
    clf = make("lora", lora=LoraSettings(r=2))
    trainable = [n for n, p in clf.module.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_label_word_missing_from_vocab_is_an_error():
    model, tok = tiny_llama()
    from tiny import minilm_tokenizer

    with pytest.raises(VerbalizerError):
        PromptClassifier(
            backbone_from_model(model, minilm_tokenizer(), "causal"),
            "{text} It was {mask}.",
            {"a": "great", "b": "\u2603\u2604"},
        )


def _tiny_causal_dir(tmp_path):
    model, tok = tiny_llama()
    model.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    return str(tmp_path / "base")


@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_head_baseline_roundtrip(tmp_path, finetune):
    base = _tiny_causal_dir(tmp_path)
    clf = HeadClassifier.from_model(base, ["negative", "positive"], finetune=finetune, device="cpu", seed=0)
    probs = clf.predict_proba(DATA)
    assert probs.shape == (6, 2)
    clf.save_pretrained(tmp_path / "head")
    again = load_classifier(tmp_path / "head", device="cpu")
    assert isinstance(again, HeadClassifier)
    np.testing.assert_allclose(again.predict_proba(DATA), probs, atol=1e-5)


def test_head_baseline_pairs_fields(tmp_path):
    base = _tiny_causal_dir(tmp_path)
    clf = HeadClassifier.from_model(base, ["yes", "no"], fields=("premise", "hypothesis"), device="cpu")
    probs = clf.predict_proba([{"premise": "it was good", "hypothesis": "it was bad"}])
    assert probs.shape == (1, 2)
    with pytest.raises(DataError, match="hypothesis"):
        clf.encode([Example({"premise": "x"})])


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ModelError, match="offline aliases"):
        PromptClassifier.from_model("no-such-model", "{text} {mask}", {"a": "x", "b": "y"})


def test_tokenizer_fixture_is_real_bpe():
    assert bpe_tokenizer().convert_ids_to_tokens(bpe_tokenizer()(" great")["input_ids"])[0].startswith("Ġ")
