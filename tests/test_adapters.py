"""Every adapter on tiny causal, masked and seq2seq models: what trains, that training moves the scores,
the saved folder (peft's format only) loads back with identical predictions, and clear errors."""

import json

import numpy as np
import pytest
import torch

from promptft import Example, PromptClassifier
from promptft.adapters import ADAPTERS, LoraSettings, PromptTuningSettings, adapter_settings
from promptft.adapters.lora import apply_lora
from promptft.errors import ConfigError, ModelError
from promptft.models import backbone_from_model
from tiny import tiny_bert, tiny_gemma3, tiny_llama, tiny_t5

FACTORIES = {"causal": tiny_llama, "masked": tiny_bert, "seq2seq": tiny_t5}
WORDS = {"negative": "terrible", "positive": "great"}
TEXTS = ["I loved it", "an awful, boring mess", "fine"]
PEFT_ADAPTERS = ["lora", "ia3", "prompt_tuning", "p_tuning", "prefix_tuning", "label_embeddings"]
SMALL = {
    "prompt_tuning": {"num_virtual_tokens": 4},
    "p_tuning": {"num_virtual_tokens": 4, "encoder_hidden_size": 16},
    "prefix_tuning": {"num_virtual_tokens": 4},
    "lora": {"r": 2},
}
UNSUPPORTED = {("prefix_tuning", "masked")}


def make(kind, adapter, factory=None, **options):
    torch.manual_seed(0)
    model, tok = (factory or FACTORIES[kind])()
    clf = PromptClassifier(backbone_from_model(model, tok, kind), "{text} It was {mask}.", WORDS)
    torch.manual_seed(1)
    clf.set_finetune(adapter_settings(adapter, **{**SMALL.get(adapter, {}), **options}))
    return clf


def train_a_little(clf, steps=3, lr=0.5):
    """Plain SGD steps on the classifier's module, so the adapter's weights move measurably."""
    examples = [
        Example({"text": t}, lab) for t, lab in zip(TEXTS, ["positive", "negative", "positive"], strict=True)
    ]
    encoded = clf.encode(examples)
    target = torch.tensor(clf.label_index(examples))
    params = [p for p in clf.module.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr)
    clf.module.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(clf.module(encoded), target)
        loss.backward()
        optimizer.step()
    clf.module.eval()


CASES = [(a, k) for a in PEFT_ADAPTERS for k in FACTORIES if (a, k) not in UNSUPPORTED]


@pytest.mark.parametrize(("adapter", "kind"), CASES)
def test_adapter_trains_only_its_weights_and_round_trips(adapter, kind, tmp_path):
    clf = make(kind, adapter)
    trainable, total = clf.parameter_counts()
    assert 0 < trainable < total / 2, f"{adapter} should train a small share, got {trainable}/{total}"
    assert f"{trainable:,}" in clf.describe_trainable()
    frozen_before = {n: p.detach().clone() for n, p in clf.module.named_parameters() if not p.requires_grad}
    before = clf.predict_proba(TEXTS)
    train_a_little(clf)
    after = clf.predict_proba(TEXTS)
    # Bit-identical predictions would mean the adapter is bypassed (e.g. soft prompts never reach the model);
    # tiny random masked LMs move little, so any change counts.
    assert not np.array_equal(before, after), f"{adapter} trained nothing"
    for name, p in clf.module.named_parameters():
        if not p.requires_grad:
            torch.testing.assert_close(p, frozen_before[name], msg=f"frozen weight {name} changed")

    clf.save_pretrained(tmp_path / "clf")
    saved = sorted(p.name for p in (tmp_path / "clf").iterdir())
    assert saved == ["README.md", "adapter", "promptft_config.json"]  # README.md: the model card
    config = json.loads((tmp_path / "clf" / "promptft_config.json").read_text())
    assert config["adapter"] == adapter and "lora" not in config  # settings live in peft's file only
    assert (tmp_path / "clf" / "adapter" / "adapter_model.safetensors").exists()

    loaded = _load(tmp_path / "clf", kind)
    assert loaded.finetune == adapter
    torch.testing.assert_close(
        torch.tensor(loaded.predict_proba(TEXTS)), torch.tensor(after), atol=1e-5, rtol=1e-4
    )


def _load(directory, kind):
    """from_pretrained needs the base model by name; the tiny ones are rebuilt with the same seed."""
    import promptft.classifiers.prompt as classifier_module

    model, tok = FACTORIES[kind]()
    original = classifier_module.load_backbone
    classifier_module.load_backbone = lambda *a, **k: backbone_from_model(model, tok, kind)
    try:
        return PromptClassifier.from_pretrained(directory)
    finally:
        classifier_module.load_backbone = original


def test_prefix_tuning_on_a_masked_lm_is_a_clear_error():
    with pytest.raises(ConfigError, match="prefix_tuning does not work with masked"):
        make("masked", "prefix_tuning")


def test_prefix_tuning_refuses_gradient_checkpointing():
    model, tok = tiny_llama()
    model.activation_checkpointing_enable()
    clf = PromptClassifier(backbone_from_model(model, tok, "causal"), "{text} It was {mask}.", WORDS)
    with pytest.raises(ConfigError, match="gradient checkpointing"):
        clf.set_finetune("prefix_tuning")


@pytest.mark.parametrize("adapter", ["prefix_tuning", "prompt_tuning", "lora"])
def test_gemma3_hybrid_cache_works_with_prompt_learning(adapter):
    """Gemma 3 mixes sliding-window and global layers (its own cache class): each adapter must still train."""
    clf = make("causal", adapter, factory=tiny_gemma3)
    before = clf.predict_proba(TEXTS)
    train_a_little(clf)
    assert not np.array_equal(before, clf.predict_proba(TEXTS))


def test_soft_prompt_moves_the_scoring_position():
    """With prompt tuning the model sees virtual tokens first: scores must equal the peft model's full logits
    read at the shifted position (reading the unshifted one would score a token inside the text)."""
    clf = make("causal", "prompt_tuning", num_virtual_tokens=4)
    with torch.no_grad():
        for p in clf.peft_model.prompt_encoder.parameters():
            p.normal_(0, 1.0)  # make the soft prompt matter
    prompts = clf.encode(TEXTS)
    words = clf.words
    with torch.no_grad():
        scores = clf.backbone(prompts, words)
        for e, p in enumerate(prompts):
            full = clf.peft_model(
                input_ids=torch.tensor([p.input_ids]), attention_mask=torch.ones(1, len(p.input_ids))
            )
            logprobs = torch.log_softmax(full.logits[0].float(), -1)
            assert logprobs.shape[0] == len(p.input_ids) + 4
            for j, word in enumerate(words.word_ids):
                expected = logprobs[len(p.input_ids) - 1 + 4, word[0]]
                torch.testing.assert_close(scores[e, j], expected, atol=1e-4, rtol=1e-4)


def test_prompt_tuning_init_text_copies_the_text_embeddings():
    clf = make("causal", "prompt_tuning", num_virtual_tokens=3, init_text="great")
    ids = clf.backbone.tokenizer("great", add_special_tokens=False)["input_ids"]
    weight = clf.peft_model.prompt_encoder["default"].embedding.weight
    expected = clf.backbone.model.get_input_embeddings().weight[ids[0]]
    torch.testing.assert_close(weight[0], expected)


def embedding_rows_changed_by_training(clf) -> set[int]:
    """Train a little; the token ids whose input-embedding rows moved."""
    embeddings = clf.backbone.model.get_input_embeddings()
    before = embeddings(torch.arange(len(clf.backbone.tokenizer))).detach().clone()
    train_a_little(clf)
    after = embeddings(torch.arange(len(clf.backbone.tokenizer))).detach()
    return {i for i in range(before.shape[0]) if not torch.equal(before[i], after[i])}


def test_label_embeddings_train_only_the_label_word_rows():
    clf = make("causal", "label_embeddings")
    label_ids = {t for word in clf.words.word_ids for t in word}
    changed = embedding_rows_changed_by_training(clf)
    assert changed and changed <= label_ids


def test_lora_can_train_the_label_word_rows_too(tmp_path):
    clf = make("causal", "lora", label_embeddings=True)
    label_ids = {t for word in clf.words.word_ids for t in word}
    names = [n for n, p in clf.module.named_parameters() if p.requires_grad]
    assert any("lora_" in n for n in names) and any("trainable_tokens" in n for n in names)
    changed = embedding_rows_changed_by_training(clf)
    assert changed and changed <= label_ids
    # the tied output head reads the trained rows: moving them moves the scores
    delta = next(p for n, p in clf.module.named_parameters() if "trainable_tokens_delta" in n)
    scores = clf.predict_proba(TEXTS)
    with torch.no_grad():
        delta.mul_(-1.0)
    assert not np.allclose(scores, clf.predict_proba(TEXTS))
    with torch.no_grad():
        delta.mul_(-1.0)
    model, _ = tiny_llama()
    with pytest.raises(ConfigError, match="prompt classifier"):  # the head baseline has no label words
        apply_lora(model, LoraSettings(label_embeddings=True))
    clf.save_pretrained(tmp_path / "clf")  # peft's files hold the rows; loading restores them
    torch.testing.assert_close(
        torch.tensor(_load(tmp_path / "clf", "causal").predict_proba(TEXTS)),
        torch.tensor(scores),
        atol=1e-5,
        rtol=1e-4,
    )


def test_prefix_cache_is_off_for_soft_prompts_and_on_for_top_layer_lora():
    assert not make("causal", "prompt_tuning").enable_training_cache()
    assert make("causal", "lora", top_layers=1).enable_training_cache()


def test_every_registered_adapter_has_typed_settings_and_a_default_learning_rate():
    assert set(ADAPTERS) == {"full", "none", *PEFT_ADAPTERS}
    for name, cls in ADAPTERS.items():
        settings = cls()
        assert settings.name == name and settings.default_learning_rate > 0


@pytest.mark.parametrize(
    ("adapter", "options", "message"),
    [
        ("lora", {"r": 0}, "lora r must be >= 1"),
        ("lora", {"dropout": 1.5}, "dropout must be in"),
        ("prompt_tuning", {"num_virtual_tokens": 0}, "num_virtual_tokens must be >= 1"),
        ("p_tuning", {"encoder": "GRU"}, "'MLP' or 'LSTM'"),
        ("lora", {"rank": 8}, "unknown lora option"),
        ("lora", {"label_embeddings": True, "top_layers": 2}, "cannot go with top_layers"),
        ("lroa", {}, "did you mean 'lora'"),
        ("ia3", {"target_modules": ["k_proj"]}, "give both"),
    ],
)
def test_bad_adapter_settings_are_config_errors(adapter, options, message):
    with pytest.raises(ConfigError, match=message):
        adapter_settings(adapter, **options)


def test_save_pretrained_never_replaces_a_saved_classifier_without_overwrite(tmp_path):
    clf = make("causal", "lora")
    clf.save_pretrained(tmp_path / "clf")
    first = (tmp_path / "clf" / "adapter" / "adapter_model.safetensors").read_bytes()
    train_a_little(clf)
    with pytest.raises(ModelError, match="overwrite=True"):
        clf.save_pretrained(tmp_path / "clf")
    assert (tmp_path / "clf" / "adapter" / "adapter_model.safetensors").read_bytes() == first
    clf.save_pretrained(tmp_path / "clf", overwrite=True)
    assert (tmp_path / "clf" / "adapter" / "adapter_model.safetensors").read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clf"]  # no temporary folders left behind


def test_a_crash_while_saving_keeps_the_previous_classifier(tmp_path, monkeypatch):
    clf = make("causal", "lora")
    clf.save_pretrained(tmp_path / "clf")
    first = (tmp_path / "clf" / "adapter" / "adapter_model.safetensors").read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(clf.peft_model, "save_pretrained", crash)
    with pytest.raises(OSError, match="disk full"):
        clf.save_pretrained(tmp_path / "clf", overwrite=True)
    assert (tmp_path / "clf" / "adapter" / "adapter_model.safetensors").read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clf"]


def test_lora_settings_object_is_accepted_as_is():
    settings = LoraSettings(r=2, use_dora=True)
    clf = make("causal", "lora")  # a different classifier, to check the settings object is not shared
    assert clf.adapter is not settings
    assert adapter_settings(settings) is settings
    assert isinstance(adapter_settings("prompt_tuning"), PromptTuningSettings)


def test_prefix_cache_through_the_peft_forward_gives_the_same_scores_and_gradients():
    """Top-layer LoRA attached to the classifier (forward through PeftModel): caching the frozen bottom
    layer changes neither the label logits nor the adapter's gradients."""
    clf = make("causal", "lora", top_layers=1)
    with torch.no_grad():
        for name, p in clf.module.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)  # peft starts B at zero; make the adapter matter
    encoded = clf.encode(TEXTS)
    trainable = [p for p in clf.module.parameters() if p.requires_grad]

    def run():
        for p in trainable:
            p.grad = None
        logits = clf.module(encoded)
        logits.sum().backward()
        return logits.detach(), [p.grad.clone() for p in trainable]

    plain, plain_grads = run()
    assert clf.enable_training_cache()
    cached, cached_grads = run()
    assert len(clf.backbone.prefix_cache.store) == len(
        TEXTS
    )  # the frozen layer really was served from the cache
    clf.disable_training_cache()
    torch.testing.assert_close(cached, plain, atol=1e-5, rtol=1e-5)
    for a, b in zip(cached_grads, plain_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", ["causal", "masked"])
def test_dora_trains_and_round_trips(kind, tmp_path):
    clf = make(kind, "lora", use_dora=True)
    assert any("lora_magnitude_vector" in n for n, p in clf.module.named_parameters() if p.requires_grad)
    before = clf.predict_proba(TEXTS)
    train_a_little(clf)
    after = clf.predict_proba(TEXTS)
    assert not np.array_equal(before, after)
    clf.save_pretrained(tmp_path / "clf")
    loaded = _load(tmp_path / "clf", kind)
    torch.testing.assert_close(
        torch.tensor(loaded.predict_proba(TEXTS)), torch.tensor(after), atol=1e-5, rtol=1e-4
    )
