"""The `promptft` command line, on a tiny Llama saved to a temp folder (never the real models)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from promptft.cli import app
from promptft.cli.values import parse_fields, parse_label_words
from promptft.config import DataConfig, JobConfig, apply_overrides
from promptft.errors import ConfigError
from promptft.training.trainer import Trainer
from tiny import tiny_llama

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = [
    ("I loved it", 1),
    ("a wonderful film", 1),
    ("I hated it", 0),
    ("an awful mess", 0),
    ("good acting", 1),
    ("boring and bad", 0),
    ("great fun", 1),
    ("terrible plot", 0),
]
PAIRS = [
    ("the movie was good", "it was good", "entailment"),
    ("the movie was bad", "it was good", "not_entailment"),
    ("I loved it", "I loved it", "entailment"),
    ("I hated it", "I loved it", "not_entailment"),
]
WORDS = "negative=terrible,positive=great|wonderful"
LABEL_MAP = "0=negative,1=positive"


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def ok(result) -> None:
    assert result.exit_code == 0, result.output + repr(result.exception)


def user_error(result, *fragments: str) -> None:
    """Exit code 2, `error: ...` on stderr naming what was wrong, and no traceback."""
    assert result.exit_code == 2, result.output
    assert "error:" in result.stderr
    message = " ".join(result.stderr.split())
    for fragment in fragments:
        assert fragment in message, message
    assert "Traceback" not in result.output


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def write_tsv(path: Path, header: list[str], rows) -> Path:
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A tiny causal LM folder and small SST-2-like and RTE-like splits."""
    root = tmp_path_factory.mktemp("cli")
    model, tok = tiny_llama()
    model.save_pretrained(root / "tiny")
    tok.save_pretrained(root / "tiny")
    header = ["sentence", "label"]
    write_tsv(root / "train.tsv", header, SENTENCES)
    write_tsv(root / "dev.tsv", header, SENTENCES[:4])
    write_tsv(root / "test.tsv", header, SENTENCES[4:])
    write_tsv(root / "pairs.tsv", ["sentence1", "sentence2", "label"], PAIRS)
    return root


def common(env: Path) -> list[str]:
    return ["--model", env / "tiny", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def trained(env):
    """One finished run, from a YAML config with some settings overridden on the command line."""
    job = JobConfig()
    job.data = DataConfig(
        train=str(env / "train.tsv"), dev=str(env / "dev.tsv"), label_map={"0": "negative", "1": "positive"}
    )
    job.prompt.label_words = {"negative": "terrible", "positive": ["great", "wonderful"]}
    job.model.name = str(env / "tiny")
    job.train.max_steps = 50
    job.train.eval_every = 2
    job.train.batch_size = 4
    job.to_yaml(env / "job.yaml")
    text = re.sub(r"learning_rate: .*", "learning_rate: 1e-3", (env / "job.yaml").read_text())
    (env / "job.yaml").write_text(text)  # `1e-3`: YAML 1.1 reads it as a string; the config takes it
    run = env / "run"
    result = invoke(
        "train",
        "--config",
        env / "job.yaml",
        "--steps",
        3,
        "--test",
        env / "test.tsv",
        "-o",
        run,
        *common(env),
    )
    return run, result


def test_help_lists_commands_with_examples():
    result = invoke("--help")
    ok(result)
    assert "promptft train --config" in result.stdout
    for command in ("train", "eval", "predict"):
        assert command in result.stdout
        sub = invoke(command, "--help")
        ok(sub)
        assert "Example" in sub.stdout and f"promptft {command} " in sub.stdout


def test_train_from_config_with_overrides(trained, env):
    run, result = trained
    ok(result)
    for name in ("train_config.json", "metrics.jsonl", "final_metrics.json", "job.yaml", "test_metrics.json"):
        assert (run / name).is_file(), name
    assert (run / "best" / "promptft_config.json").is_file()
    saved = JobConfig.from_yaml(run / "job.yaml")
    assert saved.train.max_steps == 3  # the flag wins over the YAML's 50
    assert saved.train.learning_rate == pytest.approx(1e-3)  # the YAML's value where no flag is given
    assert saved.data.test == str(env / "test.tsv") and saved.output == str(run)
    final = json.loads((run / "final_metrics.json").read_text())
    assert final["steps"] == 3
    test = json.loads((run / "test_metrics.json").read_text())
    assert test["n"] == 4
    assert "test accuracy" in result.stdout and "steps" in result.stdout
    assert "error" not in result.output


def test_train_refit_by_set_says_what_the_saved_model_trained_on(trained, env, tmp_path):  # its job.yaml
    run = tmp_path / "refit"
    args = ["--config", env / "job.yaml", "--steps", 4, "--set", "train.eval_at_start=false"]
    result = invoke("train", *args, "--set", "train.refit=true", "-o", run, *common(env))
    ok(result)
    final = json.loads((run / "final_metrics.json").read_text())
    assert (
        final["refit"]["n_examples"] == len(SENTENCES) + 4 and final["refit"]["steps"] == final["best_step"]
    )
    assert "refit (the saved model)" in result.stdout and "on train + dev" in result.stdout
    no_dev = invoke(
        "train", *args, "--set", "train.refit=true", "--dev", "", "-o", tmp_path / "x", *common(env)
    )
    user_error(no_dev, "refit=True chooses the step on the dev split", "give a dev split")
    assert not (tmp_path / "x").exists()  # refused before the run folder is made
    no_time = invoke(
        "train", *args, "--set", "train.refit=true", "--set", "train.max_minutes=1e-9", "-o", tmp_path / "t",
        *common(env),
    )  # fmt: skip
    ok(no_time)
    assert "skipped (train.max_minutes)" in no_time.stdout and "time limit" in no_time.stdout


def test_second_train_into_finished_run_is_refused(trained, env):
    run, _ = trained
    before = snapshot(run)
    result = invoke("train", "--config", run / "job.yaml", *common(env))
    user_error(result, "already holds a finished run", "--output")
    assert snapshot(run) == before


def test_eval_prints_table_and_json(trained, env):
    run, _ = trained
    expected = json.loads((run / "test_metrics.json").read_text())
    # the label map comes from the run's job.yaml; the run folder stands for its best/ model
    result = invoke("eval", run, "--data", env / "test.tsv", "--json", "--device", "cpu")
    ok(result)
    assert json.loads(result.stdout) == pytest.approx(expected)
    table = invoke("eval", run / "best", "--data", env / "test.tsv", "--device", "cpu")
    ok(table)
    assert "accuracy" in table.stdout and "macro-F1" in table.stdout


def test_eval_and_predict_take_a_hugging_face_dataset(trained, env, tmp_path, monkeypatch):
    """A save_to_disk folder or hf:NAME:SPLIT wherever a data file goes (here with the run's label map)."""
    import datasets

    from promptft.data.readers import read_rows

    run, _ = trained
    expected = json.loads((run / "test_metrics.json").read_text())
    rows = [r.cells for r in read_rows(env / "test.tsv")]
    ds = datasets.Dataset.from_list([{"sentence": r["sentence"], "label": str(r["label"])} for r in rows])
    ds.save_to_disk(str(tmp_path / "test_ds"))
    result = invoke("eval", run, "--data", tmp_path / "test_ds", "--json", "--device", "cpu")
    ok(result)
    assert json.loads(result.stdout) == pytest.approx(expected)
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config=None, split=None: ds)
    result = invoke("predict", run, "-i", "hf:me/reviews:test", "-o", tmp_path / "p.jsonl", "--device", "cpu")
    ok(result)
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == len(rows)


@pytest.mark.parametrize("suffix", ["csv", "tsv", "jsonl"])
def test_predict_writes_fields_label_and_probabilities(trained, env, tmp_path, suffix):
    run, _ = trained
    out = tmp_path / f"pred.{suffix}"
    ok(invoke("predict", run / "best", "--input", env / "test.tsv", "--output", out, "--device", "cpu"))
    if suffix == "jsonl":
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    else:
        with out.open(newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t" if suffix == "tsv" else ","))
    # the input's columns in order (its own `label` too), then the predictions, renamed around `label`
    assert list(rows[0]) == ["sentence", "label", "pred_label", "prob_negative", "prob_positive"]
    assert [r["sentence"] for r in rows] == [s for s, _ in SENTENCES[4:]]
    assert [str(r["label"]) for r in rows] == [str(y) for _, y in SENTENCES[4:]]
    probs = np.array([[float(r["prob_negative"]), float(r["prob_positive"])] for r in rows])
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-4)
    assert [r["pred_label"] for r in rows] == [["negative", "positive"][i] for i in probs.argmax(1)]


def test_predict_refuses_to_overwrite(trained, env, tmp_path):
    run, _ = trained
    out = tmp_path / "pred.csv"
    out.write_text("keep me")
    user_error(invoke("predict", run, "-i", env / "test.tsv", "-o", out), "already exists", "--overwrite")
    assert out.read_text() == "keep me"
    ok(invoke("predict", run, "-i", env / "test.tsv", "-o", out, "--overwrite", "--device", "cpu"))
    assert out.read_text().startswith("sentence,label,pred_label,")


def test_zero_shot_two_fields_then_predict(env, tmp_path):
    run = tmp_path / "zs"
    result = invoke(
        "train",
        "--finetune",
        "none",
        "--dev",
        env / "pairs.tsv",
        "--field",
        "premise=sentence1,hypothesis=sentence2",
        "--template",
        "{premise} Question: {hypothesis} yes or no? Answer: {mask}",
        "--label-words",
        "entailment=yes",
        "--label-words",
        "not_entailment=no",
        "-o",
        run,
        *common(env),
    )
    ok(result)
    assert "zero-shot" in result.stdout
    final = json.loads((run / "final_metrics.json").read_text())
    assert final["steps"] == 0 and final["best_dev"]["n"] == 4
    assert not (run / "train_config.json").exists()
    out = tmp_path / "pred.jsonl"
    ok(invoke("predict", run / "best", "-i", env / "pairs.tsv", "-o", out, "--device", "cpu"))
    row = json.loads(out.read_text().splitlines()[0])
    assert list(row) == [
        "sentence1",
        "sentence2",
        "label",
        "pred_label",
        "prob_entailment",
        "prob_not_entailment",
    ]


def test_head_baseline(env, tmp_path):
    run = tmp_path / "head"
    args = ["--train", env / "train.tsv", "--dev", env / "dev.tsv", "--label-map", LABEL_MAP]
    ok(invoke("train", *args, "--method", "head", "--steps", 2, "--batch-size", 4, "-o", run, *common(env)))
    config = json.loads((run / "best" / "promptft_config.json").read_text())
    assert config["type"] == "head" and config["labels"] == ["negative", "positive"]


def test_interrupted_run_resumes(env, tmp_path, monkeypatch):
    run = tmp_path / "resume"
    args = ["train", "--train", env / "train.tsv", "--dev", env / "dev.tsv", "--label-map", LABEL_MAP]
    args += ["-w", WORDS, "--steps", 4, "--eval-every", 2, "--batch-size", 4, "-o", run, *common(env)]
    save = Trainer._save_checkpoint

    def save_then_interrupt(self, state):
        save(self, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_save_checkpoint", save_then_interrupt)
    stopped = invoke(*args)
    assert stopped.exit_code == 130
    assert "run the same command again to resume" in " ".join(stopped.stderr.split())
    assert (run / "checkpoint" / "state.json").exists() and (run / "job.yaml").exists()
    assert not (run / "final_metrics.json").exists()
    monkeypatch.undo()

    user_error(invoke(*args, "--lr", 0.5), "other settings", "train.learning_rate")
    ok(invoke(*args))
    final = json.loads((run / "final_metrics.json").read_text())
    assert final["steps"] == 4
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 2, 4]  # the evaluations before the interruption are kept, none repeated


@pytest.mark.parametrize(
    "args, drop, fragments",
    [
        (["--train", "missing.tsv"], [], ["data file not found", "missing.tsv"]),
        (["--template", "{text} It was."], [], ["no {mask} slot"]),
        (["-w", "negative=terrible"], [], ["['positive']", "no label word"]),
        (["--label-map", "0=negative"], [], ["label '1'", "label map (--label-map) does not cover"]),
        (["-w", "negative"], [], ["bad label words", "KEY=VALUE"]),
        (["--field", "text=review"], [], ["'review' is not a column", "'sentence'"]),
        (["--method", "head", "--finetune", "none"], [], ["zero-shot", "head"]),
        ([], ["-w"], ["no label words", "--label-words", "--auto"]),
        ([], ["--output"], ["no run folder", "--output"]),
    ],
    ids=[
        "missing-file",
        "no-slot",
        "words-miss-label",
        "unmapped-label",
        "bad-words",
        "bad-column",
        "head-zero-shot",
        "no-words",
        "no-output",
    ],
)
def test_train_user_errors(env, tmp_path, args, drop, fragments):
    base = {"--train": env / "train.tsv", "-w": WORDS, "--label-map": LABEL_MAP, "--output": tmp_path / "run"}
    for flag in [*args[::2], *drop]:
        base.pop(flag, None)
    flat = [x for pair in base.items() for x in pair]
    user_error(invoke("train", *flat, *args, *common(env)), *fragments)
    assert not (tmp_path / "run").exists()


def test_eval_and_predict_user_errors(trained, env, tmp_path):
    run, _ = trained
    # without the run's label map the raw labels 0/1 are unknown to the classifier
    raw = write_tsv(tmp_path / "raw.tsv", ["sentence", "label"], SENTENCES[:2])
    user_error(
        invoke("eval", run / "best", "--data", raw, "--label-map", "0=neg,1=pos", "--device", "cpu"),
        "unknown label 'pos'",
        "label map",
    )
    user_error(invoke("eval", run, "--data", tmp_path / "nope.tsv"), "data file not found")
    user_error(invoke("eval", tmp_path, "--data", raw), "promptft_config.json")
    user_error(invoke("predict", run, "-i", raw, "-o", tmp_path / "p.txt"), ".csv, .tsv or .jsonl")


def test_config_errors_and_round_trip(env, tmp_path):
    job = JobConfig()
    job.prompt.label_words = {"0": "terrible", "1": ["great", "good"]}
    job.data.fields = {"premise": "sentence1", "hypothesis": 2}
    job.model.finetune = "lora"
    job.model.lora.r = 4
    job.to_yaml(tmp_path / "job.yaml")
    assert JobConfig.from_yaml(tmp_path / "job.yaml") == job

    (tmp_path / "bad.yaml").write_text("data:\n  feilds: {text: sentence}\n")
    with pytest.raises(ConfigError, match=r"'data\.feilds'.*valid keys of 'data': train, dev, test, fields"):
        JobConfig.from_yaml(tmp_path / "bad.yaml")
    user_error(invoke("train", "--config", tmp_path / "bad.yaml"), "data.feilds", "fields, label")
    (tmp_path / "typo.yaml").write_text("model: {method: promt}\n")
    user_error(
        invoke("train", "--config", tmp_path / "typo.yaml"), "model.method must be one of 'prompt', 'head'"
    )
    (tmp_path / "bool.yaml").write_text("prompt: {label_words: {entailment: Yes, not_entailment: No}}\n")
    user_error(
        invoke("train", "--config", tmp_path / "bool.yaml"), "label_words.entailment", "quote the word"
    )
    (tmp_path / "broken.yaml").write_text("train: [1, \n")
    user_error(invoke("train", "--config", tmp_path / "broken.yaml"), "not valid YAML")
    user_error(invoke("train", "--config", tmp_path / "none.yaml"), "config file not found")


def test_overrides_and_flag_parsing():
    job = apply_overrides(
        JobConfig(), {"train.learning_rate": 2e-4, "model.lora.r": 16, "train.early_stopping_patience": None}
    )
    assert job.train.learning_rate == 2e-4 and job.model.lora.r == 16
    assert job.train.early_stopping_patience is None
    with pytest.raises(ConfigError, match="train.lr"):
        apply_overrides(JobConfig(), {"train.lr": 1.0})
    assert parse_label_words(["negative=terrible", "positive=great|good, neutral=okay"]) == {
        "negative": "terrible",
        "positive": ["great", "good"],
        "neutral": "okay",
    }
    assert parse_fields(["premise=sentence1,hypothesis=2"]) == {"premise": "sentence1", "hypothesis": 2}
    with pytest.raises(ConfigError, match="gives 'positive' twice"):  # the last one used to win, silently
        parse_label_words(["negative=bad,positive=good", "positive=great"])
    assert parse_label_words(["negative=bad", "negative=bad"]) == {"negative": "bad"}  # a repeat is fine


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid_jobs(path):
    from promptft.prompts import Template
    from promptft.recipes.train import check_job

    job = JobConfig.from_yaml(path)
    check_job(job)
    if job.model.method == "prompt":
        fields = set(job.data.fields or {"text": None})
        Template(job.prompt.template).check_fields(fields)
    for split in (job.data.train, job.data.dev, job.data.test):
        if split and (ROOT / "../shared/data").is_dir():
            assert (ROOT / split).is_file(), split
    assert yaml.safe_load(path.read_text())  # readable as plain YAML, too


def test_cli_import_does_not_load_torch():
    # `promptft --help` stays fast: torch/transformers load only when a command needs a model.
    import subprocess
    import sys

    code = "import sys, promptft, promptft.cli; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# ---------------------------------------------------------------------------------------------------------
# hardening (issue 16): each case a user hit, as a user error with the fix in its message, or kept data


def train_args(env: Path, run: Path, *extra) -> list:
    args = ["train", "--train", env / "train.tsv", "--label-map", LABEL_MAP, "-w", WORDS, "-o", run]
    return [*args, "--steps", 1, "--batch-size", 4, "--model", env / "tiny", "--no-progress", *extra]


@pytest.mark.parametrize("device", ["cuda", "cuda:7", "gpu"])
def test_unavailable_device_names_the_devices_that_exist(env, tmp_path, monkeypatch, device):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a CPU-only build
    user_error(invoke(*train_args(env, tmp_path / "run"), "--device", device), repr(device), "cpu")
    assert not (tmp_path / "run").exists()


def test_eval_on_unavailable_device_is_a_user_error(trained, env, monkeypatch):
    import torch

    run, _ = trained
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    user_error(invoke("eval", run, "--data", env / "test.tsv", "--device", "cuda"), "available here: cpu")


def deny_write(monkeypatch, path: Path) -> None:
    """`path` reads as read-only (tests run as root, which ignores permission bits)."""
    import os

    real = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: not (Path(p) == path and mode & os.W_OK) and real(p, mode)
    )


def test_run_folder_that_cannot_be_created_or_written(env, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    user_error(invoke(*train_args(env, blocker / "run")), "a-file is a file, not a folder")
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    deny_write(monkeypatch, readonly)
    user_error(invoke(*train_args(env, readonly / "run")), "read-only")
    assert not (readonly / "run").exists()


def test_predict_output_that_cannot_be_written_fails_before_predicting(trained, env, tmp_path, monkeypatch):
    from promptft.classifiers import BaseClassifier

    def no_prediction(*args, **kwargs):
        raise AssertionError("predicted before checking the output")

    monkeypatch.setattr(BaseClassifier, "predict_proba", no_prediction)
    run, _ = trained
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    predict = ["predict", run, "-i", env / "test.tsv", "--device", "cpu"]
    user_error(invoke(*predict, "-o", blocker / "p.csv"), "a-file is a file")
    kept = tmp_path / "kept.csv"
    kept.write_text("keep me")
    deny_write(monkeypatch, kept)
    user_error(invoke(*predict, "-o", kept, "--overwrite"), "read-only")
    assert kept.read_text() == "keep me"


def test_a_second_train_on_a_locked_run_folder_is_refused(env, tmp_path):
    from promptft.recipes.run_dir import lock_path, run_lock

    run = tmp_path / "run"
    with run_lock(run):  # as a first `promptft train` holds it
        assert lock_path(run).read_text().strip() == str(__import__("os").getpid())
        user_error(invoke(*train_args(env, run)), "in use by another `promptft train`", "pid")
    assert not lock_path(run).exists()
    lock_path(run).write_text("999999\n")  # left by a killed run: nobody holds the lock
    ok(invoke(*train_args(env, run)))
    assert (run / "final_metrics.json").exists() and not lock_path(run).exists()


def test_label_words_for_a_label_the_label_map_lacks(env, tmp_path):
    words = WORDS + ",neutral=okay"
    args = train_args(env, tmp_path / "run")
    args[args.index("-w") + 1] = words
    user_error(invoke(*args), "['neutral']", "label map", "['negative', 'positive']")
    no_map = train_args(env, tmp_path / "run")
    i = no_map.index("--label-map")
    del no_map[i : i + 2]
    no_map[no_map.index("-w") + 1] = "0=terrible,1=great,2=okay"
    user_error(invoke(*no_map), "['2']", "['0', '1']")


@pytest.fixture
def empty_input(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text('id,sentence\n1,great fun\n2,""\n3,   \n4,awful\n')
    return path


def test_predict_keeps_empty_rows_and_warns(trained, empty_input, tmp_path, caplog):
    run, _ = trained
    out = tmp_path / "p.csv"
    ok(invoke("predict", run, "-i", empty_input, "-o", out, "--device", "cpu"))
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ["1", "2", "3", "4"] and all(r["label"] for r in rows)
    assert "2 row(s) have an empty text (line 3, line 4)" in " ".join(caplog.text.split())

    skipped = tmp_path / "s.csv"
    ok(invoke("predict", run, "-i", empty_input, "-o", skipped, "--empty", "skip", "--device", "cpu"))
    with skipped.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ["1", "2", "3", "4"]
    assert [bool(r["label"]) for r in rows] == [True, False, False, True]
    user_error(
        invoke("predict", run, "-i", empty_input, "-o", tmp_path / "e.csv", "--empty", "error"), "line 3"
    )


def test_eval_warns_about_empty_texts_and_can_skip_them(trained, tmp_path, caplog):
    run, _ = trained
    data = write_tsv(tmp_path / "d.tsv", ["sentence", "label"], [("great fun", 1), ("", 0), ("awful", 0)])
    result = invoke("eval", run, "--data", data, "--json", "--device", "cpu")
    ok(result)
    assert json.loads(result.stdout)["n"] == 3 and "empty text (line 3)" in caplog.text
    skipped = invoke("eval", run, "--data", data, "--json", "--device", "cpu", "--empty", "skip")
    assert json.loads(skipped.stdout)["n"] == 2
    blank = tmp_path / "b.csv"
    blank.write_text("sentence,label\ngreat fun,1\n,\n")
    result = invoke("eval", run, "--data", blank, "--device", "cpu")
    user_error(result, "line 3", "neither text nor a label")
    assert "label=None" not in result.stderr


def test_predict_ignores_a_label_column_it_does_not_need(trained, tmp_path):
    run, _ = trained
    data = tmp_path / "in.csv"
    data.write_text("sentence,label\ngreat fun,\nawful,\n")  # empty labels: fine for predict
    out = tmp_path / "p.jsonl"
    ok(invoke("predict", run, "-i", data, "-o", out, "--device", "cpu"))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["sentence"] for r in rows] == ["great fun", "awful"] and rows[0]["label"] == ""


def test_predict_keeps_id_columns_in_order(trained, tmp_path):
    run, _ = trained
    data = tmp_path / "in.tsv"
    data.write_text("id\tsentence\tsource\n17\tgreat fun\tweb\n3\tawful\tmail\n")
    out = tmp_path / "p.csv"
    ok(invoke("predict", run, "-i", data, "-o", out, "--device", "cpu"))
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["id", "sentence", "source", "label", "prob_negative", "prob_positive"]
    assert [(r["id"], r["sentence"], r["source"]) for r in rows] == [
        ("17", "great fun", "web"),
        ("3", "awful", "mail"),
    ]


def test_unquoted_commas_in_predict_input_are_not_cut(trained, tmp_path):
    run, _ = trained
    data = tmp_path / "in.csv"
    data.write_text("id,sentence\n1,a gorgeous, witty movie .\n")
    out = tmp_path / "p.jsonl"
    ok(invoke("predict", run, "-i", data, "-o", out, "--device", "cpu"))
    assert json.loads(out.read_text())["sentence"] == "a gorgeous, witty movie ."


@pytest.mark.parametrize(
    "setup, args, fragments",
    [
        ("polarity", [], ["'sentence', 'polarity'", "--label-column polarity"]),
        ("folder", [], ["is a folder"]),
        ("tsv-as-csv", ["--format", "csv"], ["looks tab-separated", "--format tsv"]),
        ("missing-model", ["--model", "models/nope/here"], ["no such folder"]),
        ("long-word", ["-w", "negative=" + "x" * 1000 + ",positive=great"], ["label word", "shorten"]),
        ("stray-brace", ["--template", "{text} It was {mask} {"], ["{{ for {"]),
        ("header-as-data", ["--label-column", "1"], None),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_misleading_errors_now_say_what_is_wrong(env, tmp_path, setup, args, fragments):
    data = {
        "polarity": lambda: write_tsv(tmp_path / "p.tsv", ["sentence", "polarity"], SENTENCES),
        "folder": lambda: (tmp_path / "data").mkdir() or tmp_path / "data",
        "tsv-as-csv": lambda: env / "train.tsv",
    }.get(setup, lambda: env / "train.tsv")()
    base = train_args(env, tmp_path / "run")
    base[base.index("--train") + 1] = data
    for flag, value in zip(args[::2], args[1::2], strict=True):
        if flag in base:
            base[base.index(flag) + 1] = value
        else:
            base += [flag, value]
    result = invoke(*base, "--device", "cpu")
    if fragments is None:  # the header row is a header, not an example with the label "label"
        ok(result)
        return
    user_error(result, *fragments)
    assert "fmt=" not in result.stderr and "label=None" not in result.stderr


def test_headerless_text_label_csv_is_read_as_such(env, tmp_path):
    data = tmp_path / "t.csv"
    data.write_text("".join(f"{s},{y}\n" for s, y in SENTENCES))
    args = train_args(env, tmp_path / "run", "--device", "cpu")
    args[args.index("--train") + 1] = data
    ok(invoke(*args))


def test_eval_on_an_unfinished_run_says_to_resume(env, tmp_path, monkeypatch):
    run = tmp_path / "run"
    save = Trainer._save_checkpoint

    def save_then_interrupt(self, state):
        save(self, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_save_checkpoint", save_then_interrupt)
    args = train_args(env, run, "--eval-every", 2, "--dev", env / "dev.tsv")
    args[args.index("--steps") + 1] = 4
    assert invoke(*args).exit_code == 130
    monkeypatch.undo()
    user_error(invoke("eval", run, "--data", env / "test.tsv"), "has not finished", "resume", "best")
    user_error(
        invoke("predict", run / "best", "-i", env / "test.tsv", "-o", tmp_path / "p.csv"), "has not finished"
    )
    user_error(invoke("eval", tmp_path / "nope", "--data", env / "test.tsv"), "no such folder")


def test_eval_checks_the_data_before_loading_the_model(trained, tmp_path, monkeypatch):
    import promptft.classifiers

    def no_loading(*args, **kwargs):
        raise AssertionError("loaded the model before checking the data")

    monkeypatch.setattr(promptft.classifiers, "load_classifier", no_loading)
    run, _ = trained
    bad = write_tsv(tmp_path / "b.tsv", ["sentence", "polarity"], SENTENCES[:2])
    user_error(invoke("eval", run, "--data", bad), "--label-column polarity")
    user_error(invoke("predict", run, "-i", tmp_path / "nope.tsv", "-o", tmp_path / "p.csv"), "not found")
    unknown = write_tsv(tmp_path / "u.tsv", ["sentence", "label"], [("fine", 7)])
    user_error(invoke("eval", run, "--data", unknown), "label '7'", "does not cover")


def test_learning_rate_follows_the_adapter_when_not_given(env, tmp_path):
    from promptft.config import load_job

    assert load_job(None, {"model.finetune": "lora"}).train.learning_rate == 3e-4
    assert load_job(None, {"model.finetune": "full"}).train.learning_rate == 1e-5
    assert load_job(None, {"model.finetune": "lora", "train.learning_rate": 1e-3}).train.learning_rate == 1e-3
    (tmp_path / "j.yaml").write_text("model: {finetune: lora}\n")
    assert JobConfig.from_yaml(tmp_path / "j.yaml").train.learning_rate == 3e-4
    (tmp_path / "k.yaml").write_text("model: {finetune: lora}\ntrain: {learning_rate: 2e-5}\n")
    assert load_job(tmp_path / "k.yaml", {}).train.learning_rate == 2e-5
    assert "3e-4" in " ".join(invoke("train", "--help").stdout.split())


def test_template_escapes_are_a_newline_and_a_tab_and_the_first_prompt_is_shown(env, tmp_path, caplog):
    run = tmp_path / "run"
    template = "Review: {text}\\nSentiment:\\t{mask}"
    ok(invoke(*train_args(env, run, "--template", template, "--device", "cpu")))
    saved = JobConfig.from_yaml(run / "job.yaml")
    assert saved.prompt.template == "Review: {text}\nSentiment:\t{mask}"
    assert "\\n" in (run / "job.yaml").read_text()  # one line in the file, read back as a newline
    config = json.loads((run / "best" / "promptft_config.json").read_text())
    assert config["template"] == "Review: {text}\nSentiment:\t{mask}"
    assert "Review: I loved it\nSentiment:\t{mask}" in caplog.text
    (tmp_path / "j.yaml").write_text('prompt: {template: "{text}\\\\nTopic: {mask}"}\n')  # YAML's \\n is \n
    assert JobConfig.from_yaml(tmp_path / "j.yaml").prompt.template == "{text}\nTopic: {mask}"
    (tmp_path / "s.yaml").write_text("prompt: {template: '{text}\\nTopic: {mask}'}\n")  # single quotes: \n
    assert JobConfig.from_yaml(tmp_path / "s.yaml").prompt.template == "{text}\nTopic: {mask}"


def test_transformers_chatter_is_off(env, tmp_path):
    import warnings

    from transformers.utils import logging as hf_logging

    run = tmp_path / "lora"
    ok(invoke(*train_args(env, run, "--finetune", "lora", "--device", "cpu")))  # peft warns on LoRA loads
    hf_logging.enable_progress_bar()  # as in a fresh process
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = invoke("eval", run, "--data", env / "test.tsv", "--device", "cpu", "--progress")
    finally:
        hf_logging.disable_progress_bar()
    ok(result)
    assert "Loading weights" not in result.output
    assert not [w for w in caught if issubclass(w.category, FutureWarning)], [str(w.message) for w in caught]
