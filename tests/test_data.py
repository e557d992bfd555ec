"""Tests for promptft.data: readers for every format, their error messages, and k-shot sampling."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from promptft.data import Example, label_names, read_examples, sample_k_shot, train_dev_split
from promptft.errors import DataError, PromptFTError
from promptft.settings import data_dir


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------------------
# csv / tsv


def test_tsv_with_header_defaults_to_sentence_and_label(tmp_path):
    path = write(tmp_path, "train.tsv", "sentence\tlabel\ngreat movie \t1\nawful .\t0\n")
    assert read_examples(path) == [Example({"text": "great movie"}, "1"), Example({"text": "awful ."}, "0")]


def test_tsv_keeps_lone_quotes_and_does_not_merge_lines(tmp_path):
    # With csv quoting the lone `"` would open a quoted cell that swallows the next line.
    path = write(tmp_path, "q.tsv", 'sentence\tlabel\nhe said " wow\t1\nplain line\t0\n"quoted" start\t1\n')
    examples = read_examples(path)
    assert [ex.fields["text"] for ex in examples] == ['he said " wow', "plain line", '"quoted" start']
    assert [ex.label for ex in examples] == ["1", "0", "1"]


def test_csv_standard_quoting_with_commas_and_doubled_quotes(tmp_path):
    path = write(tmp_path, "d.csv", 'text,label\n"a, b ""c"" d",pos\nplain,neg\n')
    examples = read_examples(path)
    assert examples[0] == Example({"text": 'a, b "c" d'}, "pos")
    assert examples[1] == Example({"text": "plain"}, "neg")


def test_headerless_csv_follows_lm_bff_convention(tmp_path):
    path = write(tmp_path, "test.csv", '1,"no movement , no yuks ."\n0,a gob of drivel\n')
    assert read_examples(path) == [
        Example({"text": "no movement , no yuks ."}, "1"),
        Example({"text": "a gob of drivel"}, "0"),
    ]


def test_headerless_csv_by_index(tmp_path):
    path = write(tmp_path, "n.csv", "x,first text,A\ny,second text,B\n")
    examples = read_examples(path, fields={"text": 1}, label=2)
    assert examples == [Example({"text": "first text"}, "A"), Example({"text": "second text"}, "B")]


def test_indices_with_header_true_skip_the_header(tmp_path):
    path = write(tmp_path, "h.tsv", "words\ty\nhello\t1\n")
    assert read_examples(path, fields={"text": 0}, label=1, header=True) == [Example({"text": "hello"}, "1")]
    # Without header=True, indices mean the first row is data.
    assert read_examples(path, fields={"text": 0}, label=1)[0] == Example({"text": "words"}, "y")


def test_names_with_header_false_is_an_error(tmp_path):
    path = write(tmp_path, "h.tsv", "sentence\tlabel\nhello\t1\n")
    with pytest.raises(DataError, match="header=False"):
        read_examples(path, fields={"text": "sentence"}, header=False)


def test_sentence_pair_fields_and_unlabelled(tmp_path):
    path = write(
        tmp_path, "rte.tsv", "index\tsentence1\tsentence2\tlabel\n0\tA man.\tA person.\tentailment\n"
    )
    pair = read_examples(path, fields={"premise": "sentence1", "hypothesis": "sentence2"}, label="label")
    assert pair == [Example({"premise": "A man.", "hypothesis": "A person."}, "entailment")]
    unlabelled = read_examples(path, fields={"premise": "sentence1"})
    assert unlabelled == [Example({"premise": "A man."}, None)]


def test_text_keeps_inner_whitespace_and_strips_trailing(tmp_path):
    path = write(tmp_path, "w.tsv", "sentence\tlabel\r\n( kim )  spaced \\/ text  \t 1 \r\n")
    (ex,) = read_examples(path)
    assert ex.fields["text"] == "( kim )  spaced \\/ text"
    assert ex.label == "1"


def test_blank_lines_and_bom_are_ignored(tmp_path):
    path = tmp_path / "b.csv"
    path.write_bytes("\ufefftext,label\n\nhello,1\n\n".encode())
    assert read_examples(path) == [Example({"text": "hello"}, "1")]


def test_limit(tmp_path):
    path = write(tmp_path, "l.csv", "".join(f"{i % 2},text {i}\n" for i in range(10)))
    assert len(read_examples(path, limit=3)) == 3
    assert read_examples(path, limit=0) == []


def test_fmt_overrides_suffix(tmp_path):
    path = write(tmp_path, "data.txt", "sentence\tlabel\nhi\t1\n")
    assert read_examples(path, fmt="tsv") == [Example({"text": "hi"}, "1")]
    with pytest.raises(DataError, match="fmt="):
        read_examples(path)


# --------------------------------------------------------------------------------------------------------
# json / jsonl


def test_jsonl(tmp_path):
    lines = [{"premise": "p1", "hypothesis": "h1", "label": "entailment", "idx": 0}, {}]
    lines[1] = {"premise": "p2", "hypothesis": "h2", "label": "neutral", "idx": 1}
    path = write(tmp_path, "t.jsonl", "\n".join(json.dumps(o) for o in lines) + "\n\n")
    examples = read_examples(path, fields={"premise": "premise", "hypothesis": "hypothesis"}, label="label")
    assert examples == [
        Example({"premise": "p1", "hypothesis": "h1"}, "entailment"),
        Example({"premise": "p2", "hypothesis": "h2"}, "neutral"),
    ]


def test_jsonl_int_and_bool_labels_become_strings(tmp_path):
    path = write(tmp_path, "t.jsonl", '{"text": "a", "label": 0}\n{"text": "b", "label": true}\n')
    assert [ex.label for ex in read_examples(path)] == ["0", "True"]


@pytest.mark.parametrize(
    "payload",
    [
        [{"text": "good", "label": 1}, {"text": "bad", "label": 0}],
        {"data": [{"text": "good", "label": 1}, {"text": "bad", "label": 0}]},
        {"text": ["good", "bad"], "label": [1, 0]},
    ],
    ids=["list", "data-key", "columns"],
)
def test_json_layouts(tmp_path, payload):
    path = write(tmp_path, "d.json", json.dumps(payload))
    assert read_examples(path) == [Example({"text": "good"}, "1"), Example({"text": "bad"}, "0")]


def test_json_id_mapping_like_lm_bff_imdb(tmp_path):
    payload = {"0": {"ori": "I loved it.", "label": "0"}, "1": {"ori": "Dull.\n", "label": "1"}}
    path = write(tmp_path, "dev.json", json.dumps(payload, indent=4))
    examples = read_examples(path, label_map={"0": "positive", "1": "negative"})
    assert examples == [Example({"text": "I loved it."}, "positive"), Example({"text": "Dull."}, "negative")]


def test_json_columns_by_index_follow_key_order(tmp_path):
    path = write(tmp_path, "d.jsonl", '{"body": "hello", "y": "a"}\n')
    assert read_examples(path, fields={"text": 0}, label=1) == [Example({"text": "hello"}, "a")]


# --------------------------------------------------------------------------------------------------------
# Hugging Face datasets


def test_hf_dataset_classlabel_maps_to_names():
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["negative", "positive"])}
    )
    ds = datasets.Dataset.from_dict(
        {"sentence": ["bad", "good", "fine"], "label": [0, 1, 1]}, features=features
    )
    examples = read_examples(ds)
    assert examples == [
        Example({"text": "bad"}, "negative"),
        Example({"text": "good"}, "positive"),
        Example({"text": "fine"}, "positive"),
    ]
    # An explicit label_map works on the raw ids instead of the ClassLabel names.
    mapped = read_examples(ds, fields={"text": "sentence"}, label="label", label_map={"0": "neg", "1": "pos"})
    assert [ex.label for ex in mapped] == ["neg", "pos", "pos"]
    assert len(read_examples(ds, limit=2)) == 2


def test_hf_dataset_plain_columns_and_errors():
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"q": ["why?"], "a": ["because"], "y": [3]})
    assert read_examples(ds, fields={"question": "q", "answer": 1}, label="y") == [
        Example({"question": "why?", "answer": "because"}, "3")
    ]
    with pytest.raises(DataError, match="'q', 'a', 'y'"):
        read_examples(ds, fields={"text": "text"})
    with pytest.raises(DataError, match="pass one split"):
        read_examples(datasets.DatasetDict({"train": ds}))


def test_hf_classlabel_unlabelled_split_is_explained():
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["a"])}
    )
    ds = datasets.Dataset.from_dict({"text": ["x"], "label": [-1]}, features=features)
    with pytest.raises(DataError, match="label=None"):
        read_examples(ds)
    assert read_examples(ds, fields={"text": "text"}) == [Example({"text": "x"}, None)]


# --------------------------------------------------------------------------------------------------------
# labels


def test_label_map_success(tmp_path):
    path = write(tmp_path, "m.csv", "0,bad\n1,good\n")
    examples = read_examples(path, label_map={"0": "negative", "1": "positive"})
    assert [ex.label for ex in examples] == ["negative", "positive"]


def test_label_map_accepts_float_written_integer_labels(tmp_path):
    # a float column exported by pandas or a spreadsheet writes 1 as "1.0"; the map's key is "1"
    path = write(tmp_path, "f.csv", "label,sentence\n0.0,bad\n1.0,good\n")
    examples = read_examples(path, label_map={"0": "negative", "1": "positive"})
    assert [ex.label for ex in examples] == ["negative", "positive"]
    assert [ex.label for ex in read_examples(path)] == ["0.0", "1.0"]  # no map: the raw labels, untouched
    path = write(tmp_path, "g.csv", "label,sentence\n1.5,meh\n")
    with pytest.raises(DataError, match="label '1.5', which label_map does not cover"):
        read_examples(path, label_map={"1": "positive", "2": "negative"})


def test_label_map_unknown_label_names_value_line_and_known_labels(tmp_path):
    path = write(tmp_path, "m.csv", "0,bad\n1,good\n2,meh\n")
    with pytest.raises(DataError) as err:
        read_examples(path, label_map={"0": "negative", "1": "positive"})
    msg = str(err.value)
    assert "'2'" in msg and "line 3" in msg and "'0'" in msg and "'1'" in msg and "add" in msg


def test_label_names_natural_order():
    exs = [Example({"text": "x"}, lab) for lab in ["10", "2", "1", "2", None]]
    assert label_names(exs) == ["1", "2", "10"]
    assert label_names([Example({"t": "x"}, "b"), Example({"t": "y"}, "a")]) == ["a", "b"]
    assert label_names([Example({"t": "x"})]) == []


def test_example_is_hashable_by_content():
    a, b = Example({"text": "x"}, "1"), Example({"text": "x"}, "1")
    assert a == b and len({a, b}) == 1
    assert Example({"text": "x"}, "0") != a


# --------------------------------------------------------------------------------------------------------
# errors


def test_missing_column_lists_available_columns(tmp_path):
    path = write(tmp_path, "c.tsv", "sentence\tlabel\nhi\t1\n")
    with pytest.raises(DataError) as err:
        read_examples(path, fields={"text": "review"}, label="label")
    msg = str(err.value)
    assert "'review'" in msg and "'sentence', 'label'" in msg and "Use one of" in msg


def test_index_out_of_range_lists_columns(tmp_path):
    path = write(tmp_path, "c.csv", "1,hello\n")
    with pytest.raises(DataError, match=r"out of range.*2 column\(s\), indices 0\.\.1"):
        read_examples(path, fields={"text": 5})


def test_no_text_column_suggests_fields(tmp_path):
    path = write(tmp_path, "c.jsonl", '{"body": "x", "label": 1}\n')
    with pytest.raises(DataError, match="fields="):
        read_examples(path)


def test_wrong_delimiter_hint(tmp_path):
    path = write(tmp_path, "c.csv", "sentence\tlabel\nhi\t1\n")
    with pytest.raises(DataError, match="delimiter"):
        read_examples(path, fields={"text": "sentence"})


@pytest.mark.parametrize("name", ["e.csv", "e.tsv", "e.jsonl", "e.json"])
def test_empty_file(tmp_path, name):
    path = write(tmp_path, name, "\n\n" if name != "e.json" else "")
    with pytest.raises(DataError, match="empty"):
        read_examples(path)


def test_header_only_and_empty_json_list(tmp_path):
    with pytest.raises(DataError, match="no data rows"):
        read_examples(write(tmp_path, "h.tsv", "sentence\tlabel\n"))
    with pytest.raises(DataError, match="no records"):
        read_examples(write(tmp_path, "l.json", "[]"))


def test_malformed_jsonl_names_the_line(tmp_path):
    path = write(tmp_path, "bad.jsonl", '{"text": "a", "label": 0}\n\n{"text": "b", "label": 1\n')
    with pytest.raises(DataError, match="line 3"):
        read_examples(path)


def test_malformed_json_names_the_line(tmp_path):
    path = write(tmp_path, "bad.json", '[\n{"text": "a"},\n{"text": }\n]')
    with pytest.raises(DataError, match="line 3"):
        read_examples(path)


def test_jsonl_record_missing_column(tmp_path):
    path = write(tmp_path, "m.jsonl", '{"text": "a", "label": 0}\n{"text": "b"}\n')
    with pytest.raises(DataError, match=r"line 2.*no column 'label'"):
        read_examples(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_examples(tmp_path / "nope.tsv")


def test_folder_instead_of_file(tmp_path):
    (tmp_path / "d.tsv").mkdir()
    with pytest.raises(DataError, match="folder"):
        read_examples(tmp_path / "d.tsv")


def test_short_row_names_the_line(tmp_path):
    path = write(tmp_path, "s.tsv", "sentence\tlabel\nfine\t1\ntruncated\n")
    with pytest.raises(DataError, match="line 3"):
        read_examples(path)
    headerless = write(tmp_path, "s.csv", "1,fine\n0\n")
    with pytest.raises(DataError, match="line 2"):
        read_examples(headerless)


def test_empty_label_cell(tmp_path):
    path = write(tmp_path, "e.tsv", "sentence\tlabel\nfine\t\n")
    with pytest.raises(DataError, match="no label"):
        read_examples(path)


def test_bad_arguments():
    with pytest.raises(DataError, match="fields"):
        read_examples("x.tsv", fields={})
    with pytest.raises(DataError, match="non-negative"):
        read_examples("x.tsv", fields={"text": -1})
    with pytest.raises(DataError, match="fmt"):
        read_examples("x.tsv", fmt="xml")
    with pytest.raises(DataError, match="Dataset"):
        read_examples(42)  # type: ignore[arg-type]


def test_not_utf8(tmp_path):
    path = tmp_path / "l.csv"
    path.write_bytes("0,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="UTF-8"):
        read_examples(path)


def test_data_error_is_a_promptft_error():
    assert issubclass(DataError, PromptFTError)


# --------------------------------------------------------------------------------------------------------
# sampling


def make_pool(sizes: dict[str, int]) -> list[Example]:
    return [Example({"text": f"{lab}-{i}"}, lab) for lab, n in sizes.items() for i in range(n)]


def test_k_shot_balanced_and_disjoint():
    pool = make_pool({"a": 40, "b": 50, "c": 33})
    train, dev = sample_k_shot(pool, 16, 42)
    assert Counter(ex.label for ex in train) == {"a": 16, "b": 16, "c": 16}
    assert Counter(ex.label for ex in dev) == {"a": 16, "b": 16, "c": 16}
    assert not set(train) & set(dev)
    assert len(set(train)) == 48 and set(train) | set(dev) <= set(pool)


def test_k_shot_deterministic_and_seed_dependent():
    pool = make_pool({"a": 40, "b": 40})
    assert sample_k_shot(pool, 8, 13) == sample_k_shot(pool, 8, 13)
    assert sample_k_shot(pool, 8, 13) != sample_k_shot(pool, 8, 21)


def test_k_shot_output_is_shuffled_not_grouped():
    train, _ = sample_k_shot(make_pool({"a": 40, "b": 40}), 16, 42)
    labels = [ex.label for ex in train]
    assert labels != sorted(labels) and labels != sorted(labels, reverse=True)


def test_k_shot_dev_k_and_labels():
    pool = make_pool({"a": 10, "b": 10, "c": 2})
    train, dev = sample_k_shot(pool, 4, 0, dev_k=0, labels=["a", "b"])
    assert dev == [] and Counter(ex.label for ex in train) == {"a": 4, "b": 4}
    train, dev = sample_k_shot(pool, 2, 0, dev_k=6, labels=["a"])
    assert len(train) == 2 and len(dev) == 6


def test_k_shot_too_few_names_class_and_count():
    pool = make_pool({"a": 40, "b": 20})
    with pytest.raises(DataError) as err:
        sample_k_shot(pool, 16, 42)
    msg = str(err.value)
    assert "'b'" in msg and "has 20" in msg and "32" in msg and "k <= 10" in msg


def test_k_shot_unknown_class_in_labels():
    with pytest.raises(DataError, match=r"'z' has 0 examples.*labels present"):
        sample_k_shot(make_pool({"a": 4}), 1, 0, labels=["a", "z"])


def test_k_shot_rejects_unlabelled_and_bad_k():
    with pytest.raises(DataError, match="no label"):
        sample_k_shot([Example({"text": "x"})] * 4, 1, 0)
    with pytest.raises(DataError, match="positive"):
        sample_k_shot(make_pool({"a": 4}), 0, 0)


def test_train_dev_split_stratified():
    pool = make_pool({"a": 50, "b": 30})
    train, dev = train_dev_split(pool, 0.2, seed=1)
    assert Counter(ex.label for ex in dev) == {"a": 10, "b": 6}
    assert len(train) == 64 and not set(train) & set(dev)
    assert (train, dev) == train_dev_split(pool, 0.2, seed=1)


def test_train_dev_split_unstratified_allows_unlabelled():
    pool = [Example({"text": str(i)}) for i in range(10)]
    train, dev = train_dev_split(pool, 0.3, seed=0, stratify=False)
    assert len(dev) == 3 and len(train) == 7
    with pytest.raises(DataError, match="stratify"):
        train_dev_split(pool, 0.3, seed=0)
    with pytest.raises(DataError, match="between 0 and 1"):
        train_dev_split(pool, 1.5, seed=0)


# --------------------------------------------------------------------------------------------------------
# the real shared files

DATA = data_dir()
needs_data = pytest.mark.skipif(DATA is None or not DATA.is_dir(), reason="shared data folder not found")


@needs_data
def test_real_sst2_k_shot():
    examples = read_examples(DATA / "SST-2/k-shot/16-42/train.tsv")
    assert len(examples) == 32
    assert Counter(ex.label for ex in examples) == {"0": 16, "1": 16}


@needs_data
def test_real_sst5_headerless_csv():
    examples = read_examples(DATA / "sst-5/test.csv")
    assert len(examples) == 2210
    assert label_names(examples) == ["0", "1", "2", "3", "4"]
    assert examples[0] == Example({"text": "no movement , no yuks , not much of anything ."}, "1")


@needs_data
def test_real_imdb_json():
    examples = read_examples(DATA / "imdb/dev.json")
    assert len(examples) == 1000
    assert Counter(ex.label for ex in examples) == {"0": 500, "1": 500}


@needs_data
def test_real_rte_sentence_pairs_with_quotes():
    examples = read_examples(
        DATA / "RTE/test.tsv", fields={"premise": "sentence1", "hypothesis": "sentence2"}, label="label"
    )
    assert len(examples) == 277
    assert Counter(ex.label for ex in examples) == {"entailment": 146, "not_entailment": 131}
    assert any('"' in ex.fields["premise"] for ex in examples)


@needs_data
def test_real_agnews_headerless_by_index():
    examples = read_examples(DATA / "agnews/test.tsv", fields={"text": 0}, label=1)
    assert len(examples) == 7600
    assert Counter(ex.label for ex in examples) == dict.fromkeys(
        ["Business", "Sci/Tech", "Sports", "World"], 1900
    )


@needs_data
def test_real_k_shot_sampling_matches_lm_bff_shape():
    train, dev = sample_k_shot(read_examples(DATA / "SST-2/dev.tsv"), 16, 42)
    assert Counter(ex.label for ex in train) == {"0": 16, "1": 16}
    assert len(dev) == 32 and not set(train) & set(dev)


# --------------------------------------------------------------------------------------------------------
# hardening (issue 16)


def test_unquoted_comma_in_the_last_text_column_is_joined_back_with_a_warning(tmp_path, caplog):
    from promptft.data.readers import read_rows

    path = write(tmp_path, "c.csv", "label,sentence\n1,a fine, funny film\n0,dull\n")
    with caplog.at_level("WARNING"):
        assert read_examples(path) == [
            Example({"text": "a fine, funny film"}, "1"),
            Example({"text": "dull"}, "0"),
        ]
    assert "line 2" in caplog.text and "quote" in caplog.text
    rows = read_rows(path)
    assert rows[0].cells == {"label": "1", "sentence": "a fine, funny film"}


def test_extra_fields_not_in_a_last_text_column_are_an_error(tmp_path):
    path = write(tmp_path, "c.csv", "sentence,label\na fine, funny film,1\n")
    with pytest.raises(DataError, match=r"line 2 .* has 3 fields.*unquoted .,.*Quote"):
        read_examples(path)


def test_label_index_on_a_file_with_a_header_skips_the_header(tmp_path):
    path = write(tmp_path, "h.csv", "sentence,label\ngreat,1\n")
    assert read_examples(path, label=1) == [Example({"text": "great"}, "1")]


def test_headerless_text_then_label_is_recognised(tmp_path):
    path = write(tmp_path, "t.csv", "a fine film,1\nawful,0\n")
    assert read_examples(path) == [Example({"text": "a fine film"}, "1"), Example({"text": "awful"}, "0")]


def test_assumed_layout_is_said_in_label_errors(tmp_path):
    path = write(tmp_path, "t.csv", "pos,great\nneg,bad\n")
    with pytest.raises(DataError, match="column 0 was read as the label"):
        read_examples(path, label_map={"0": "negative"})


def test_folder_is_said_to_be_a_folder_whatever_its_name(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError, match="is a folder") as err:
        read_examples(tmp_path / "data")
    assert "fmt" not in str(err.value)


def test_csv_that_is_tab_separated_says_so(tmp_path):
    path = write(tmp_path, "t.txt", "sentence\tlabel\nhi\t1\n")
    with pytest.raises(DataError, match="looks tab-separated"):
        read_examples(path, fmt="csv")
    comma = write(tmp_path, "c.tsv", "sentence,label\nhi,1\n")
    with pytest.raises(DataError, match="looks comma-separated"):
        read_examples(comma)


def test_empty_row_is_not_reported_as_a_missing_label(tmp_path):
    path = write(tmp_path, "e.csv", "sentence,label\ngood,1\n,\n")
    with pytest.raises(DataError, match="line 3 .* has neither text nor a label") as err:
        read_examples(path)
    assert "label=None" not in str(err.value)
    empty_text = read_examples(write(tmp_path, "t.csv", 'sentence,label\ngood,1\n"  ",0\n'))
    assert empty_text[1] == Example({"text": ""}, "0")


def test_an_unlabelled_read_says_which_column_it_guessed_is_the_text(tmp_path, caplog):
    """A headerless two-column file read without labels (predict, distill's pool): the LM-BFF layout guess
    used to be silent there, since only label errors named it."""
    import logging

    from promptft.data.readers import read_rows

    path = tmp_path / "ids.tsv"
    path.write_text("review one\t17\nreview two\t18\n")
    with caplog.at_level(logging.WARNING, logger="promptft.data.readers"):
        rows = read_rows(path, labels=False)
    assert [r.example.fields["text"] for r in rows] == ["review one", "review two"]
    assert "no header row, so column 0 was read as the text" in caplog.text and "--text-field" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="promptft.data.readers"):
        rows = read_rows(path, fields={"text": 1}, labels=False)
    assert [r.example.fields["text"] for r in rows] == ["17", "18"] and not caplog.text


def _tiny_dataset():
    import datasets

    ds = datasets.Dataset.from_dict(
        {"sentence": ["a fine film", "a dull mess", "warm", "thin"], "label": [1, 0, 1, 0]}
    )
    return ds.cast_column("label", datasets.ClassLabel(names=["negative", "positive"]))


def test_a_saved_dataset_folder_reads_like_a_file(tmp_path):
    """The command line and job files name a Hugging Face dataset by its save_to_disk folder."""
    import datasets

    from promptft.data.readers import read_rows

    _tiny_dataset().save_to_disk(str(tmp_path / "ds"))
    examples = read_examples(tmp_path / "ds")
    assert [(e.fields["text"], e.label) for e in examples[:2]] == [
        ("a fine film", "positive"),
        ("a dull mess", "negative"),
    ]
    assert read_rows(tmp_path / "ds")[0].cells == {
        "sentence": "a fine film",
        "label": "positive",
    }  # names, not ids
    datasets.DatasetDict({"train": _tiny_dataset()}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DataError, match="DatasetDict with splits"):
        read_examples(tmp_path / "dd")
    assert len(read_examples(tmp_path / "dd" / "train")) == 4


def test_hf_names_a_hub_dataset_split(monkeypatch):
    import datasets

    calls = []

    def fake_load(name, config=None, split=None):
        calls.append((name, config, split))
        if split == "nope":
            raise ValueError('Unknown split "nope". Should be one of ["train"].')
        return _tiny_dataset()

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    assert len(read_examples("hf:stanfordnlp/sst2:train")) == 4
    assert len(read_examples("hf:nyu-mll/glue:sst2:validation")) == 4
    assert calls == [("stanfordnlp/sst2", None, "train"), ("nyu-mll/glue", "sst2", "validation")]
    with pytest.raises(DataError, match=r"write hf:NAME:SPLIT or hf:NAME:CONFIG:SPLIT"):
        read_examples("hf:stanfordnlp/sst2")
    with pytest.raises(DataError, match=r"cannot load hf:x:nope \(ValueError: Unknown split"):
        read_examples("hf:x:nope")
