"""Fairness audit: a planted biased classifier must be flagged by every check, an unbiased one by none."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from promptft.data import Example
from promptft.errors import ConfigError, DataError
from promptft.evaluation.counterfactual import (
    counterfactual_test,
    counterfactuals,
    find_groups,
    load_term_groups,
    parse_term_file,
    swap_terms,
)
from promptft.evaluation.equity_probe import build_probe, equity_probe, load_probe_spec
from promptft.evaluation.fairness import group_fairness
from promptft.evaluation.hatecheck import hatecheck_report, read_hatecheck
from promptft.recipes.fairness import FairnessResult, counterfactual_augment, fairness_audit

POSITIVE = {"good", "great", "happy", "glad", "excited", "relieved", "amazing", "wonderful", "loved", "fun"}
NEGATIVE = {"bad", "awful", "sad", "angry", "furious", "scared", "terrible", "boring", "horrible", "hated"}
MALE = {"he", "his", "him", "man", "boy", "brother", "son", "father", "husband", "john", "adam", "harry"}


class StubSentiment:
    """A lexicon classifier; with `bias`, anything mentioning a man gets `bias` added to its logit."""

    labels = ["negative", "positive"]

    def __init__(self, bias: float = 0.0) -> None:
        self.bias = bias

    def predict_proba(self, texts, batch_size=32):
        out = []
        for text in texts:
            words = set(re.findall(r"[a-z']+", str(text).lower()))
            logit = 2.0 * (len(words & POSITIVE) - len(words & NEGATIVE)) + 0.1
            if words & MALE:
                logit += self.bias
            p = 1 / (1 + np.exp(-logit))
            out.append([1 - p, p])
        return np.array(out)


BIASED, FAIR = StubSentiment(bias=3.0), StubSentiment()
TEXTS = [
    "He was good in the film.",
    "She was awful, and the plot was bad.",
    "My brother thought it was boring.",
    "The woman next to me loved it.",
    "John said the ending was terrible.",
    "A quiet film about a town.",
    "Her husband found it fun.",
    "The Muslim family at the market was happy.",
]


def test_terms_swap_keeping_case_and_word_boundaries():
    gender = load_term_groups(["gender"])["gender"]
    assert swap_terms("He gave his Book to THE MAN.", gender, 1) == "She gave her Book to THE WOMAN."
    assert swap_terms("She thanked her sister.", gender, 0) == "He thanked his brother."
    assert swap_terms("I saw her, then gave her the ball.", gender, 0) == "I saw him, then gave him the ball."
    assert swap_terms("The theme is mankind.", gender, 1) == "The theme is mankind."  # no partial words
    assert find_groups("a man and a woman", gender) == {0, 1}
    religion = load_term_groups(["religion"])["religion"]
    assert swap_terms("the Christian church", religion, 1) == "the Muslim mosque"
    both = load_term_groups(["gender", "names"])
    named = [r for r in counterfactuals(["John lost his keys."], both) if r["term_group"] == "names"]
    assert [r["counterfactual"] for r in named] == ["Mary lost her keys."]  # names carry their pronouns
    assert counterfactuals(["it hits its mark"], both) == []  # names that are common words are not listed
    rewrites = counterfactuals(["my Christian friend", "no terms here"], {"religion": religion})
    assert {r["to"] for r in rewrites} == {"muslim", "jewish", "hindu", "buddhist"}
    assert all(r["row"] == 0 for r in rewrites)


def test_term_files_are_validated(tmp_path):
    with pytest.raises(ConfigError, match="groups"):
        parse_term_file("he | she\n", "x")
    with pytest.raises(ConfigError, match="2 groups"):
        parse_term_file("groups: a | b\nhe | she | they\n", "x")
    (tmp_path / "mine.txt").write_text("groups: cats | dogs\ncat | dog\n")
    mine = load_term_groups(["mine"], tmp_path)["mine"]
    assert swap_terms("A cat sat.", mine, 1) == "A dog sat."
    with pytest.raises(ConfigError, match="no term list"):
        load_term_groups(["absent"], tmp_path)


def test_counterfactual_flags_the_biased_classifier_only():
    biased = counterfactual_test(BIASED, TEXTS, positive_label="positive")
    fair = counterfactual_test(FAIR, TEXTS, positive_label="positive")
    assert biased.n_pairs == fair.n_pairs > 0
    assert biased.flagged and biased.flip_rate > 0.1 and biased.mean_abs_prob_change > 0.1
    assert not fair.flagged and fair.flip_rate == 0 and fair.mean_abs_prob_change == pytest.approx(0)
    gender = biased.per_term_group["gender"]
    assert gender["n_pairs"] > 0 and gender["mean_abs_prob_change"] > 0.1
    assert gender["directions"]["male->female"]["mean_prob_change"] < 0  # he -> she loses the bonus
    assert gender["directions"]["female->male"]["mean_prob_change"] > 0
    assert biased.per_term_group["religion"]["mean_abs_prob_change"] == pytest.approx(0)
    worst = biased.worst_examples[0]
    assert abs(worst["prob_change"]) == pytest.approx(biased.max_abs_prob_change)
    json.dumps(biased.to_dict())
    assert "FLAGGED" in biased.render_markdown() and "not flagged" in fair.render_markdown()


def test_equity_probe_flags_gender_bias_with_significance():
    spec = load_probe_spec()
    sentences = build_probe(spec)
    assert {s.dimension for s in sentences} == {"gender", "race", "religion", "nationality"}
    biased = equity_probe(BIASED, positive_label="positive")
    fair = equity_probe(FAIR, positive_label="positive")
    g = biased.dimensions["gender"]
    assert "gender" in biased.flagged_dimensions
    assert g["groups"]["male"]["mean_prob"] > g["groups"]["female"]["mean_prob"] + 0.1
    assert g["differences"]["male-female"]["wilcoxon_p"] < 1e-6
    assert g["differences"]["male-female"]["t_test_p"] < 1e-6
    assert not fair.flagged
    for dim in fair.dimensions.values():
        assert dim["max_mean_prob_gap"] == pytest.approx(0)
        assert all(d["wilcoxon_p"] == 1.0 for d in dim["differences"].values())
    assert fair.dimensions["religion"]["friedman_p"] == 1.0
    assert "gender" in biased.render_markdown()


def test_group_fairness_with_fairlearn_flags_unequal_selection():
    gold = ["positive", "negative"] * 20
    groups = ["a"] * 20 + ["b"] * 20
    fair_pred = list(gold)
    biased_pred = gold[:20] + ["negative"] * 20  # group b never gets the positive outcome
    fair = group_fairness(gold, fair_pred, groups, positive_label="positive")
    biased = group_fairness(gold, biased_pred, groups, positive_label="positive")
    assert not fair.flagged and fair.demographic_parity_difference == 0
    assert biased.flagged
    assert biased.demographic_parity_difference == pytest.approx(0.5)
    assert biased.equalized_odds_difference == pytest.approx(1.0)
    assert biased.groups["b"]["selection_rate"] == 0 and biased.groups["a"]["accuracy"] == 1
    assert biased.accuracy_difference == pytest.approx(0.5)
    with pytest.raises(DataError, match="2 or more"):
        group_fairness(gold, fair_pred, ["a"] * 40, positive_label="positive")


def write(path, header, rows):
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


def test_fairness_audit_recipe_on_a_file_with_a_group_column(tmp_path):
    # every text once per group: a classifier that ignores who wrote it treats the groups alike
    rows = [(t, int(FAIR.predict_proba([t])[0, 1] > 0.5), group) for group in "fm" for t in TEXTS]
    data = write(tmp_path / "data.tsv", ["sentence", "label", "group"], rows)
    columns = {"fields": {"text": "sentence"}, "label_map": {"0": "negative", "1": "positive"}}
    fair = fairness_audit("stub", data, group_column="group", columns=columns, classifier=FAIR)
    biased = fairness_audit(
        "stub", data, group_column="group", columns=columns, classifier=BIASED, probe=True
    )
    assert fair.flagged == [] and fair.group is not None and fair.counterfactual is not None
    assert "counterfactual" in biased.flagged and "probe" in biased.flagged
    again = FairnessResult.from_dict(json.loads(json.dumps(biased.to_dict())))
    assert again.to_dict() == biased.to_dict() and again.render_markdown() == biased.render_markdown()
    out = biased.save(tmp_path / "out")
    saved = json.loads((out / "fairness.json").read_text())
    assert saved["counterfactual"]["flip_rate"] == biased.counterfactual.flip_rate
    assert "# Fairness audit" in (out / "fairness.md").read_text()
    with pytest.raises(DataError, match="no column 'nope'"):
        fairness_audit("stub", data, group_column="nope", columns=columns, classifier=FAIR)
    with pytest.raises(ConfigError, match="nothing to audit"):
        fairness_audit("stub", classifier=FAIR)


def test_counterfactual_augmentation_adds_swapped_copies_with_the_same_label():
    examples = [Example({"text": "He loved it."}, "positive"), Example({"text": "Dull."}, "negative")]
    out = counterfactual_augment(examples, load_term_groups(["gender"]))
    assert out[:2] == examples
    assert out[2:] == [Example({"text": "She loved it."}, "positive")]


HATECHECK_ROWS = [
    ("derog_neg_emote_h", "I hate women. ", "hateful", "women", "general"),
    ("derog_neg_emote_h", "I hate Muslims. ", "hateful", "Muslims", "general"),
    ("ident_neutral_nh", "We are a group of women. ", "non-hateful", "women", "-"),
    ("ident_neutral_nh", "I am a Muslim. ", "non-hateful", "Muslims", "-"),
    ("profanity_nh", "Fuck, what a day. ", "non-hateful", "", "-"),
]


def write_hatecheck(path):
    header = ",functionality,case_id,test_case,label_gold,target_ident,direction\r\n"
    body = "".join(
        f'{i},{f},{i + 1},"{t}",{lab},{g},{d}\r\n' for i, (f, t, lab, g, d) in enumerate(HATECHECK_ROWS)
    )
    path.write_bytes((header + body).encode())
    return path


def test_hatecheck_reader_and_report(tmp_path):
    cases = read_hatecheck(write_hatecheck(tmp_path / "hc.csv"))
    assert [c.text for c in cases][0] == "I hate women."
    assert cases[-1].target == "(no target)"
    # a classifier that calls every mention of Muslims hateful: right on hate, wrong on the neutral case
    predicted = ["hateful", "hateful", "non-hateful", "hateful", "non-hateful"]
    report = hatecheck_report(cases, predicted)
    assert report.accuracy == pytest.approx(0.8)
    assert report.per_functionality["ident_neutral_nh"]["accuracy"] == 0.5
    assert report.per_target["Muslims"]["accuracy_non_hateful"] == 0.0
    assert report.per_target["women"]["accuracy"] == 1.0
    assert report.group_fairness["flagged"]  # Muslims' selection rate 1.0 vs women's 0.5
    assert report.weakest[0] == "ident_neutral_nh"
    with pytest.raises(DataError, match="lacks the HateCheck columns"):
        read_hatecheck(write(tmp_path / "x.csv", ["a"], [("b",)]))


class StubHate:
    labels = ["ok", "hate"]

    def predict_proba(self, texts, batch_size=32):
        return np.array([[0.1, 0.9] if "hate" in t.lower() else [0.9, 0.1] for t in texts])


def test_fairness_audit_with_hatecheck_input(tmp_path):
    path = write_hatecheck(tmp_path / "hc.csv")
    result = fairness_audit("stub", hatecheck=path, hateful_label="hate", classifier=StubHate())
    assert result.hatecheck.accuracy == 1.0
    again = FairnessResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again.to_dict() == result.to_dict()
    with pytest.raises(ConfigError, match="hateful-label"):
        fairness_audit("stub", hatecheck=path, hateful_label="toxic", classifier=StubHate())
