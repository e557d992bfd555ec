"""The few-shot benchmark: task table, runner (cells, resume, --test, dev-only, reuse, grid), report, CLI.

Runs on a tiny random Llama and a tiny synthetic task table; numbers belong to benchmarks, not tests.
"""

from __future__ import annotations

import functools
import json
import statistics
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from promptft.bench import METHODS, build_report, load_config, load_tasks, run_benchmark
from promptft.bench.config import expand_grid
from promptft.bench.methods import ModelRef, SplitData
from promptft.bench.report import SUMMARY_FILE
from promptft.bench.runner import cell_path, subset
from promptft.bench.tasks import read_split, split_path
from promptft.data import Example, label_names
from promptft.errors import ConfigError, DataError
from promptft.prompts import Template
from promptft.settings import data_dir
from tiny import tiny_llama

POS = ["a great film", "great acting", "it was great", "good and great", "wonderful", "I loved it"]
NEG = ["a terrible film", "bad acting", "it was terrible", "awful and bad", "boring", "I hated it"]


def _write_csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{label},{text}\n" for label, text in rows))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "tiny-llama"
    model, tok = tiny_llama()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


@pytest.fixture
def table(tmp_path):
    """A tiny task table: `sent` with a test file, `hidden` without one (dev only), K=2, seeds 1 and 2."""
    data = tmp_path / "data"
    for task in ("sent", "hidden"):
        for seed in (1, 2):
            for split in ("train", "dev"):
                rows = [(1, POS[(seed + i) % 6]) for i in range(2)] + [
                    (0, NEG[(seed + i) % 6]) for i in range(2)
                ]
                _write_csv(data / task / "k-shot" / f"2-{seed}" / f"{split}.csv", rows)
    _write_csv(data / "sent" / "test.csv", [(1, t) for t in POS] + [(0, t) for t in NEG])
    prompt = {
        "masked": {"template": "{text} It was {mask}."},
        "causal": {"template": "{text} It was {mask}."},
    }
    common = {
        "format": "csv",
        "header": False,
        "fields": {"text": 1},
        "label": 0,
        "labels": {"0": "negative", "1": "positive"},
        "label_words": {"negative": "terrible", "positive": "great"},
        "prompts": prompt,
    }
    spec = {
        "k": 2,
        "seeds": [1, 2],
        "data_dir": "data",
        "paper": {
            "model": "RoBERTa-large",
            "source": "LM-BFF Table 3",
            "methods": {"zero_shot": "prompt-based zero-shot", "prompt_ft": "prompt-based FT (man)"},
        },
        "tasks": {
            "sent": {
                "name": "Sent",
                "train": "sent/k-shot/{k}-{seed}/train.csv",
                "dev": "sent/k-shot/{k}-{seed}/dev.csv",
                "test": "sent/test.csv",
                "paper": {"zero_shot": [83.6, None], "prompt_ft": [92.7, 0.9]},
                **common,
            },
            "hidden": {
                "name": "Hidden",
                "train": "hidden/k-shot/{k}-{seed}/train.csv",
                "dev": "hidden/k-shot/{k}-{seed}/dev.csv",
                "test": None,
                **common,
            },
        },
    }
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture
def config(tmp_path):
    """Tiny budgets: 2 steps; prompt_ft_lora has a 2-point learning-rate grid."""
    train = {"max_steps": 2, "batch_size": 4, "eval_every": 1, "max_length": 64}
    spec = {
        "eval_batch_size": 8,
        "methods": {
            "prompt_ft": {**train, "learning_rate": "1e-4", "grid": {}},
            "standard_ft": {**train, "learning_rate": 1e-4, "grid": {}},
            "prompt_ft_lora": {**train, "grid": {"learning_rate": [1e-3, 1e-2]}, "lora": {"r": 2}},
        },
    }
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def run(tiny_model, table, config, results, **kw):
    kw.setdefault("progress", False)
    return run_benchmark(tiny_model, tasks_file=table, config=config, results_dir=results, device="cpu", **kw)


def counting(monkeypatch, name):
    calls = []
    original = METHODS[name]

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        calls.append(args[3])  # the seed
        return original(*args, **kwargs)

    monkeypatch.setitem(METHODS, name, wrapper)
    return calls


# ---------------------------------------------------------------------------------------------------------
# runner


def test_cells_written_per_task_method_seed_and_rerun_skips(
    tiny_model, table, config, tmp_path, monkeypatch, caplog
):
    results = tmp_path / "results"
    with caplog.at_level("INFO", logger="promptft.bench.runner"):
        out = run(tiny_model, table, config, results, methods=["zero_shot", "prompt_ft_lora"])
    assert len(out.written) == 2 * 2 * 2 and not out.skipped
    assert "prompt_ft_lora seed 2: testing on" in caplog.text  # each cell's phases reach the logs too
    for task in ("sent", "hidden"):
        for method in ("zero_shot", "prompt_ft_lora"):
            for seed in (1, 2):
                cell = json.loads(cell_path(results, "tiny-llama", task, method, seed).read_text())
                assert (cell["task"], cell["method"], cell["seed"]) == (task, method, seed)
                for key in (
                    "accuracy",
                    "macro_f1",
                    "n_test",
                    "test",
                    "train_time_s",
                    "eval_time_s",
                    "steps",
                    "best_step",
                    "dev_accuracy",
                    "config",
                    "promptft_version",
                    "command",
                    "timestamp",
                ):
                    assert key in cell, key
                assert 0 <= cell["accuracy"] <= 1
    lora = json.loads(cell_path(results, "tiny-llama", "sent", "prompt_ft_lora", 1).read_text())
    assert lora["config"]["lora"]["r"] == 2 and lora["steps"] <= 2
    assert not list(results.rglob("*.tmp"))  # written atomically, nothing left behind

    calls = counting(monkeypatch, "zero_shot")
    again = run(tiny_model, table, config, results, methods=["zero_shot", "prompt_ft_lora"])
    assert not again.written and len(again.skipped) == 8 and calls == []
    forced = run(
        tiny_model, table, config, results, tasks=["sent"], methods=["zero_shot"], seeds=[2], force=True
    )
    assert len(forced.written) == 1 and calls == [2]


def test_grid_keeps_the_best_on_dev_and_records_every_point(tiny_model, table, config, tmp_path):
    results = tmp_path / "results"
    run(tiny_model, table, config, results, tasks=["sent"], methods=["prompt_ft_lora"], seeds=[1])
    cell = json.loads(cell_path(results, "tiny-llama", "sent", "prompt_ft_lora", 1).read_text())
    assert [g["config"]["learning_rate"] for g in cell["grid"]] == [1e-3, 1e-2]
    best = max(cell["grid"], key=lambda g: g["dev_accuracy"])
    assert cell["config"]["learning_rate"] == best["config"]["learning_rate"]
    assert cell["dev_accuracy"] == best["dev_accuracy"]
    assert cell["train_time_s"] == pytest.approx(sum(g["train_time_s"] for g in cell["grid"]), abs=0.01)


def test_refit_cells_record_it_and_a_dev_scored_task_refuses_it(tiny_model, table, tmp_path):
    config = tmp_path / "refit.yaml"
    options = {"max_steps": 2, "batch_size": 4, "eval_every": 1, "max_length": 64, "eval_at_start": False}
    config.write_text(yaml.safe_dump({"methods": {"prompt_ft_lora": {**options, "refit": True}}}))
    results = tmp_path / "results"
    run(tiny_model, table, config, results, tasks=["sent"], methods=["prompt_ft_lora"], seeds=[1])
    cell = json.loads(cell_path(results, "tiny-llama", "sent", "prompt_ft_lora", 1).read_text())
    refit = cell["info"]["refit"]
    assert refit["steps"] == cell["best_step"] > 0 and refit["n_examples"] == cell["n_train"] + cell["n_dev"]
    assert cell["config"]["refit"] is True
    with pytest.raises(ConfigError, match="prompt_ft_lora on hidden"):  # before any cell runs
        run(tiny_model, table, config, results, tasks=["hidden"], methods=["prompt_ft_lora"], seeds=[1])
    assert not cell_path(results, "tiny-llama", "hidden", "prompt_ft_lora", 1).exists()
    # a vote is weighed and chosen on dev: a member that trained on dev is refused, before any cell runs
    vote = {"members": ["zero_shot", "prompt_ft_lora"]}
    config.write_text(
        yaml.safe_dump({"methods": {"prompt_ft_lora": {**options, "refit": True}, "method_ensemble": vote}})
    )
    with pytest.raises(ConfigError, match="method_ensemble: a member refits"):
        run(tiny_model, table, config, results, tasks=["sent"], methods=["method_ensemble"], seeds=[1])
    assert not cell_path(results, "tiny-llama", "sent", "method_ensemble", 1).exists()


def test_test_override_is_used_and_recorded_and_dev_only_task_says_dev(tiny_model, table, config, tmp_path):
    results = tmp_path / "results"
    run(tiny_model, table, config, results, methods=["zero_shot"], seeds=[1])
    hidden = json.loads(cell_path(results, "tiny-llama", "hidden", "zero_shot", 1).read_text())
    assert (
        hidden["test"] == "dev" and hidden["n_test"] == hidden["n_dev"] == 4 and hidden["test_path"] is None
    )
    assert "optimistic" in hidden["note"]
    sent = json.loads(cell_path(results, "tiny-llama", "sent", "zero_shot", 1).read_text())
    assert sent["test"] == "sent/test.csv" and sent["n_test"] == 12 and not sent["test_overridden"]

    copy = tmp_path / "hidden_test.csv"
    _write_csv(copy, [(1, t) for t in POS[:3]] + [(0, t) for t in NEG[:2]])
    run(
        tiny_model,
        table,
        config,
        results,
        tasks=["hidden"],
        methods=["zero_shot"],
        seeds=[1],
        test_overrides={"hidden": str(copy)},
        force=True,
    )
    cell = json.loads(cell_path(results, "tiny-llama", "hidden", "zero_shot", 1).read_text())
    assert cell["test"] == str(copy) and cell["test_overridden"] and cell["n_test"] == 5

    with pytest.raises(DataError, match="--test hidden="):
        run(tiny_model, table, config, results, tasks=["hidden"], test_overrides={"hidden": "nope.csv"})
    with pytest.raises(ConfigError, match="does not include"):
        run(tiny_model, table, config, results, tasks=["sent"], test_overrides={"hidden": str(copy)})


def test_zero_shot_test_scores_are_computed_once_and_reused(tiny_model, table, config, tmp_path, monkeypatch):
    results = tmp_path / "results"
    predicted = []
    original = METHODS["zero_shot"]

    @functools.wraps(original)
    def spy(*args, **kwargs):
        fitted = original(*args, **kwargs)
        inner = fitted.predictor.predict

        def predict(examples, batch_size=32):
            predicted.append(len(examples))
            return inner(examples, batch_size=batch_size)

        fitted.predictor.predict = predict
        return fitted

    monkeypatch.setitem(METHODS, "zero_shot", spy)
    run(tiny_model, table, config, results, tasks=["sent"], methods=["zero_shot"], seeds=[1, 2])
    first, second = (
        json.loads(cell_path(results, "tiny-llama", "sent", "zero_shot", s).read_text()) for s in (1, 2)
    )
    assert predicted.count(12) == 1  # the test file was scored once (the 4-example calls are dev)
    assert first["reused_test_from"] is None and second["reused_test_from"] == "seed1.json"
    assert second["accuracy"] == first["accuracy"] and second["eval_time_s"] == 0

    # across runs too: a later run for another seed reuses the finished cell on disk
    cell_path(results, "tiny-llama", "sent", "zero_shot", 2).unlink()
    predicted.clear()
    run(tiny_model, table, config, results, tasks=["sent"], methods=["zero_shot"], seeds=[2])
    assert 12 not in predicted
    assert (
        json.loads(cell_path(results, "tiny-llama", "sent", "zero_shot", 2).read_text())["reused_test_from"]
        == "seed1.json"
    )


def test_calibrated_zero_shot_divides_out_the_content_free_prior(tiny_model, table, config, tmp_path):
    """The cell's predictions are those of the task's prompt with contextual calibration, recorded as such;
    a temperature option is fitted on dev and recorded, and never changes a prediction."""
    from promptft.classifiers import PromptClassifier
    from promptft.models.loading import load_backbone

    results = tmp_path / "results"
    run(
        tiny_model,
        table,
        config,
        results,
        tasks=["sent"],
        methods=["calibrated_zero_shot", "zero_shot"],
        seeds=[1],
    )
    cell = json.loads(cell_path(results, "tiny-llama", "sent", "calibrated_zero_shot", 1).read_text())
    assert cell["info"]["calibrate"] == "contextual"
    prior = cell["info"]["content_free_prior"]
    assert set(prior) == {"negative", "positive"} and sum(prior.values()) == pytest.approx(1.0, abs=1e-5)

    # the method's classifier: the plain prompt's probabilities divided by p_cf, renormalised
    task = load_tasks(table).tasks["sent"]
    test = read_split(task, Path(table).parent / "data" / task.test)
    fitted = METHODS["calibrated_zero_shot"](
        task, SplitData(test[:4], test[4:8]), ModelRef(tiny_model), 1, {}
    )
    calibrated = fitted.predictor.classifier
    assert calibrated.calibrate == "contextual"
    assert calibrated.content_free_prior() == pytest.approx(list(prior.values()), abs=1e-5)
    plain = PromptClassifier(
        load_backbone(tiny_model), "{text} It was {mask}.", calibrated.verbalizer.label_words, max_length=64
    )
    raw = np.asarray(plain.predict_proba(test))
    expected = raw / np.asarray(list(prior.values()))
    expected /= expected.sum(axis=1, keepdims=True)
    assert np.asarray(calibrated.predict_proba(test)) == pytest.approx(expected, abs=1e-4)
    assert not np.allclose(raw, expected, atol=1e-3)

    options = tmp_path / "temperature.yaml"
    options.write_text(
        yaml.safe_dump({"methods": {"calibrated_zero_shot": {"calibrate": "contextual+temperature"}}})
    )
    again = tmp_path / "again"
    run(tiny_model, table, options, again, tasks=["sent"], methods=["calibrated_zero_shot"], seeds=[1])
    tempered = json.loads(cell_path(again, "tiny-llama", "sent", "calibrated_zero_shot", 1).read_text())
    assert tempered["info"]["calibration_temperature"] > 0 and tempered["accuracy"] == cell["accuracy"]


def test_other_methods_run_end_to_end(tiny_model, table, config, tmp_path):
    results = tmp_path / "results"
    out = run(
        tiny_model, table, config, results, tasks=["sent"], methods=["standard_ft", "prompt_ft"], seeds=[1]
    )
    assert len(out.written) == 2
    for method in ("standard_ft", "prompt_ft"):
        cell = json.loads(cell_path(results, "tiny-llama", "sent", method, 1).read_text())
        assert cell["steps"] <= 2 and cell["train_time_s"] > 0 and cell["grid"] is None


def test_bad_names_are_clear_errors(tiny_model, table, config, tmp_path):
    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        run(tiny_model, table, config, tmp_path, tasks=["nope"])
    with pytest.raises(ConfigError, match="unknown method"):
        run(tiny_model, table, config, tmp_path, methods=["magic"])
    with pytest.raises(ConfigError, match="--max-test"):
        run(tiny_model, table, config, tmp_path, max_test=0)


def test_max_test_subset_is_fixed_recorded_and_marked(tiny_model, table, config, tmp_path):
    examples = [Example({"text": str(i)}, "x") for i in range(100)]
    assert subset(examples, 10) == subset(examples, 10) and len(subset(examples, 10)) == 10
    assert subset(examples, 500) is examples
    results = tmp_path / "results"
    run(tiny_model, table, config, results, tasks=["sent"], methods=["zero_shot"], seeds=[1], max_test=5)
    cell = json.loads(cell_path(results, "tiny-llama", "sent", "zero_shot", 1).read_text())
    assert cell["max_test"] == 5 and cell["test_subset"] and cell["n_test"] == 5
    report = build_report(results, table)
    assert "Sent‡" in report.markdown_path.read_text()


# ---------------------------------------------------------------------------------------------------------
# report


def test_report_schema_markdown_and_plot(tiny_model, table, config, tmp_path):
    results = tmp_path / "results"
    run(tiny_model, table, config, results, methods=["zero_shot", "prompt_ft"])
    report = build_report(results, table)
    summary = json.loads((results / SUMMARY_FILE).read_text())
    assert summary == report.summary
    assert set(summary) == {"tiny-llama"}
    assert set(summary["tiny-llama"]) == {"sent", "hidden"}
    for task, methods in summary["tiny-llama"].items():
        assert set(methods) == {"zero_shot", "prompt_ft"}
        for stats in methods.values():
            assert set(stats) == {"mean", "std", "n_seeds", "test"}
            assert stats["n_seeds"] == 2 and 0 <= stats["mean"] <= 100
            assert stats["test"] == ("dev" if task == "hidden" else "sent/test.csv")
    accs = [
        100 * json.loads(cell_path(results, "tiny-llama", "hidden", "prompt_ft", s).read_text())["accuracy"]
        for s in (1, 2)
    ]
    assert summary["tiny-llama"]["hidden"]["prompt_ft"]["std"] == pytest.approx(
        statistics.stdev(accs), abs=0.01
    )
    text = report.markdown_path.read_text()
    assert "92.7 (0.9)" in text and "RoBERTa-large" in text and "ddof=1" in text
    assert "Hidden†" in text and "Average" in text and "wall-clock hours" in text
    assert report.plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _fake_cell(results, model, task, method, seed, acc, test="x.tsv", train_s=1.0, dev=None):
    from promptft.bench.runner import write_json_atomic

    write_json_atomic(
        cell_path(results, model, task, method, seed),
        {
            "model": model,
            "task": task,
            "method": method,
            "seed": seed,
            "accuracy": acc,
            "macro_f1": acc,
            "n_test": 10,
            "test": test,
            "train_time_s": train_s,
            "eval_time_s": 2.0,
            "wall_time_s": 3600.0,
            "cpu_time_s": 7200.0,
            "model_kind": "causal",
            "device": "cpu",
            "command": "promptft bench run",
            **({"dev_accuracy": dev} if dev is not None else {}),
        },
    )


def test_report_with_the_packaged_table_shows_the_paper_numbers(tmp_path):
    results = tmp_path / "results"
    for seed, acc in zip((13, 21, 42, 87, 100), (0.8, 0.82, 0.84, 0.86, 0.88), strict=True):
        _fake_cell(results, "fake", "sst-2", "prompt_ft", seed, acc, "SST-2/test.tsv")
    _fake_cell(results, "fake", "mpqa", "zero_shot", 13, 0.6, "dev")
    report = build_report(results)
    stats = report.summary["fake"]["sst-2"]["prompt_ft"]
    assert stats == {
        "mean": 84.0,
        "std": pytest.approx(3.16, abs=0.01),
        "n_seeds": 5,
        "test": "SST-2/test.tsv",
    }
    assert report.summary["fake"]["mpqa"]["zero_shot"] == {
        "mean": 60.0,
        "std": None,
        "n_seeds": 1,
        "test": "dev",
    }
    text = report.markdown_path.read_text()
    for number in ("83.6", "81.4 (3.8)", "92.7 (0.9)", "67.6", "72.0 (3.8)", "84.7 (2.2)"):
        assert number in text
    assert "84.0 (3.2)" in text and "60.0 [n=1]" in text and "MPQA†" in text
    assert "6.00 wall-clock hours" in text and "12.00 CPU hours" in text


def test_report_checks_the_targets(tmp_path):
    results = tmp_path / "results"
    for seed, acc in zip((13, 21, 42, 87, 100), (0.89, 0.90, 0.91, 0.90, 0.90), strict=True):
        _fake_cell(
            results, "fake", "sst-2", "prompt_ft_lora", seed, acc, train_s=50.0 if seed != 87 else 900.0
        )
        _fake_cell(results, "fake", "sst-2", "standard_ft", seed, 0.85)
        _fake_cell(results, "fake", "sst-2", "zero_shot", seed, 0.70)
        _fake_cell(results, "fake", "sst-2", "setfit", seed, 0.95, train_s=20.0)
    text = build_report(results).markdown_path.read_text()
    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]): line for line in text.splitlines()}
    assert "+5.0 ✗" in rows[("≥ +10 points over standard_ft", "prompt_ft_lora")]
    assert "+20.0 ✓" in rows[("≥ +10 points over zero_shot", "prompt_ft_lora")]
    assert "90.0 (0.7) ✓" in rows[("mean ≥ 88, std ≤ 2", "prompt_ft_lora")]
    assert "-5.0 ✗" in rows[("≥ +0 points over setfit", "prompt_ft_lora")]
    # median train seconds: the one slow seed (900 s) does not decide it; 50 / 20 = 2.5x
    assert "2.5x ✗" in rows[("train time ≤ 2x setfit's", "prompt_ft_lora")]
    assert "| – |" in rows[("mean ≥ 88, std ≤ 2", "prompt_ft")]  # not measured yet


def test_a_margin_over_another_test_set_is_not_decided(tmp_path):
    results = tmp_path / "results"
    for seed in (13, 21):
        _fake_cell(results, "fake", "sst-2", "prompt_ft_lora", seed, 0.95, test="SST-2/test.tsv")
        _fake_cell(results, "fake", "sst-2", "setfit", seed, 0.90, test="SST-2/test.tsv")
    text = build_report(results).markdown_path.read_text()
    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]): line for line in text.splitlines()}
    assert "+5.0 ✓" in rows[("≥ +0 points over setfit", "prompt_ft_lora")]
    for seed in (13, 21):  # the same seeds, scored on other test examples
        _fake_cell(results, "fake", "sst-2", "setfit", seed, 0.90, test="SST-2/other.tsv")
    text = build_report(results).markdown_path.read_text()
    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]): line for line in text.splitlines()}
    assert "+5.0 ≠" in rows[("≥ +0 points over setfit", "prompt_ft_lora")]


def test_bad_target_is_a_clear_error(tmp_path):
    table = yaml.safe_load(Path(load_tasks().source).read_text())
    table["targets"] = [{"methods": ["prompt_ft"], "tasks": ["sst-2"], "min_margin": 10}]
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump(table))
    with pytest.raises(ConfigError, match="over:"):
        load_tasks(path)


def test_report_without_cells_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="bench run"):
        build_report(tmp_path)


# ---------------------------------------------------------------------------------------------------------
# task table and config


def test_packaged_tasks_table_prompts_fit_the_backbones():
    table = load_tasks()
    lm_bff = ["sst-2", "sst-5", "mr", "cr", "subj", "mpqa", "trec", "rte"]
    assert list(table.tasks) == [*lm_bff, "sts-b", "goemotions"]  # + issue 10's task types
    assert table.seeds == (13, 21, 42, 87, 100) and table.k == 16
    for task in table.tasks.values():
        if (
            task.key not in lm_bff
        ):  # no paper numbers until confirmed; the causal prompt already ends with the slot
            assert not task.paper and task.type in ("regression", "multi_label")
            continue
        assert set(task.paper) == {"zero_shot", "standard_ft", "prompt_ft"}
        for kind in ("masked", "causal"):
            spec = task.prompt_for(kind)
            template = Template(spec.template)
            assert set(template.fields) == set(task.fields)
            assert set(spec.label_words) == set(task.label_names)
        causal = Template(task.prompt_for("causal").template)
        assert all(s.kind == "literal" for s in causal.after_slot), task.key  # the prompt ends with the slot
        assert task.prompt_for("causal").adaptation
    assert table.tasks["mpqa"].test is None and table.tasks["trec"].test is None
    assert table.tasks["trec"].prompt_for("masked").template.startswith("{mask}")
    rte = table.tasks["rte"].prompt_for("masked")
    ex = rte.prepare([Example({"premise": "It rained.", "hypothesis": "The street is wet."}, "entailment")])[
        0
    ]
    assert ex.fields == {"premise": "It rained", "hypothesis": "the street is wet."}


@pytest.mark.skipif(data_dir() is None, reason="shared benchmark data not present")
def test_packaged_tasks_files_exist_and_labels_have_words():
    table = load_tasks()
    root = table.resolve_data_dir()
    for task in table.tasks.values():
        for seed in table.seeds:
            for split in ("train", "dev"):
                path = split_path(task, split, seed, table.k, root)
                assert path.is_file(), path
        examples = read_split(task, split_path(task, "train", 13, table.k, root))
        if task.type == "regression":  # STS-B: LM-BFF buckets at 2.5 to sample 16 of each half
            assert len(examples) == 2 * table.k and all(0 <= ex.label <= 5 for ex in examples)
            assert (root / task.test).is_file() and set(examples[0].fields) == set(task.fields)
            continue
        if task.type == "multi_label":  # GoEmotions: whole files, every label among them
            assert set(label_names(examples)) == set(task.label_names)
            continue
        assert len(examples) == table.k * len(task.label_names)
        labels = {ex.label for ex in examples}
        if task.test is not None:
            assert (root / task.test).is_file()
            labels |= {ex.label for ex in read_split(task, root / task.test)}
        assert labels == set(task.label_names), task.key
        for kind in ("masked", "causal"):
            assert labels <= set(task.prompt_for(kind).label_words)
        assert set(examples[0].fields) == set(task.fields)


def test_config_defaults_merge_and_grid(tmp_path):
    cfg = load_config()
    lora = cfg.method("prompt_ft_lora")
    assert lora["learning_rate"] == 3e-4 and lora["max_steps"] == 60 and lora["lora"]["r"] == 8
    assert cfg.eval_batch_size == 32
    assert [c["learning_rate"] for c in expand_grid(cfg.method("prompt_ft"))] == [1e-5]  # no grid by default
    override = tmp_path / "o.yaml"
    override.write_text(
        "methods:\n  prompt_ft_lora:\n    lora: {r: 4}\n    grid: {learning_rate: [1e-4, 3e-4], lora.r: [4, 8]}\n"
    )
    merged = load_config(override).method("prompt_ft_lora")
    assert merged["lora"] == {"r": 4, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"}
    combos = expand_grid(merged)
    assert len(combos) == 4 and {(c["learning_rate"], c["lora"]["r"]) for c in combos} == {
        (1e-4, 4),
        (1e-4, 8),
        (3e-4, 4),
        (3e-4, 8),
    }
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: {}\n")
    with pytest.raises(ConfigError, match="unknown top-level"):
        load_config(bad)


# ---------------------------------------------------------------------------------------------------------
# setfit and the CLI


def _minilm_ready() -> bool:
    from promptft.models.registry import is_ready

    try:
        import setfit  # noqa: F401
    except ImportError:
        return False
    return is_ready("minilm-l6")


@pytest.mark.skipif(not _minilm_ready(), reason="setfit or the offline MiniLM package is not installed")
def test_setfit_method_trains_offline_and_predicts(tiny_model, table):
    task = load_tasks(table).tasks["sent"]
    train = [Example({"text": t}, "positive") for t in POS[:4]] + [
        Example({"text": t}, "negative") for t in NEG[:4]
    ]
    fitted = METHODS["setfit"](
        task,
        SplitData(train, train[:2]),
        ModelRef(tiny_model, device="cpu"),
        13,
        {"num_iterations": 1, "batch_size": 16, "max_length": 32},
    )
    assert fitted.train_time_s > 0 and fitted.info["encoder"] == "minilm-l6"
    predicted = fitted.predictor.predict(train, batch_size=8)
    assert len(predicted) == 8 and set(predicted) <= {"positive", "negative"}
    probs = fitted.predictor.predict_proba(train, batch_size=8)  # what method_ensemble combines
    assert probs.shape == (8, 2) and np.allclose(probs.sum(axis=1), 1.0)
    labels = fitted.predictor.labels
    assert [labels[i] for i in probs.argmax(axis=1)] == predicted  # columns in `labels` order


def test_cli_run_and_report(tiny_model, table, config, tmp_path):
    from promptft.cli import app  # the real entry point, whose command group reports user errors

    results = tmp_path / "results"
    runner = CliRunner()
    args = [
        "bench",
        "run",
        "--model",
        tiny_model,
        "--tasks-file",
        str(table),
        "--config",
        str(config),
        "--methods",
        "zero_shot",
        "--seeds",
        "1",
        "--results-dir",
        str(results),
        "--device",
        "cpu",
    ]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert cell_path(results, "tiny-llama", "sent", "zero_shot", 1).exists()
    assert (results / SUMMARY_FILE).exists() and (results / "fewshot.md").exists()
    out = runner.invoke(app, ["bench", "report", "--results-dir", str(results), "--tasks-file", str(table)])
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, [*args, "--tasks", "nope"])
    assert out.exit_code == 2 and "unknown task 'nope'" in out.output
    out = runner.invoke(app, ["bench", "run", "--help"])
    assert out.exit_code == 0 and "Example" in out.output


def _smollm_ready() -> bool:
    from promptft.models.registry import is_ready

    return is_ready("smollm2-135m")


@pytest.mark.slow
@pytest.mark.skipif(
    data_dir() is None or not _smollm_ready(), reason="needs shared data and the converted SmolLM2"
)
def test_causal_prompts_encode_with_the_default_model_tokenizer():
    from transformers import AutoTokenizer

    from promptft.models.registry import resolve_model
    from promptft.prompts import Verbalizer
    from promptft.prompts.encoding import PromptEncoder

    tok = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))
    table = load_tasks()
    root = table.resolve_data_dir()
    for task in table.tasks.values():
        spec = task.prompt_for("causal")
        template = Template(spec.template)
        words = Verbalizer(spec.label_words).tokenize(tok, template.space_before_slot)
        assert all(len(w) == 1 for w in words.word_ids), task.key  # every label word is one token here
        example = spec.prepare(read_split(task, split_path(task, "train", 13, table.k, root)))[0]
        encoded = PromptEncoder(tok, template, slot_text=None, max_length=256).encode(example.fields)
        text = tok.decode(encoded.input_ids)
        assert all(example.fields[f][:20] in text for f in task.fields), (
            task.key
        )  # no field lost after the slot


def test_rerun_with_another_test_set_keeps_cells_and_warns(tiny_model, table, config, tmp_path):
    from io import StringIO

    from rich.console import Console

    results = tmp_path / "results"
    run(tiny_model, table, config, results, tasks=["sent"], methods=["zero_shot"], seeds=[1], max_test=3)
    buffer = StringIO()
    out = run(
        tiny_model,
        table,
        config,
        results,
        tasks=["sent"],
        methods=["zero_shot"],
        seeds=[1],
        console=Console(file=buffer, width=200),
    )
    assert not out.written and len(out.skipped) == 1
    assert "--force" in buffer.getvalue()
    assert json.loads(cell_path(results, "tiny-llama", "sent", "zero_shot", 1).read_text())["max_test"] == 3


# ---------------------------------------------------------------------------------------------------------
# per-task options


def test_per_task_options_merge_onto_the_method(tmp_path):
    cfg = load_config()
    assert cfg.method("prompt_ft_lora", "trec")["max_steps"] == 200
    assert (
        cfg.method("prompt_ft_lora", "sst-2")["max_steps"] == 60 == cfg.method("prompt_ft_lora")["max_steps"]
    )
    override = tmp_path / "o.yaml"
    override.write_text(
        "tasks:\n"
        "  sst-2:\n    prompt_ft_lora: {lora: {r: 4}, grid: {learning_rate: [1e-4, 3e-4]}}\n"
        "  trec:\n    prompt_ft_lora: {max_steps: 300}\n"
    )
    merged = load_config(override)
    sst2 = merged.method("prompt_ft_lora", "sst-2")
    assert sst2["lora"]["r"] == 4 and sst2["lora"]["alpha"] == 16  # lora merges one level down
    assert [c["learning_rate"] for c in expand_grid(sst2)] == [1e-4, 3e-4]
    trec = merged.method("prompt_ft_lora", "trec")
    assert trec["max_steps"] == 300 and trec["eval_every"] == 20  # the packaged trec options stay
    assert merged.method("prompt_ft_lora", "mr") == load_config().method("prompt_ft_lora")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  trec: [prompt_ft_lora]\n")
    with pytest.raises(ConfigError, match="tasks.trec must be a mapping"):
        load_config(bad)


def test_per_task_options_reach_the_cell_and_stale_cells_warn(tiny_model, table, config, tmp_path):
    from io import StringIO

    from rich.console import Console

    spec = yaml.safe_load(config.read_text())
    spec["tasks"] = {"hidden": {"prompt_ft": {"max_steps": 3}}}
    per_task = tmp_path / "per_task.yaml"
    per_task.write_text(yaml.safe_dump(spec))
    results = tmp_path / "results"
    run(tiny_model, table, per_task, results, methods=["prompt_ft"], seeds=[1])
    steps = {
        t: json.loads(cell_path(results, "tiny-llama", t, "prompt_ft", 1).read_text())
        for t in ("sent", "hidden")
    }
    assert steps["hidden"]["config"]["max_steps"] == 3 and steps["sent"]["config"]["max_steps"] == 2

    quiet = StringIO()  # same config: nothing to warn about
    run(tiny_model, table, per_task, results, methods=["prompt_ft"], seeds=[1], console=Console(file=quiet))
    assert "other options" not in quiet.getvalue()
    loud = StringIO()  # the per-task change dropped: the hidden cell is now stale, and kept
    out = run(
        tiny_model,
        table,
        config,
        results,
        methods=["prompt_ft"],
        seeds=[1],
        console=Console(file=loud, width=300),
    )
    assert not out.written and "1 finished cell(s) were trained with other options" in loud.getvalue()
    assert (
        json.loads(cell_path(results, "tiny-llama", "hidden", "prompt_ft", 1).read_text())["config"][
            "max_steps"
        ]
        == 3
    )

    run(tiny_model, table, config, results, methods=["prompt_ft"], seeds=[2])
    text = build_report(results, table).markdown_path.read_text()
    assert "§" in text.split("| prompt_ft |")[1].split("\n")[0]  # hidden mixes 3 and 2 steps across seeds
    assert "prompt_ft on Hidden: max_steps=3" in text

    spec["tasks"] = {"nope": {"prompt_ft": {"max_steps": 3}}}
    per_task.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match="unknown task"):
        run(tiny_model, table, per_task, results, methods=["prompt_ft"], seeds=[1])


def test_adapter_methods_record_and_report_trainable_parameters(tiny_model, table, tmp_path):
    """Issue #9's adapter rows: each runs through the bench and its row shows what trained."""
    train = {"max_steps": 1, "batch_size": 4, "eval_every": 1, "max_length": 64}
    small = {"adapter": {"num_virtual_tokens": 2}}
    spec = {
        "methods": {
            "prompt_ft_ia3": train,
            "prompt_tuning": {**train, **small},
            "p_tuning": {**train, "adapter": {"num_virtual_tokens": 2, "encoder_hidden_size": 8}},
            "prefix_tuning": {**train, **small},
            "prompt_ft_label_embeddings": train,
        }
    }
    config = tmp_path / "bench.yaml"
    config.write_text(yaml.safe_dump(spec))
    results = tmp_path / "results"
    methods = list(spec["methods"])
    run(tiny_model, table, config, results, methods=methods, seeds=[1], tasks=["sent"])
    counts = {}
    for name in methods:
        cell = json.loads(cell_path(results, "tiny-llama", "sent", name, 1).read_text())
        counts[name] = cell["info"]["trainable_parameters"]
        assert 0 < counts[name] < cell["info"]["total_parameters"]
    assert counts["prompt_tuning"] == 2 * 32  # 2 virtual tokens x hidden size 32
    assert counts["prompt_ft_label_embeddings"] == 2 * 32  # "terrible" and "great": one token each here
    text = build_report(results, table).markdown_path.read_text()
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "Trainable params" in rows["Method"]
    assert "| 64 |" in rows["prompt_tuning"]


def test_user_method_options_win_over_packaged_per_task_options(tmp_path, caplog):
    override = tmp_path / "o.yaml"
    override.write_text("methods:\n  prompt_ft_lora: {max_steps: 2}\n")
    with caplog.at_level("WARNING"):
        merged = load_config(override)
    trec = merged.method("prompt_ft_lora", "trec")
    assert trec["max_steps"] == 2 and trec["eval_every"] == 20  # only what the user set is replaced
    assert "tasks.trec.prompt_ft_lora.max_steps=200" in caplog.text  # the conflict is reported
    assert merged.method("prompt_ft", "trec")["max_steps"] == 200  # other methods keep theirs
    both = tmp_path / "b.yaml"
    both.write_text(
        "methods:\n  prompt_ft_lora: {max_steps: 2}\ntasks:\n  trec:\n    prompt_ft_lora: {max_steps: 5}\n"
    )
    assert load_config(both).method("prompt_ft_lora", "trec")["max_steps"] == 5  # the user's own task block


def test_average_is_over_accuracy_tasks_only(tmp_path):
    """A Pearson (STS-B) is not an accuracy: it gets its column but stays out of the method's average."""
    from promptft.bench.runner import write_json_atomic

    results = tmp_path / "results"
    for seed in (13, 21, 42, 87, 100):
        _fake_cell(results, "fake", "sst-2", "prompt_ft_lora", seed, 0.80, "SST-2/test.tsv")
        _fake_cell(results, "fake", "sts-b", "prompt_ft_lora", seed, 0.20, "STS-B/test.tsv")
        path = cell_path(results, "fake", "sts-b", "prompt_ft_lora", seed)
        write_json_atomic(path, {**json.loads(path.read_text()), "metric": "pearson"})
    text = build_report(results).markdown_path.read_text()
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "Average (accuracy tasks)" in rows["Method"]
    cells = [c.strip() for c in rows["prompt_ft_lora"].split("|")]
    assert cells[2:5] == ["80.0 (0.0)", "20.0 (0.0)", "80.0"]  # SST-2, STS-B, then the average of SST-2 alone


def test_best_on_dev_row_picks_by_dev_not_test(tmp_path):
    """Per task, the row shows the method with the best mean dev score (all seeds, full test file), even
    when another method is better on test; the average is over those choices."""
    results = tmp_path / "results"
    seeds = (13, 21, 42, 87, 100)
    for seed in seeds:
        # SST-2: prompt_ft_lora best on dev, setfit best on test
        _fake_cell(results, "fake", "sst-2", "prompt_ft_lora", seed, 0.80, "SST-2/test.tsv", dev=0.90)
        _fake_cell(results, "fake", "sst-2", "setfit", seed, 0.85, "SST-2/test.tsv", dev=0.70)
        # MR: setfit best on dev; zero_shot has no dev score recorded, so it cannot be chosen
        _fake_cell(results, "fake", "mr", "prompt_ft_lora", seed, 0.70, "mr/test.csv", dev=0.60)
        _fake_cell(results, "fake", "mr", "setfit", seed, 0.60, "mr/test.csv", dev=0.65)
        _fake_cell(results, "fake", "mr", "zero_shot", seed, 0.99, "mr/test.csv")
    for seed in seeds[:3]:  # too few seeds to be chosen, however good on dev
        _fake_cell(results, "fake", "mr", "channel", seed, 0.95, "mr/test.csv", dev=0.99)
    text = build_report(results).markdown_path.read_text()
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    cells = [c.strip() for c in rows["*best on dev*"].split("|")]
    assert cells[2:5] == ["80.0 (0.0) prompt_ft_lora", "60.0 (0.0) setfit", "70.0"]


class _FixedMember:
    """A member whose probabilities are given (columns in its own label order)."""

    def __init__(self, labels, probs):
        self.labels, self.probs = labels, np.asarray(probs)

    def predict_proba(self, inputs, batch_size=32):
        return self.probs[: len(inputs)]


def test_ensemble_predictor_weights_and_combines_by_label_name():
    from promptft.bench.ensemble_methods import EnsemblePredictor

    a = _FixedMember(["negative", "positive"], [[0.9, 0.1], [0.4, 0.6]])
    b = _FixedMember(["positive", "negative"], [[0.2, 0.8], [0.1, 0.9]])  # the other label order
    inputs = [Example({"text": "x"}), Example({"text": "y"})]
    mixed = EnsemblePredictor([a, b], [3.0, 1.0], ["negative", "positive"], "probabilities")
    np.testing.assert_allclose(mixed.predict_proba(inputs), [[0.875, 0.125], [0.525, 0.475]])
    pet = EnsemblePredictor([a, b], [1.0, 1.0], ["negative", "positive"], "logits")
    expected = np.exp((np.log([[0.9, 0.1], [0.4, 0.6]]) + np.log([[0.8, 0.2], [0.9, 0.1]])) / 2)
    np.testing.assert_allclose(pet.predict_proba(inputs), expected / expected.sum(1, keepdims=True))
    assert pet.predict(inputs) == ["negative", "negative"] and pet.predict([]) == []


def test_method_ensemble_trains_its_members_and_records_their_weights(tiny_model, table, tmp_path):
    train = {"max_steps": 2, "batch_size": 4, "eval_every": 1, "max_length": 64}
    spec = {
        "methods": {
            "prompt_ft_lora": {**train, "grid": {}},
            "prompt_ft_ia3": train,
            "method_ensemble": {"members": ["zero_shot", "prompt_ft_lora", "prompt_ft_ia3"]},
        }
    }
    config = tmp_path / "bench.yaml"
    config.write_text(yaml.safe_dump(spec))
    results = tmp_path / "results"
    run(tiny_model, table, config, results, methods=["method_ensemble"], seeds=[1], tasks=["sent"])
    cell = json.loads(cell_path(results, "tiny-llama", "sent", "method_ensemble", 1).read_text())
    members = cell["info"]["members"]
    assert list(members) == ["zero_shot", "prompt_ft_lora", "prompt_ft_ia3"]
    assert all(m["weight"] == m["dev"]["accuracy"] for m in members.values())
    assert cell["train_time_s"] == pytest.approx(sum(m["train_time_s"] for m in members.values()))
    assert cell["config"]["members"]["prompt_ft_ia3"]["max_steps"] == 2  # each member's own options
    assert 0 <= cell["accuracy"] <= 1 and cell["n_test"] > 0

    for bad, message in (
        ({"members": ["prompt_ft_lora"]}, "at least two"),
        ({"members": ["prompt_ft_lora", "nope"]}, "unknown or nested"),
        ({"members": ["prompt_ft_lora", "ensemble_with_setfit"]}, "unknown or nested"),
        ({"members": ["zero_shot", "prompt_ft_lora"], "weighting": "best"}, "weighting"),
    ):
        config.write_text(yaml.safe_dump({"methods": {**spec["methods"], "method_ensemble": bad}}))
        with pytest.raises(ConfigError, match=message):  # before any cell runs
            run(
                tiny_model,
                table,
                config,
                tmp_path / "r2",
                methods=["method_ensemble"],
                seeds=[1],
                tasks=["sent"],
            )
    assert not (tmp_path / "r2").exists()
    config.write_text(
        yaml.safe_dump(
            {
                "methods": {
                    **spec["methods"],
                    "prompt_ft_lora": {**train, "grid": {"learning_rate": [1e-3, 1e-2]}},
                    "method_ensemble": {"members": ["zero_shot", "prompt_ft_lora"]},
                }
            }
        )
    )
    with pytest.raises(ConfigError, match="has a grid of 2 points"):
        run(
            tiny_model, table, config, tmp_path / "r3", methods=["method_ensemble"], seeds=[1], tasks=["sent"]
        )


@pytest.mark.skipif(not _minilm_ready(), reason="setfit or the offline MiniLM package is not installed")
def test_ensemble_with_setfit_has_its_own_row_and_votes_with_setfit(tiny_model, table, tmp_path):
    train = {"max_steps": 2, "batch_size": 4, "eval_every": 1, "max_length": 64}
    spec = {
        "methods": {
            "prompt_ft_ia3": train,
            "setfit": {"num_iterations": 1, "batch_size": 16, "max_length": 32},
            "ensemble_with_setfit": {"members": ["prompt_ft_ia3", "setfit"]},
        }
    }
    config = tmp_path / "bench.yaml"
    config.write_text(yaml.safe_dump(spec))
    results = tmp_path / "results"
    run(tiny_model, table, config, results, methods=["ensemble_with_setfit"], seeds=[1], tasks=["sent"])
    cell = json.loads(cell_path(results, "tiny-llama", "sent", "ensemble_with_setfit", 1).read_text())
    members = cell["info"]["members"]
    assert list(members) == ["prompt_ft_ia3", "setfit"]
    assert (
        members["setfit"]["weight"] == members["setfit"]["dev"]["accuracy"]
    )  # SetFit's dev score, scored here
    assert cell["config"]["members"]["setfit"]["num_iterations"] == 1
    assert 0 <= cell["accuracy"] <= 1 and cell["n_test"] > 0


# The experiments' configs are quoted as commands under benchmarks/results/: each must still load as the
# bench's options change (a task table, `*_tasks.yaml`, must load as one), or those commands rot silently.
EXPERIMENT_CONFIGS = sorted((Path(__file__).parent.parent / "benchmarks" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", EXPERIMENT_CONFIGS, ids=lambda p: p.name)
def test_every_committed_experiment_config_still_loads(path):
    if path.name.endswith("_tasks.yaml"):
        assert load_tasks(path).tasks
    else:
        raw = yaml.safe_load(path.read_text())
        config = load_config(path)
        assert set(raw.get("methods", {})) <= set(config.methods)


def test_the_experiment_configs_are_found():
    assert len(EXPERIMENT_CONFIGS) > 10
