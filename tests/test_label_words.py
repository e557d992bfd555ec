import json

import numpy as np
import pytest
import torch
from planted import PlantedBackbone

from promptft import Example
from promptft.errors import ConfigError, DataError
from promptft.models import backbone_from_model
from promptft.prompts.template import Template
from promptft.prompts.verbalizer import Verbalizer
from promptft.search.label_words import (
    is_clean_word,
    read_label_words_file,
    search_assignments,
    search_label_words,
)
from tiny import tiny_bert, tiny_llama, tiny_roberta, tiny_t5

TEMPLATE = "{text} It was {mask}."


def planted():
    # "movie" is likely everywhere (LM-BFF's raw ranking puts it first for both classes); the cues make
    # great/wonderful positive and terrible/awful negative, "terrible" a little stronger than "awful".
    return PlantedBackbone(
        bias={"movie": 5.0},
        cues={"loved": {"great": 3.0, "wonderful": 2.5}, "hated": {"terrible": 3.0, "awful": 2.5}},
    )


def data(n: int, offset: int = 0):
    return [
        Example({"text": f"I {verb} it {i}"}, label)
        for i in range(offset, offset + n)
        for verb, label in (("loved", "positive"), ("hated", "negative"))
    ]


@pytest.mark.parametrize("max_enumerate", [200_000, 1])  # every assignment, and the beam search
def test_search_finds_the_planted_words(max_enumerate):
    result = search_label_words(planted, TEMPLATE, data(4), data(4, 10), k=4, max_enumerate=max_enumerate)
    assert result.label_words == {"negative": "terrible", "positive": "great"}
    assert result.best.screen_accuracy == 1.0
    assert result.labels == ["negative", "positive"]
    # LM-BFF's ranking: the likely-everywhere word tops both classes; the assignment search avoids it
    assert result.candidates["positive"][0].word == "movie"
    assert result.candidates["negative"][0].word == "movie"
    assert {c.word for c in result.candidates["positive"][:3]} == {"movie", "great", "wonderful"}
    for a in result.assignments:
        assert len(set(a.label_words.values())) == 2
    accuracies = [a.screen_accuracy for a in result.assignments]
    assert accuracies == sorted(accuracies, reverse=True)
    assert any(a.screen_accuracy == 0.5 for a in result.assignments)  # e.g. movie for one class


def test_contrast_ranking_drops_words_likely_everywhere():
    result = search_label_words(planted, TEMPLATE, data(4), data(4, 10), k=2, rank="contrast")
    assert [c.word for c in result.candidates["positive"]] == ["great", "wonderful"]
    assert [c.word for c in result.candidates["negative"]] == ["terrible", "awful"]
    assert result.label_words == {"negative": "terrible", "positive": "great"}


def test_screen_on_train_reports_dev_accuracy_too():
    result = search_label_words(planted, TEMPLATE, data(4), data(3, 10), k=3, screen="train")
    assert result.settings["screen"] == "train"
    assert result.best.dev_accuracy == 1.0


def test_result_file_round_trip(tmp_path):
    result = search_label_words(planted, TEMPLATE, data(2), data(2, 10), k=3, top_n=3)
    path = result.write(tmp_path / "words.json")
    saved = json.loads(path.read_text())
    assert saved["label_words"] == {"negative": "terrible", "positive": "great"}
    assert len(saved["assignments"]) == 3
    assert saved["settings"]["k"] == 3
    assert read_label_words_file(path) == {"negative": "terrible", "positive": "great"}
    (tmp_path / "plain.json").write_text('{"a": "yes", "b": ["no", "never"]}')
    assert read_label_words_file(tmp_path / "plain.json") == {"a": "yes", "b": ["no", "never"]}
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="no label words"):
        read_label_words_file(tmp_path / "bad.json")


def test_fine_tune_top_reranks_on_a_real_tiny_model():
    factory = lambda: backbone_from_model(*tiny_llama(), "causal")  # noqa: E731
    result = search_label_words(
        factory, TEMPLATE, data(2), data(2, 10), k=3, top_n=3, finetune_top=2, finetune_steps=2
    )
    tuned = [a for a in result.assignments if a.finetuned is not None]
    assert len(tuned) == 2
    assert result.assignments[0].finetuned is not None  # fine-tuned assignments rank first
    assert "accuracy" in tuned[0].finetuned and tuned[0].finetuned["steps"] == 2
    for words in result.candidates.values():  # pruned to clean single-token words
        assert all(c.word.isalpha() and len(c.word) >= 2 for c in words)


def test_assignment_search_prefers_margin_on_ties_and_keeps_words_distinct():
    scores = np.array([[3.0, 0.0, 2.9], [0.0, 3.0, 0.0]])  # columns: w0, w1, w2; gold 0 then 1
    gold = np.array([0, 1])
    best = search_assignments(scores, gold, [[0, 2, 1], [1, 0]], top_n=10)
    assert best[0][0] == (0, 1)
    assert all(len(set(combo)) == 2 for combo, _, _ in best)
    assert best[0][1] == 1.0


def test_clean_words_only():
    model, tok = tiny_llama()
    special = set(tok.all_special_ids)
    great = tok(" great", add_special_tokens=False)["input_ids"]
    assert is_clean_word(tok, great[0], True, special) == "great"
    dot = tok(".", add_special_tokens=False)["input_ids"][0]
    assert is_clean_word(tok, dot, False, special) is None
    assert is_clean_word(tok, tok.pad_token_id, True, special) is None


@pytest.mark.parametrize(
    ("factory", "kind"), [(tiny_llama, "causal"), (tiny_roberta, "masked"), (tiny_t5, "seq2seq")]
)
def test_slot_log_probs_equal_the_backbones_word_scores(factory, kind):
    model, tok = factory()
    backbone = backbone_from_model(model, tok, kind)
    template = Template(TEMPLATE)
    encoder = backbone.make_encoder(template, 64)
    prompts = [encoder.encode({"text": t}) for t in ("I loved it", "a long and boring film indeed")]
    words = Verbalizer({"a": "great", "b": "terrible", "c": "good"}).tokenize(
        tok, backbone.leading_space(template)
    )
    assert words.max_tokens == 1
    with torch.no_grad():
        full = backbone.slot_log_probs(prompts)
        picked = backbone(prompts, words)
    assert full.shape == (2, len(tok))
    torch.testing.assert_close(full[:, [w[0] for w in words.word_ids]], picked, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(full.exp().sum(-1), torch.ones(2), atol=1e-4, rtol=1e-4)


def test_masked_backbone_search_runs():
    factory = lambda: backbone_from_model(*tiny_bert(), "masked")  # noqa: E731
    result = search_label_words(factory, TEMPLATE, data(2), data(2, 10), k=2, top_n=2)
    assert len(result.assignments) == 2


def test_search_errors():
    with pytest.raises(DataError, match="training"):
        search_label_words(planted, TEMPLATE, [], data(2))
    with pytest.raises(ConfigError, match="--rank"):
        search_label_words(planted, TEMPLATE, data(2), data(2), rank="best")
    with pytest.raises(DataError, match="two labels"):
        one = [Example({"text": "x"}, "a"), Example({"text": "y"}, "a")]
        search_label_words(planted, TEMPLATE, one, one)
