"""The benchmark on the other task types (issue 10): a regression task (STS-B-like) and a multi-label task
sampled per seed (GoEmotions-like), every method of theirs, cells and the summary naming each metric.
Tiny random models; numbers belong to benchmarks, not tests."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import yaml
from test_bench import tiny_model  # noqa: F401  (the module's tiny Llama folder fixture)

from promptft.bench import build_report, load_tasks, run_benchmark
from promptft.bench.tasks import read_split, sample_split, split_path
from tiny import tiny_bert

PAIRS = [
    ("It was great.", "It was great.", 5.0),
    ("It was great.", "It was terrible.", 0.5),
    ("I loved it.", "I loved it.", 4.8),
    ("The movie was good.", "The acting was bad.", 1.2),
    ("A wonderful film.", "A wonderful, moving film.", 4.0),
    ("I hated it.", "A boring, awful mess.", 2.6),
]
COMMENTS = [
    ("I loved it, a wonderful film", "0,2"),
    ("I hated it", "1"),
    ("great and good", "0"),
    ("an awful mess, bad", "1"),
    ("wonderful fantastic", "2"),
    ("boring and bad, I hated it", "1"),
    ("good acting, I loved it", "0,2"),
    ("horrible", "1"),
    ("great fun", "0"),
    ("wonderful, I loved it", "2,0"),
]


@pytest.fixture
def table(tmp_path):
    data = tmp_path / "data"
    for seed in (1, 2):
        folder = data / "sts" / "k-shot" / f"2-{seed}"
        folder.mkdir(parents=True)
        for split in ("train", "dev"):
            rows = PAIRS[seed - 1 :] if split == "train" else PAIRS[: 4 + seed]
            text = "sentence1\tsentence2\tscore\n" + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in rows)
            (folder / f"{split}.tsv").write_text(text)
    (data / "sts" / "test.tsv").write_text(
        "sentence1\tsentence2\tscore\n" + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in PAIRS)
    )
    (data / "emo").mkdir()
    for split in ("train", "dev", "test"):
        (data / "emo" / f"{split}.tsv").write_text(
            "".join(f"{t}\t{lab}\tid{i}\n" for i, (t, lab) in enumerate(COMMENTS))
        )
    spec = {
        "k": 2,
        "seeds": [1, 2],
        "data_dir": "data",
        "tasks": {
            "sts": {
                "name": "STS", "type": "regression", "value_range": [0, 5], "format": "tsv", "header": True,
                "train": "sts/k-shot/{k}-{seed}/train.tsv", "dev": "sts/k-shot/{k}-{seed}/dev.tsv",
                "test": "sts/test.tsv", "fields": {"sentence1": "sentence1", "sentence2": "sentence2"},
                "label": "score", "label_words": {"low": "no", "high": "great"},
                "prompts": {"causal": {"template": "{sentence1}\n{sentence2}\nSame? {mask}"}},
            },
            "emo": {
                "name": "Emo", "type": "multi_label", "format": "tsv", "header": False, "sample_k": 2,
                "train": "emo/train.tsv", "dev": "emo/dev.tsv", "test": "emo/test.tsv",
                "fields": {"text": 0}, "label": 1, "labels": {"0": "joy", "1": "anger", "2": "love"},
                "label_words": {"joy": "great", "anger": "terrible", "love": "wonderful"},
                "prompts": {"causal": {"template": "{text} It was {mask}."}},
            },
        },
    }  # fmt: skip
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture
def config(tmp_path):
    train = {"max_steps": 2, "batch_size": 4, "eval_every": 1, "max_length": 64}
    encoder = tmp_path / "tiny-bert"
    model, tok = tiny_bert()
    model.bert.save_pretrained(encoder)
    tok.save_pretrained(encoder)
    spec = {
        "eval_batch_size": 8,
        "methods": {
            "standard_ft": {**train, "learning_rate": 1e-4},
            "prompt_ft_lora": {**train, "lora": {"r": 2}},
            "prompt_ft_multilabel_sigmoid": {**train, "lora": {"r": 2}},
            "prompt_ft_multilabel_yesno": {**train, "lora": {"r": 2}},
            "minilm_cosine": {"encoder": str(encoder)},
        },
    }
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_multi_label_task_is_sampled_per_seed(table):
    task = load_tasks(table).tasks["emo"]
    full = read_split(task, split_path(task, "train", 1, 2, table.parent / "data"))
    assert full[0].label == ("joy", "love")
    sample = sample_split(task, full, 1)
    counts = Counter(label for ex in sample for label in ex.label)
    assert all(counts[label] >= 2 for label in ("joy", "anger", "love"))


def test_every_method_of_the_new_task_types_runs_and_reports_its_metric(tiny_model, table, config, tmp_path):  # noqa: F811
    results = tmp_path / "results"
    methods = [
        "zero_shot", "standard_ft", "prompt_ft_lora", "prompt_ft_multilabel_sigmoid",
        "prompt_ft_multilabel_yesno", "minilm_cosine",
    ]  # fmt: skip
    run = run_benchmark(
        tiny_model, methods=methods, tasks_file=table, config=config, results_dir=results, device="cpu",
        progress=False,
    )  # fmt: skip
    ran = Counter((c["task"], c["method"]) for c in run.cells)
    # each method only on the task types it handles, for both seeds
    assert set(ran) == {
        ("sts", "zero_shot"), ("sts", "standard_ft"), ("sts", "prompt_ft_lora"), ("sts", "minilm_cosine"),
        ("emo", "zero_shot"), ("emo", "standard_ft"), ("emo", "prompt_ft_lora"),
        ("emo", "prompt_ft_multilabel_sigmoid"), ("emo", "prompt_ft_multilabel_yesno"),
    }  # fmt: skip
    assert set(ran.values()) == {2}
    for cell in run.cells:
        if cell["task"] == "sts":
            assert cell["metric"] == "pearson" and {"pearson", "spearman", "score", "dev_pearson"} <= set(
                cell
            )
            assert "accuracy" not in cell and cell["n_test"] == 6
        else:
            assert cell["metric"] == "macro_f1" and {"macro_f1", "micro_f1", "subset_accuracy"} <= set(cell)
    cosine = [c for c in run.cells if c["method"] == "minilm_cosine"]
    assert cosine[1]["reused_test_from"] == "seed1.json"  # seed-independent: tested once
    report = build_report(results, tasks_file=table)
    model = next(iter(report.summary))
    sts = report.summary[model]["sts"]["prompt_ft_lora"]
    assert sts["metric"] == "pearson" and sts["n_seeds"] == 2 and set(sts["spearman"]) == {"mean", "std"}
    emo = report.summary[model]["emo"]["prompt_ft_multilabel_yesno"]
    assert emo["metric"] == "macro_f1" and "micro_f1" in emo
    assert json.loads(report.summary_path.read_text()) == report.summary


def test_zero_shot_with_thresholds_tuned_per_seed_is_not_reused(
    tiny_model,  # noqa: F811
    table,
    config,
    tmp_path,
    monkeypatch,
):
    """Multi-label zero-shot tunes its thresholds on each seed's dev split, so a seed's test predictions
    are its own: another seed's test scores must not be reused unless the thresholds are the same."""
    from promptft.bench.methods import METHODS

    original = METHODS["zero_shot"]

    def per_seed_thresholds(task, data, model, seed, options):
        fitted = original(task, data, model, seed, options)
        fitted.info["thresholds"] = [0.1 * seed]  # stands for thresholds that came out differently
        return fitted

    per_seed_thresholds.__dict__.update(original.__dict__)  # seed_independent, task types, ...
    monkeypatch.setitem(METHODS, "zero_shot", per_seed_thresholds)
    run = run_benchmark(
        tiny_model, tasks=["emo"], methods=["zero_shot"], tasks_file=table, config=config,
        results_dir=tmp_path / "results", device="cpu", progress=False,
    )  # fmt: skip
    assert [c["reused_test_from"] for c in run.cells] == [None, None]


def test_setfit_one_vs_rest_on_a_multi_label_task(tiny_model, table, tmp_path):  # noqa: F811
    from promptft.bench import METHODS
    from promptft.bench.methods import ModelRef, SplitData

    task = load_tasks(table).tasks["emo"]
    train = read_split(task, split_path(task, "train", 1, 2, table.parent / "data"))
    encoder = tmp_path / "tiny-bert"
    model, tok = tiny_bert()
    model.bert.save_pretrained(encoder)
    tok.save_pretrained(encoder)
    fitted = METHODS["setfit"](
        task,
        SplitData(train, train[:3]),
        ModelRef(tiny_model, device="cpu"),
        13,
        {"encoder": str(encoder), "num_iterations": 1, "batch_size": 8, "max_length": 32},
    )
    predicted = fitted.predictor.predict(train, batch_size=8)
    assert len(predicted) == len(train)
    assert all(isinstance(p, tuple) and set(p) <= {"joy", "anger", "love"} for p in predicted)
    # Per-label cuts come from dev (SetFit's own 0.5 cut predicts nothing on rare labels) and decide the sets.
    assert len(fitted.predictor.thresholds) == 3 and fitted.info["thresholds"] == fitted.predictor.thresholds
    fitted.predictor.thresholds = [0.0] * 3
    assert all(set(p) == {"joy", "anger", "love"} for p in fitted.predictor.predict(train[:4]))
    fitted.predictor.thresholds = [1.01] * 3
    assert all(p == () for p in fitted.predictor.predict(train[:4]))
