"""LM-BFF demonstrations in context: selection, truncation, averaging over sets, training, save/load."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from promptft import LoraSettings, load_classifier
from promptft.classifiers import PromptClassifier
from promptft.data import Example
from promptft.errors import ConfigError
from promptft.models import backbone_from_model
from promptft.objectives import MultiLabel
from promptft.prompts.demonstrations import (
    DemonstrationEncoder,
    DemonstrationPool,
    DemonstrationSettings,
    DemoPrompts,
)
from promptft.prompts.template import Template
from promptft.training import TrainConfig
from tiny import bpe_tokenizer, tiny_llama, tiny_roberta

WORDS = {"negative": "terrible", "positive": "great"}
TRAIN = [
    Example({"text": "I loved it"}, "positive"),
    Example({"text": "a wonderful film"}, "positive"),
    Example({"text": "good acting"}, "positive"),
    Example({"text": "great fun"}, "positive"),
    Example({"text": "I hated it"}, "negative"),
    Example({"text": "an awful mess"}, "negative"),
    Example({"text": "boring and bad"}, "negative"),
    Example({"text": "terrible plot"}, "negative"),
]
CAUSAL = ("causal", tiny_llama, "Review: {text}\nSentiment: {mask}")
MASKED = ("masked", tiny_roberta, "{text} It was {mask}.")
STEPS = TrainConfig(learning_rate=1e-2, max_steps=4, eval_every=2, batch_size=4, progress=False)


def contains(seq, sub) -> bool:
    sub = list(sub)
    return any(list(seq[i : i + len(sub)]) == sub for i in range(len(seq) - len(sub) + 1))


def make(kind="causal", factory=tiny_llama, template=CAUSAL[2], max_length=128, **settings):
    model, tok = factory()
    return PromptClassifier(
        backbone_from_model(model, tok, kind),
        template,
        WORDS,
        max_length=max_length,
        demonstrations=DemonstrationSettings(**settings),
    )


@pytest.mark.parametrize(("kind", "factory", "template"), [CAUSAL, MASKED])
def test_a_long_input_is_cut_never_the_slot_nor_the_demonstrations(kind, factory, template):
    clf = make(kind, factory, template, max_length=64)
    tok = clf.backbone.tokenizer
    clf.set_demonstration_pool(TRAIN)
    long_input = Example({"text": "the movie was good and the acting was bad " * 40}, "positive")
    (encoded,) = clf.encode([long_input])
    assert isinstance(encoded, DemoPrompts) and len(encoded.prompts) == 4
    for prompt in encoded.prompts:
        ids = list(prompt.input_ids)
        assert prompt.truncated and len(ids) <= 64
        text = tok.decode(ids)
        if kind == "causal":  # the prompt ends where the label word goes
            assert prompt.slot_index == len(ids) and text.endswith("\nSentiment:")
        else:
            assert ids.count(tok.mask_token_id) == 1 and ids[prompt.slot_index] == tok.mask_token_id
        # both demonstrations are whole: their texts (short) and their label words
        for word in ("terrible", "great"):
            assert contains(ids, tok(" " + word, add_special_tokens=False)["input_ids"]), text
        shown = [ex for ex in TRAIN if ex.fields["text"] in text]
        assert {ex.label for ex in shown} == {"negative", "positive"}, text
        assert "the movie was good" in text  # the input was cut, not dropped


@pytest.mark.parametrize("slot_text", [None, "<mask>"])
def test_long_demonstrations_lose_text_but_keep_their_label_words(slot_text):
    tok = bpe_tokenizer()
    template = Template("Review: {text}\nSentiment: {mask}" if slot_text is None else "{text} It was {mask}.")
    words = ["terrible", "wonderful fantastic"]
    enc = DemonstrationEncoder(tok, template, words, slot_text=slot_text, max_length=48, reserve=1)
    demos = [Example({"text": "the acting was bad " * 30}, "negative")] * 2
    out = enc.encode_with({"text": "I loved it " * 30}, demos)
    ids = list(out.input_ids)
    assert out.truncated and len(ids) <= 47
    for word in words:  # every label word survives, whole
        assert contains(ids, tok(" " + word, add_special_tokens=False)["input_ids"]), tok.decode(ids)
    text = tok.decode(ids)
    assert "I loved it" in text  # the input keeps its fair share
    if slot_text is None:
        assert text.endswith("Sentiment:")
    else:
        assert ids.count(tok.mask_token_id) == 1


def test_similar_selection_picks_the_nearest_example_of_each_class():
    vectors = {
        "I loved it": [1.0, 0.0, 0.0],
        "a wonderful film": [0.0, 1.0, 0.0],
        "I hated it": [0.9, 0.1, 0.0],
        "an awful mess": [0.0, 0.0, 1.0],
        "query close to love": [1.0, 0.05, 0.0],
        "query close to film": [0.1, 1.0, 0.9],
    }
    pool_examples = [
        Example({"text": t}, label)
        for t, label in [
            ("I loved it", "positive"),
            ("a wonderful film", "positive"),
            ("I hated it", "negative"),
            ("an awful mess", "negative"),
        ]
    ]
    calls = []

    def stub(texts):
        calls.append(list(texts))
        return np.array([vectors[t] for t in texts])

    settings = DemonstrationSettings(selection="similar", top_fraction=0.5)
    pool = DemonstrationPool(pool_examples, ["negative", "positive"], ["text"], settings, embed=stub)
    queries = [Example({"text": "query close to love"}), Example({"text": "query close to film"})]
    chosen = pool.choose(queries, n_sets=6)
    texts = [[[pool.examples[i].fields["text"] for i in s] for s in sets] for sets in chosen]
    assert all(s == ["I hated it", "I loved it"] for s in texts[0])  # the top half of each class: its nearest
    assert all(s == ["an awful mess", "a wonderful film"] for s in texts[1])
    assert len(calls) == 2  # the pool is embedded once, the queries once
    # with the whole class allowed (top_fraction 1), draws differ across sets
    wide = DemonstrationPool(
        pool_examples,
        ["negative", "positive"],
        ["text"],
        DemonstrationSettings("similar", top_fraction=1.0),
        stub,
    )
    assert len({tuple(s) for s in wide.choose(queries[:1], n_sets=20)[0]}) > 1


def test_random_selection_is_seeded_by_the_input_and_never_shows_the_example_itself():
    pool = DemonstrationPool(TRAIN, ["negative", "positive"], ["text"], DemonstrationSettings())
    first = pool.choose(TRAIN, 3, training=True)
    assert first == pool.choose(TRAIN, 3, training=True)
    assert pool.choose(TRAIN[2:3], 3, training=True) == first[2:3]  # not the batch: the input decides
    for example, sets in zip(TRAIN, first, strict=True):
        for demo_set in sets:
            assert [TRAIN[i].label for i in demo_set] == ["negative", "positive"]
            assert all(TRAIN[i] != example for i in demo_set)


def test_inference_averages_the_label_probabilities_over_demonstration_sets():
    clf = make(n_sets=3)
    clf.set_finetune("none")
    clf.set_demonstration_pool(TRAIN)
    encoded = clf.encode([Example({"text": "what a film"}), Example({"text": "dull"})])
    assert [len(e.prompts) for e in encoded] == [3, 3]
    with torch.no_grad():
        out = clf.module(encoded)
        for row, e in zip(out, encoded, strict=True):
            per_set = torch.stack([clf.module.label_scores([p])[0] for p in e.prompts]).softmax(-1)
            assert len({p.input_ids for p in e.prompts}) > 1  # the sets differ
            torch.testing.assert_close(row, per_set.mean(0).log(), atol=1e-5, rtol=1e-5)
    probs = clf.predict_proba([Example({"text": "what a film"})])
    np.testing.assert_allclose(probs[0], out[0].exp().numpy(), atol=1e-5)
    assert math.isclose(float(probs.sum()), 1.0, rel_tol=1e-5)


def test_fit_uses_the_training_set_as_pool_and_a_saved_classifier_predicts_the_same(tmp_path):
    model, tok = tiny_llama()
    model.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    clf = PromptClassifier.from_model(
        str(tmp_path / "base"),
        CAUSAL[2],
        WORDS,
        finetune=LoraSettings(r=4),
        device="cpu",
        demonstrations=DemonstrationSettings(n_sets=2, seed=5),
    )
    result = clf.fit(TRAIN, TRAIN[:4], STEPS)
    assert result.steps >= 2
    assert clf.demonstration_pool is not None and clf.demonstration_pool.examples == TRAIN
    queries = [Example({"text": "what a film"}), Example({"text": "dull"})]
    probs = clf.predict_proba(queries)
    clf.save_pretrained(tmp_path / "clf")
    again = load_classifier(tmp_path / "clf", device="cpu")
    assert isinstance(again, PromptClassifier)
    assert again.demonstrations == clf.demonstrations
    assert again.demonstration_pool.examples == TRAIN
    np.testing.assert_allclose(again.predict_proba(queries), probs, atol=1e-5)


def test_demonstrations_need_a_pool_and_a_single_label_task():
    clf = make()
    with pytest.raises(ConfigError, match="set_demonstration_pool"):
        clf.encode([Example({"text": "hello"})])
    with pytest.raises(ConfigError, match="single-label"):
        clf.objective = MultiLabel(["negative", "positive"])
    with pytest.raises(ConfigError, match="n_sets"):
        DemonstrationSettings(n_sets=0)
