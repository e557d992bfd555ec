"""The data audit finds every planted problem, on the right rows, and nothing on clean data."""

from __future__ import annotations

import json

import pytest

from promptft.data import Example
from promptft.errors import DataError
from promptft.evaluation import RowRef, Severity, audit
from promptft.evaluation.audit_checks import split_role
from promptft.evaluation.similarity import near_duplicate_pairs, normalise

WORDS = {"negative": "terrible", "positive": "great"}

CLEAN_TRAIN = [
    ("a gorgeous and witty film from start to finish", "positive"),
    ("the acting is superb and the story moves along", "positive"),
    ("one of the best comedies of the whole year", "positive"),
    ("warm funny and full of surprises for everyone", "positive"),
    ("a tedious mess that never finds its footing", "negative"),
    ("the plot is thin and the jokes fall flat", "negative"),
    ("two hours of my life i will never get back", "negative"),
    ("badly written and even worse directed overall", "negative"),
]
CLEAN_DEV = [
    ("an utterly charming little picture about friendship", "positive"),
    ("smart sharp dialogue delivered by a great cast", "positive"),
    ("dull lifeless and far too long by an hour", "negative"),
    ("nothing here works not even the soundtrack", "negative"),
]
CLEAN_TEST = [
    ("the director keeps every scene alive with energy", "positive"),
    ("a moving tribute that earns its tears honestly", "positive"),
    ("clumsy pacing ruins what could have been decent", "negative"),
    ("a forgettable sequel with nothing new to offer", "negative"),
]


def ex(text: str, label: str | None) -> Example:
    return Example({"text": text}, label)


def clean_splits() -> dict[str, list[Example]]:
    return {
        "train": [ex(t, y) for t, y in CLEAN_TRAIN],
        "dev": [ex(t, y) for t, y in CLEAN_DEV],
        "test": [ex(t, y) for t, y in CLEAN_TEST],
    }


def planted_splits() -> dict[str, list[Example]]:
    s = clean_splits()
    train, dev = s["train"], s["dev"]
    train += [
        ex("a gorgeous and witty film from start to finish", "positive"),  # 9: exact duplicate of row 1
        ex("The acting is SUPERB, and the story moves along!", "positive"),  # 10: normalised dup of 2
        ex("a tedious mess that never quite finds its footing", "negative"),  # 11: near dup of 5
        ex("the plot is thin and the jokes fall flat", "positive"),  # 12: conflicts with row 6
        ex("   ", "negative"),  # 13: empty
        ex("a forgettable sequel with nothing new to offer", "negative"),  # 14: leaks test row 4
        ex("a surprisingly neutral documentary about trains", "neutral"),  # 15: no label word, rare
    ]
    dev.append(ex("Clumsy pacing ruins what could have been decent.", "negative"))  # dev 5: ~ test 3
    return s


def test_clean_data_has_no_findings():
    report = audit(clean_splits(), label_words=WORDS, k=4)
    assert report.findings == [], report.render_text()
    assert report.exit_code == 0
    assert report.stats["train"]["label_counts"] == {"negative": 4, "positive": 4}
    assert report.stats["train"]["balanced"] is True
    assert "No problems found" in report.render_text()


def rows_of(report, code, splits=None):
    found = report.find(code, splits)
    assert found, f"no {code} finding in:\n{report.render_text()}"
    return [[str(r) for r in g] for f in found for g in f.groups] or [str(r) for f in found for r in f.rows]


def test_planted_problems_are_all_found_on_the_right_rows():
    report = audit(planted_splits(), label_words=WORDS, k=4)
    assert rows_of(report, "duplicate", ("train",)) == [["train:1", "train:9"]]
    assert rows_of(report, "normalised_duplicate", ("train",)) == [["train:2", "train:10"]]
    assert rows_of(report, "conflicting_labels", ("train",)) == [["train:6", "train:12"]]
    assert rows_of(report, "empty_text", ("train",)) == ["train:13"]
    assert rows_of(report, "leakage", ("train", "test")) == [["test:4", "train:14"]]
    assert rows_of(report, "leakage", ("dev", "test")) == [["dev:5", "test:3"]]
    assert rows_of(report, "near_duplicate", ("train",)) == [["train:5", "train:11"]]
    assert rows_of(report, "label_without_word") == ["train:15"]
    assert rows_of(report, "rare_label", ("train",)) == ["train:15"]
    assert report.find("unbalanced_sample", ("train",))
    assert report.find("unseen_label") == []  # neutral is in train; dev/test only lack it
    assert report.exit_code == 1
    codes = {f.code: f.severity for f in report.findings}
    assert codes["leakage"] is Severity.ERROR
    assert codes["conflicting_labels"] is Severity.ERROR
    assert codes["duplicate"] is Severity.WARNING


def test_leakage_message_separates_exact_from_normalised():
    report = audit(planted_splits(), label_words=WORDS)
    dev_test = report.find("leakage", ("dev", "test"))[0]
    assert dev_test.details == {"rows_in_first": 1, "of": 5, "exact": 0, "normalised_only": 1}
    train_test = report.find("leakage", ("train", "test"))[0]
    assert train_test.details["exact"] == 1


def test_report_serialises_and_renders():
    report = audit(planted_splits(), label_words=WORDS)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["exit_code"] == 1
    assert data["summary"]["errors"] >= 3
    leak = next(f for f in data["findings"] if f["code"] == "leakage")
    assert {"split", "row"} <= set(leak["rows"][0]) and leak["fix"]
    text = report.render_text()
    assert "ERROR" in text and "fix:" in text and "train:14" in text
    assert [f.severity.rank for f in report.findings] == sorted(f.severity.rank for f in report.findings)


def test_rows_are_capped_but_counted():
    train = [ex("the same sentence again", "positive") for _ in range(30)] + [
        ex("other text here", "negative")
    ]
    report = audit({"train": train}, max_rows=5)
    dup = report.find("duplicate")[0]
    assert dup.count == 30 and len(dup.rows) == 5
    assert dup.to_dict()["rows_truncated"] is True


def test_reference_pool_overlap_is_provenance_not_leakage():
    pool = [ex("a gorgeous and witty film from start to finish ", "positive"), ex("unrelated", "negative")]
    report = audit(clean_splits(), reference={"pool": pool})
    found = report.find("pool_overlap", ("train", "pool"))
    assert found and found[0].severity is Severity.INFO
    assert found[0].details["normalised_only"] == 1  # a trailing space: exact matching would miss it
    assert report.exit_code == 0
    test_in_pool = audit(
        {"test": clean_splits()["test"]}, reference={"pool": [ex(CLEAN_TEST[0][0], "positive")]}
    )
    assert test_in_pool.find("leakage", ("test", "pool"))


def test_cross_split_conflicting_labels():
    splits = clean_splits()
    splits["test"].append(ex(CLEAN_TRAIN[0][0], "negative"))
    report = audit(splits)
    assert rows_of(report, "conflicting_labels", ("train", "test")) == [["test:5", "train:1"]]


def test_unseen_and_absent_labels():
    splits = clean_splits()
    splits["dev"].append(ex("a plain statement of facts about the film", "neutral"))
    report = audit(splits)
    assert rows_of(report, "unseen_label", ("dev",)) == ["dev:5"]
    assert report.exit_code == 1


def test_class_imbalance_and_word_without_label():
    train = [ex(f"good review number {i}", "positive") for i in range(20)]
    train += [ex(f"bad review number {i}", "negative") for i in range(2)]
    report = audit({"train": train}, label_words={**WORDS, "neutral": "okay"}, near_duplicate_threshold=None)
    assert report.find("class_imbalance")[0].severity is Severity.WARNING
    assert report.find("word_without_label")[0].details == {"labels": ["neutral"]}
    assert report.find("rare_label")[0].details == {"counts": {"negative": 2}}


def test_multi_label_counts_each_label():
    train = [ex(f"text {i} about feelings", "1,3") for i in range(6)] + [ex("another thing", "3")]
    report = audit({"train": train}, multi_label=True, near_duplicate_threshold=None)
    assert report.stats["train"]["label_counts"] == {"1": 6, "3": 7}
    assert not report.find("rare_label")


def test_truncation_with_template_and_tokenizer():
    from tiny import bpe_tokenizer

    long_text = " ".join(["the movie was good and the acting was bad"] * 10)
    splits = {"train": [ex("It was great.", "positive"), ex(long_text, "negative")]}
    report = audit(
        splits, template="Review: {text}\nSentiment: {mask}", tokenizer=bpe_tokenizer(), max_length=32
    )
    assert rows_of(report, "truncated", ("train",)) == ["train:2"]
    missing = audit({"train": [Example({"premise": "x y z"}, "positive")]}, template="{text} It was {mask}.")
    assert rows_of(missing, "missing_field", ("train",)) == ["train:1"]


def test_helpers_and_errors():
    assert normalise("  ( Kim ) ,  Was  GREAT! ") == "kim was great"
    assert near_duplicate_pairs(
        ["the plot is thin and the jokes fall flat", "the plot is thin and the jokes all fall flat", "zzz"],
        0.8,
    )[0][:2] == (0, 1)
    assert [split_role(n) for n in ["train", "dev", "validation", "test.tsv", "SST-2/train.tsv", "pool"]] == [
        "train", "dev", "dev", "test", "train", "other",
    ]  # fmt: skip
    assert str(RowRef("dev", 3)) == "dev:3"
    with pytest.raises(DataError, match="at least one split"):
        audit({})
    with pytest.raises(DataError, match="rename one"):
        audit({"train": []}, reference={"train": []})


def test_a_pools_own_label_noise_is_a_warning():
    pool = [ex(CLEAN_TRAIN[0][0], "negative")]  # the pool disagrees with train row 1
    report = audit(clean_splits(), reference={"pool": pool})
    conflict = report.find("conflicting_labels", ("train", "pool"))[0]
    assert conflict.severity is Severity.WARNING
    assert report.exit_code == 0


def test_emoticons_and_emoji_are_not_empty():
    train = [
        ex(":((", "negative"),
        ex("😀😀", "positive"),
        ex("", "negative"),
        ex("a real sentence", "positive"),
    ]
    report = audit({"train": train}, near_duplicate_threshold=None)
    assert rows_of(report, "empty_text") == ["train:3"]
    assert rows_of(report, "punctuation_only") == ["train:1"]  # the emoji row is text: symbols stay
