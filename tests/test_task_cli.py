"""Multi-label and regression through the command line (train, eval, predict) and YAML jobs, on a tiny
Llama saved to a temp folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from test_cli import invoke, ok, user_error, write_tsv

from tiny import tiny_llama

EMOTION_ROWS = [
    ("I loved it, a wonderful film", "0,2", "a1"),
    ("I hated it", "1", "a2"),
    ("great and good", "0", "a3"),
    ("an awful mess, bad", "1", "a4"),
    ("wonderful fantastic", "2", "a5"),
    ("boring and bad, I hated it", "1", "a6"),
    ("good acting, I loved it", "0,2", "a7"),
    ("horrible", "1", "a8"),
]
LABEL_MAP = "0=joy,1=anger,2=love"
WORDS = "joy=great,anger=terrible,love=wonderful"
STS_ROWS = [
    ("It was great.", "It was great.", "5.000"),
    ("It was great.", "It was terrible.", "0.5"),
    ("I loved it.", "I loved it.", "4.8"),
    ("The movie was good.", "The acting was bad.", "1.2"),
    ("A wonderful film.", "A wonderful, moving film.", "4.0"),
    ("I hated it.", "A boring, awful mess.", "2.6"),
]
STS_TEMPLATE = "{sentence1}\\n{sentence2}\\nSame meaning? {mask}"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("tasks")
    model, tok = tiny_llama()
    model.save_pretrained(root / "tiny")
    tok.save_pretrained(root / "tiny")
    # GoEmotions' layout: no header; text, comma-separated label indices, id
    (root / "emo.tsv").write_text("".join("\t".join(r) + "\n" for r in EMOTION_ROWS))
    write_tsv(root / "sts.tsv", ["sentence1", "sentence2", "score"], STS_ROWS)
    return root


def common(env: Path) -> list:
    return ["--model", env / "tiny", "--device", "cpu", "--no-progress", "--steps", 3, "--eval-every", 2]


def test_multi_label_train_eval_predict(env, tmp_path):
    emo = env / "emo.tsv"
    run = tmp_path / "run"
    data = ["--field", "text=0", "--label-column", 1, "--label-map", LABEL_MAP, "--format", "tsv"]
    result = invoke(
        "train", *common(env), "--train", emo, "--dev", emo, "--test", emo, *data,
        "--task", "multi_label", "--label-words", WORDS, "--finetune", "lora", "--output", run,
    )  # fmt: skip
    ok(result)
    assert "test micro-F1" in result.output and "dev macro_f1" in result.output
    test = json.loads((run / "test_metrics.json").read_text())
    assert {"macro_f1", "micro_f1", "subset_accuracy", "f1_joy", "f1_anger", "f1_love", "n"} <= set(test)
    saved = json.loads((run / "best" / "promptft_config.json").read_text())
    assert saved["objective"]["name"] == "multi_label" and len(saved["objective"]["thresholds"]) == 3
    assert yaml.safe_load((run / "job.yaml").read_text())["task"]["type"] == "multi_label"

    # eval reads the labels as the job did (its job.yaml): the same numbers
    result = invoke("eval", run, "--data", emo, "--device", "cpu", "--json")
    ok(result)
    assert json.loads(result.stdout) == pytest.approx(test)
    ok(invoke("eval", run, "--data", emo, "--device", "cpu"))

    out = tmp_path / "pred.csv"
    ok(invoke("predict", run, "--input", emo, "--output", out, "--field", "text=0", "--device", "cpu"))
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 8 and {"label", "prob_joy", "prob_anger", "prob_love"} <= set(rows[0])
    thresholds = dict(zip(["joy", "anger", "love"], saved["objective"]["thresholds"], strict=True))
    for row in rows:
        chosen = [
            label
            for label in ("joy", "anger", "love")
            if float(row[f"prob_{label}"]) >= thresholds[label] - 1e-6
        ]
        assert set(filter(None, row["label"].split(","))) == set(chosen)


def test_regression_train_eval_predict_prompt_and_head(env, tmp_path):
    sts = env / "sts.tsv"
    data = ["--field", "sentence1=sentence1", "--field", "sentence2=sentence2", "--label-column", "score"]
    task = ["--task", "regression", "--value-range", "0,5"]
    for method in ("prompt", "head"):
        run = tmp_path / method
        words = ["--template", STS_TEMPLATE, "--label-words", "low=no,high=yes"] if method == "prompt" else []
        result = invoke(
            "train", *common(env), "--train", sts, "--dev", sts, "--test", sts, *data, *task, *words,
            "--method", method, "--finetune", "full" if method == "head" else "lora", "--output", run,
        )  # fmt: skip
        ok(result)
        assert "test Pearson" in result.output and "dev pearson" in result.output
        test = json.loads((run / "test_metrics.json").read_text())
        assert {"pearson", "spearman", "mse", "n"} <= set(test)
        result = invoke("eval", run, "--data", sts, "--device", "cpu", "--json")
        ok(result)
        assert json.loads(result.stdout) == pytest.approx(test)
        out = tmp_path / f"{method}.jsonl"
        ok(invoke("predict", run, "--input", sts, "--output", out, "--device", "cpu"))
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(rows) == 6 and all(0 <= row["value"] <= 5 for row in rows)
        assert "prob_low" not in rows[0]


def test_yaml_job_with_a_task_section(env, tmp_path):
    job = {
        "data": {"train": str(env / "emo.tsv"), "dev": str(env / "emo.tsv"), "fields": {"text": 0},
                 "label": 1, "label_map": {0: "joy", 1: "anger", 2: "love"}, "format": "tsv"},
        "task": {"type": "multi_label", "threshold": 0.3},
        "prompt": {"template": "{text}\\nFeeling: {mask}",
                   "label_words": {"joy": "great", "anger": "terrible", "love": "wonderful"}},
        "model": {"name": str(env / "tiny"), "finetune": "none", "device": "cpu"},
        "output": str(tmp_path / "zs"),
    }  # fmt: skip
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    ok(invoke("train", "--config", tmp_path / "job.yaml", "--no-progress"))
    final = json.loads((tmp_path / "zs" / "final_metrics.json").read_text())
    assert "macro_f1" in final["best_dev"]
    saved = json.loads((tmp_path / "zs" / "best" / "promptft_config.json").read_text())
    assert saved["objective"]["thresholds"] != [0.3, 0.3, 0.3]  # zero-shot: tuned on dev too
    job["task"] = {"type": "multi_label", "treshold": 0.3}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(job))
    user_error(
        invoke("train", "--config", tmp_path / "bad.yaml"), "task.treshold", "did you mean 'task.threshold'"
    )


def test_task_mistakes_are_clear_errors(env, tmp_path):
    sts = env / "sts.tsv"
    data = ["--field", "sentence1=sentence1", "--field", "sentence2=sentence2", "--label-column", "score"]
    base = ["train", *common(env), "--train", sts, *data, "--output", tmp_path / "r"]
    user_error(
        invoke(*base, "--task", "regression", "--label-words", "low=no,high=yes"), "value_range is required"
    )
    user_error(
        invoke(*base, "--task", "regression", "--value-range", "0,5", "--label-words", "a=no,b=yes,c=maybe"),
        "two label words",
    )
    user_error(
        invoke(*base, "--task", "regression", "--value-range", "0,4", "--label-words", "low=no,high=yes"),
        "outside the declared range [0, 4]",
    )
    user_error(
        invoke(*base, "--task", "regression", "--value-range", "five", "--label-words", "a=no,b=yes"),
        "LOW,HIGH",
    )
    emo = env / "emo.tsv"
    user_error(
        invoke("train", *common(env), "--train", emo, "--field", "text=0", "--label-column", 1, "--format", "tsv",
               "--label-map", "0=joy,1=anger", "--task", "multi_label", "--label-words", "joy=great,anger=terrible",
               "--output", tmp_path / "m"),
        "label '2', which the label map does not cover",
    )  # fmt: skip


def test_yes_no_method_through_the_cli(env, tmp_path):
    emo = env / "emo.tsv"
    run = tmp_path / "yn"
    data = ["--field", "text=0", "--label-column", 1, "--label-map", LABEL_MAP, "--format", "tsv"]
    question = "{text}\\nDoes it express {label}? {mask}"
    result = invoke(
        "train", *common(env), "--train", emo, "--dev", emo, "--test", emo, *data, "--task", "multi_label",
        "--method", "yes_no", "--template", question, "--finetune", "lora", "--output", run,
        "--train-negatives", 1,
    )  # fmt: skip
    ok(result)
    saved = json.loads((run / "best" / "promptft_config.json").read_text())
    assert saved["train_negatives"] == 1
    assert saved["type"] == "yes_no" and saved["label_texts"] == {
        "joy": "joy",
        "anger": "anger",
        "love": "love",
    }
    result = invoke("eval", run, "--data", emo, "--device", "cpu", "--json")
    ok(result)
    assert json.loads(result.stdout) == pytest.approx(json.loads((run / "test_metrics.json").read_text()))
    out = tmp_path / "p.csv"
    ok(invoke("predict", run, "--input", emo, "--output", out, "--field", "text=0", "--device", "cpu"))
    assert {"label", "prob_joy"} <= set(next(csv.DictReader(out.open())))
    user_error(
        invoke("train", *common(env), "--train", emo, *data, "--task", "multi_label", "--method", "yes_no",
               "--template", "{text} {mask}", "--output", tmp_path / "bad"),
        "needs a {label} field",
    )  # fmt: skip
    user_error(
        invoke("train", *common(env), "--train", emo, *data, "--task", "multi_label", "--label-words",
               "joy=great,anger=terrible,love=love", "--train-negatives", 2, "--output", tmp_path / "bad2"),
        "for model.method yes_no, not prompt",
    )  # fmt: skip


@pytest.mark.parametrize("name", ["stsb_regression", "goemotions_multilabel"])
def test_example_jobs_of_the_new_task_types_validate(name):
    from promptft.config import JobConfig
    from promptft.recipes.train import check_job

    job = JobConfig.from_yaml(Path(__file__).resolve().parents[1] / "examples" / f"{name}.yaml")
    check_job(job, needs_output=False)
    assert job.task.type in ("regression", "multi_label")
