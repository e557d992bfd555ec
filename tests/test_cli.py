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
from promptft.config import (
    DataConfig,
    JobConfig,
    apply_overrides,
    parse_fields,
    parse_label_words,
)
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
    assert list(rows[0]) == ["text", "label", "prob_negative", "prob_positive"]
    assert [r["text"] for r in rows] == [s for s, _ in SENTENCES[4:]]
    probs = np.array([[float(r["prob_negative"]), float(r["prob_positive"])] for r in rows])
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-4)
    assert [r["label"] for r in rows] == [["negative", "positive"][i] for i in probs.argmax(1)]


def test_predict_refuses_to_overwrite(trained, env, tmp_path):
    run, _ = trained
    out = tmp_path / "pred.csv"
    out.write_text("keep me")
    user_error(invoke("predict", run, "-i", env / "test.tsv", "-o", out), "already exists", "--overwrite")
    assert out.read_text() == "keep me"
    ok(invoke("predict", run, "-i", env / "test.tsv", "-o", out, "--overwrite", "--device", "cpu"))
    assert out.read_text().startswith("text,label,")


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
    assert set(row) == {"premise", "hypothesis", "label", "prob_entailment", "prob_not_entailment"}


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
        (["--label-map", "0=negative"], [], ["label '1'", "label_map does not cover"]),
        (["-w", "negative"], [], ["bad label words", "KEY=VALUE"]),
        (["--field", "text=review"], [], ["'review' is not a column", "'sentence'"]),
        (["--method", "head", "--finetune", "none"], [], ["zero-shot", "head"]),
        ([], ["-w"], ["no label words", "--label-words"]),
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


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid_jobs(path):
    from promptft.config import check_job
    from promptft.prompts import Template

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
