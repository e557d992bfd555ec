"""Reading multi-label and regression data, and the multi-label k-shot sampler's guarantee."""

import json
from collections import Counter
from pathlib import Path

import pytest

from promptft.data import Example, TaskSpec, label_names, read_examples, sample_multi_label
from promptft.errors import DataError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MULTI = TaskSpec("multi_label")
STS = TaskSpec("regression", value_range=(0, 5))


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_multi_label_column_comma_separated_with_an_index_map(tmp_path):
    path = write(tmp_path, "g.tsv", "so happy\t1,0\tid1\nugh\t2\tid2\nmeh\t2,2\tid3\n")
    label_map = {"0": "joy", "1": "love", "2": "anger"}
    rows = read_examples(path, fields={"text": 0}, label=1, label_map=label_map, task=MULTI)
    assert [ex.label for ex in rows] == [("joy", "love"), ("anger",), ("anger",)]  # sorted, deduplicated
    assert label_names(rows) == ["anger", "joy", "love"]
    assert len({*rows, *rows}) == 3  # still hashable


def test_multi_label_json_list_and_jsonl_lists(tmp_path):
    csv_path = write(tmp_path, "a.csv", 'text,labels\nhi,"[""joy"", ""love""]"\nno,"[""anger""]"\n')
    rows = read_examples(csv_path, fields={"text": "text"}, label="labels", task=MULTI)
    assert [ex.label for ex in rows] == [("joy", "love"), ("anger",)]
    jl = tmp_path / "a.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in [{"text": "x", "labels": [2, 0]}]))
    rows = read_examples(
        jl, fields={"text": "text"}, label="labels", label_map={"0": "a", "2": "c"}, task=MULTI
    )
    assert rows[0].label == ("a", "c")


def test_multi_label_one_column_per_label(tmp_path):
    path = write(tmp_path, "w.csv", "text,joy,anger,love\nyay,1,0,1\ngrr,0,1,0\n")
    task = TaskSpec("multi_label", label_columns=("joy", "anger", "love"))
    rows = read_examples(path, fields={"text": "text"}, task=task)
    assert [ex.label for ex in rows] == [("joy", "love"), ("anger",)]
    renamed = read_examples(
        path, fields={"text": "text"}, label_map={"joy": "happy", "anger": "mad", "love": "love"}, task=task
    )
    assert renamed[0].label == ("happy", "love")
    bad = write(tmp_path, "b.csv", "text,joy,anger\nyay,2,0\n")
    with pytest.raises(DataError, match="must be 0 or 1"):
        read_examples(
            bad, fields={"text": "text"}, task=TaskSpec("multi_label", label_columns=("joy", "anger"))
        )


def test_multi_label_errors_say_how_to_fix(tmp_path):
    path = write(tmp_path, "g.tsv", "so happy\t1,7\tid1\n")
    with pytest.raises(DataError, match="label '7', which the label map does not cover.*add it"):
        read_examples(path, fields={"text": 0}, label=1, label_map={"1": "joy"}, task=MULTI)
    with pytest.raises(DataError, match="outside the label set"):
        read_examples(path, fields={"text": 0}, label=1, task=TaskSpec("multi_label", labels=("1",)))
    floats = write(
        tmp_path, "f.tsv", "so happy\t1.0,7.0\tid1\n"
    )  # a float export; the map's keys are "1", "7"
    (row,) = read_examples(
        floats, fields={"text": 0}, label=1, label_map={"1": "joy", "7": "anger"}, task=MULTI
    )
    assert set(row.label) == {"joy", "anger"}
    empty = write(tmp_path, "e.csv", "text,labels\nhello,\n")
    with pytest.raises(DataError, match="empty label set.*allow_empty"):
        read_examples(empty, fields={"text": "text"}, label="labels", task=MULTI)
    rows = read_examples(
        empty, fields={"text": "text"}, label="labels", task=TaskSpec("multi_label", allow_empty=True)
    )
    assert rows[0].label == ()


def test_regression_targets(tmp_path):
    path = write(tmp_path, "s.tsv", "sentence1\tsentence2\tscore\na\tb\t3.8\nc\td\t5.000\n")
    fields = {"sentence1": "sentence1", "sentence2": "sentence2"}
    rows = read_examples(path, fields=fields, label="score", task=STS)
    assert [ex.label for ex in rows] == [3.8, 5.0]
    bad = write(tmp_path, "bad.tsv", "sentence1\tsentence2\tscore\na\tb\thigh\n")
    with pytest.raises(DataError, match="'high'.*is not a number"):
        read_examples(bad, fields=fields, label="score", task=STS)
    out = write(tmp_path, "out.tsv", "sentence1\tsentence2\tscore\na\tb\t5.5\n")
    with pytest.raises(DataError, match=r"outside the declared range \[0, 5\].*widen value_range"):
        read_examples(out, fields=fields, label="score", task=STS)
    with pytest.raises(DataError, match="value_range"):
        TaskSpec("regression")
    with pytest.raises(DataError, match="low < high"):
        TaskSpec("regression", value_range=(5, 0))


def test_single_label_reads_are_unchanged(tmp_path):
    path = write(tmp_path, "a.csv", "label,sentence\n1,fine\n0,bad\n")
    assert [ex.label for ex in read_examples(path, label_map={"0": "neg", "1": "pos"})] == ["pos", "neg"]


def test_real_stsb_and_goemotions_read():
    if not (DATA / "STS-B").exists():
        pytest.skip("no shared data")
    sts = read_examples(
        DATA / "STS-B/k-shot/16-42/train.tsv",
        fields={"sentence1": "sentence1", "sentence2": "sentence2"},
        label="score",
        task=STS,
    )
    assert len(sts) == 32 and all(0 <= ex.label <= 5 for ex in sts)
    names = (DATA / "goemotions/emotions.txt").read_text().split("\n")
    goemo = read_examples(
        DATA / "goemotions/dev.tsv",
        fields={"text": 0},
        label=1,
        label_map={str(i): n for i, n in enumerate(names)},
        fmt="tsv",
        task=MULTI,
    )
    assert len(goemo) == 5426 and all(1 <= len(ex.label) <= 5 for ex in goemo)


def test_multi_label_sampler_gives_every_label_k_examples():
    import random

    rng = random.Random(0)
    labels = [f"l{i}" for i in range(10)]
    weights = [50, 30, 20, 10, 8, 6, 5, 4, 4, 3]  # skewed, like GoEmotions
    pool = [
        Example({"text": f"t{i}"}, tuple(sorted(set(rng.choices(labels, weights, k=rng.randint(1, 3))))))
        for i in range(400)
    ]
    for seed in (13, 21, 42):
        sample = sample_multi_label(pool, 4, seed)
        counts = Counter(label for ex in sample.examples for label in ex.label)
        assert all(counts[label] >= 4 for label in labels)  # the guarantee
        assert sample.counts == {label: counts[label] for label in labels}
        assert sample.n_taken == len(sample.examples) == len(set(sample.examples))
        assert 10 <= sample.n_taken <= 40  # greedy: never more than k per label
        assert sample_multi_label(pool, 4, seed).examples == sample.examples  # seeded
    assert sample_multi_label(pool, 4, 1).examples != sample_multi_label(pool, 4, 2).examples
    dev = sample_multi_label(pool, 2, 5, exclude=sample.examples)
    assert not set(dev.examples) & set(sample.examples)
    with pytest.raises(DataError, match=r"label 'l\d' has \d+ example\(s\).*k=100"):
        sample_multi_label(pool, 100, 0)
    with pytest.raises(DataError, match="needs label sets"):
        sample_multi_label([Example({"text": "a"}, "x")], 1, 0)


def test_multi_label_from_a_dataset_with_a_list_of_class_labels():
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    features = Features(
        {"text": Value("string"), "labels": Sequence(ClassLabel(names=["joy", "anger", "love"]))}
    )
    ds = Dataset.from_dict({"text": ["yay", "grr"], "labels": [[2, 0], [1]]}, features=features)
    rows = read_examples(ds, fields={"text": "text"}, label="labels", task=MULTI)
    assert [ex.label for ex in rows] == [("joy", "love"), ("anger",)]
    rows = read_examples(
        ds, fields={"text": "text"}, label="labels", label_map={"0": "a", "1": "b", "2": "c"}, task=MULTI
    )
    assert rows[0].label == ("a", "c")
