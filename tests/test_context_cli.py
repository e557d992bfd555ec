"""`promptft train` with demonstrations (--demonstrations) and channel scoring (--method channel), then
eval and predict on the saved classifier; the bench methods' options validate."""

from __future__ import annotations

import json

import pytest
from test_cli import LABEL_MAP, SENTENCES, common, invoke, ok, user_error, write_tsv

from promptft.bench.methods import METHODS
from promptft.config import JobConfig
from promptft.config.bench import load_bench_config
from tiny import tiny_llama


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A tiny causal LM folder and small SST-2-like splits."""
    root = tmp_path_factory.mktemp("context_cli")
    model, tok = tiny_llama()
    model.save_pretrained(root / "tiny")
    tok.save_pretrained(root / "tiny")
    write_tsv(root / "train.tsv", ["sentence", "label"], SENTENCES)
    write_tsv(root / "dev.tsv", ["sentence", "label"], SENTENCES[:4])
    write_tsv(root / "test.tsv", ["sentence", "label"], SENTENCES[4:])
    return root


def _args(env):
    return ["--train", env / "train.tsv", "--dev", env / "dev.tsv", "--label-map", LABEL_MAP]


def test_train_with_demonstrations_then_eval_and_predict(env, tmp_path):
    run = tmp_path / "demos"
    result = invoke(
        "train",
        *_args(env),
        "--test",
        env / "test.tsv",
        "--label-words",
        "negative=terrible,positive=great",
        "--template",
        "Review: {text}\\nSentiment: {mask}",
        "--finetune",
        "lora",
        "--demonstrations",
        "random",
        "--demo-sets",
        2,
        "--steps",
        2,
        "--batch-size",
        4,
        "-o",
        run,
        *common(env),
    )
    ok(result)
    job = JobConfig.from_yaml(run / "job.yaml")
    assert job.prompt.demonstrations is not None and job.prompt.demonstrations.n_sets == 2
    saved = json.loads((run / "best" / "promptft_config.json").read_text())
    assert saved["demonstrations"]["settings"]["selection"] == "random"
    assert len(saved["demonstrations"]["pool"]) == 8  # the training set
    test = json.loads((run / "test_metrics.json").read_text())
    evaluated = invoke("eval", run, "--data", env / "test.tsv", "--json", "--device", "cpu")
    ok(evaluated)
    assert json.loads(evaluated.stdout)["accuracy"] == test["accuracy"]
    out = tmp_path / "pred.jsonl"
    ok(invoke("predict", run / "best", "-i", env / "test.tsv", "-o", out, "--device", "cpu"))
    assert len(out.read_text().splitlines()) == 4


def test_zero_shot_demonstrations_read_the_train_file(env, tmp_path):
    run = tmp_path / "zs"
    args = ["--label-words", "negative=terrible,positive=great", "--finetune", "none", "-o", run]
    ok(invoke("train", *_args(env), *args, "--demonstrations", "random", *common(env)))
    saved = json.loads((run / "best" / "promptft_config.json").read_text())
    assert len(saved["demonstrations"]["pool"]) == 8
    no_train = ["--dev", env / "dev.tsv", "--label-map", LABEL_MAP]
    user_error(
        invoke("train", *no_train, *args[:-1], tmp_path / "zs2", "--demonstrations", "random", *common(env)),
        "drawn from the training set",
    )


def test_train_channel_then_eval_and_predict(env, tmp_path):
    run = tmp_path / "channel"
    result = invoke(
        "train",
        *_args(env),
        "--label-words",
        "negative=terrible,positive=great",
        "--method",
        "channel",
        "--template",
        "Sentiment: {mask}\\nReview: {text}",
        "--finetune",
        "lora",
        "--steps",
        2,
        "--batch-size",
        4,
        "-o",
        run,
        *common(env),
    )
    ok(result)
    saved = json.loads((run / "best" / "promptft_config.json").read_text())
    assert saved["type"] == "channel" and saved["adapter"] == "lora"
    ok(invoke("eval", run, "--data", env / "test.tsv", "--device", "cpu"))
    out = tmp_path / "pred.jsonl"
    ok(invoke("predict", run / "best", "-i", env / "test.tsv", "-o", out, "--device", "cpu"))
    row = json.loads(out.read_text().splitlines()[0])
    assert {"pred_label", "prob_negative", "prob_positive"} <= set(row)


def test_channel_user_errors(env, tmp_path):
    args = [*_args(env), "--label-words", "negative=terrible,positive=great", "--method", "channel"]
    user_error(
        invoke("train", *args, "--template", "{text} It was {mask}.", "-o", tmp_path / "a", *common(env)),
        "needs a field after {mask}",
    )
    user_error(
        invoke(
            "train",
            *args,
            "--template",
            "Sentiment: {mask}\\nReview: {text}",
            "--demonstrations",
            "random",
            "-o",
            tmp_path / "b",
            *common(env),
        ),
        "demonstrations are for --method prompt",
    )
    user_error(
        invoke(
            "train", *args, "--template", "Sentiment: {mask}\\nReview: {text}", "--calibrate", "contextual",
            "-o", tmp_path / "c", *common(env),
        ),
        "--calibrate temperature",
    )  # fmt: skip


def test_bench_methods_are_registered_with_valid_default_options():
    assert {"demonstrations", "channel"} <= set(METHODS)
    jobs = {name: fn.job for name, fn in METHODS.items()}
    config = load_bench_config(None, jobs)  # validates every method's options as a job
    assert config.method("demonstrations")["demonstrations"]["selection"] == "similar"
    assert config.method("channel", "trec")["max_steps"] == 200


def test_zero_shot_channel(env, tmp_path):
    run = tmp_path / "zs_channel"
    args = ["--label-words", "negative=terrible,positive=great", "--method", "channel", "--finetune", "none"]
    template = ["--template", "Sentiment: {mask}\\nReview: {text}"]
    ok(
        invoke(
            "train",
            "--dev",
            env / "dev.tsv",
            "--label-map",
            LABEL_MAP,
            *args,
            *template,
            "-o",
            run,
            *common(env),
        )
    )
    final = json.loads((run / "final_metrics.json").read_text())
    assert final["steps"] == 0 and final["best_dev"]["n"] == 4
    saved = json.loads((run / "best" / "promptft_config.json").read_text())
    assert saved["type"] == "channel" and saved["adapter"] == "none"
    calibrated = tmp_path / "zs_channel_t"
    ok(invoke("train", "--dev", env / "dev.tsv", "--label-map", LABEL_MAP, *args, *template, "--calibrate",
              "temperature", "-o", calibrated, *common(env)))  # fmt: skip
    objective = json.loads((calibrated / "best" / "promptft_config.json").read_text())["objective"]
    assert objective["tune_temperature"] is True and objective["calibration_temperature"] != 1.0
