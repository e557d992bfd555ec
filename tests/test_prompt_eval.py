"""Prompt evaluation (library and `promptft prompts ...` commands) on planted and tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from planted import PlantedBackbone
from typer.testing import CliRunner

from promptft import Example
from promptft.cli import app
from promptft.errors import ConfigError, TemplateError, VerbalizerError
from promptft.search.prompt_eval import (
    PromptCandidate,
    evaluate_prompts,
    pair_candidates,
    prediction_scores,
)
from tiny import tiny_bert, tiny_llama

WORDS = {"negative": "terrible", "positive": "great"}
DATA = [
    Example({"text": f"I {verb} it {i}"}, label)
    for i in range(5)
    for verb, label in (("loved", "positive"), ("hated", "negative"))
]


def planted():
    # Evidence reaches the model only through "It was"; everywhere it leans to "great".
    return PlantedBackbone(
        bias={"great": 1.0},
        cues={("loved", "It was"): {"great": 3.0}, ("hated", "It was"): {"terrible": 5.0}},
    )


def test_prediction_scores_lean_and_ece():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    out = prediction_scores(probs, ["a", "a", "b", "b"], ["a", "b"])
    assert out["accuracy"] == 0.75
    assert out["lean_label"] == "a" and out["lean_share"] == 0.75
    assert 0 <= out["ece"] <= 1


def test_a_clearly_better_template_ranks_first():
    candidates = pair_candidates(["{text} Verdict: {mask}", "{text} It was {mask}."], [WORDS])
    result = evaluate_prompts(planted, candidates, DATA)
    assert [r.template for r in result.rows] == ["{text} It was {mask}.", "{text} Verdict: {mask}"]
    best, worst = result.rows
    assert best.accuracy == 1.0 and best.macro_f1 == 1.0
    assert worst.accuracy == 0.5
    assert worst.lean_label == "positive" and worst.lean_share == 1.0
    assert best.name == "P2"


def test_calibration_columns_and_ranking():
    candidates = pair_candidates(["{text} Verdict: {mask}"], [WORDS, {"negative": "bad", "positive": "good"}])
    result = evaluate_prompts(planted, candidates, DATA, calibrate="contextual")
    for row in result.rows:
        assert row.calibrated is not None and len(row.calibrated["content_free_prior"]) == 2
    assert "calibrated" in result.ranked_by


def test_short_finetune_on_a_tiny_model():
    from promptft.models import backbone_from_model

    factory = lambda: backbone_from_model(*tiny_llama(), "causal")  # noqa: E731
    result = evaluate_prompts(
        factory, [PromptCandidate("{text} It was {mask}.", WORDS)], DATA, train=DATA, finetune_steps=2
    )
    row = result.rows[0]
    assert row.finetuned["steps"] == 2 and 0 <= row.finetuned["accuracy"] <= 1
    assert result.notes


def test_pairing_rules():
    two = pair_candidates(["{text} A {mask}", "{text} B {mask}"], [WORDS, WORDS])
    assert [c.template for c in two] == ["{text} A {mask}", "{text} B {mask}"]
    assert len(pair_candidates(["{text} A {mask}"], [WORDS, WORDS, WORDS])) == 3
    with pytest.raises(ConfigError, match="paired"):
        pair_candidates(["{text} A {mask}", "{text} B {mask}"], [WORDS, WORDS, WORDS])


def test_library_errors_name_the_candidate():
    with pytest.raises(TemplateError, match="no \\{mask\\} slot"):
        evaluate_prompts(planted, [PromptCandidate("{text} It was", WORDS)], DATA)
    from promptft.models import backbone_from_model

    bert = lambda: backbone_from_model(*tiny_bert(), "masked")  # noqa: E731  (WordPiece: [UNK] exists)
    with pytest.raises(VerbalizerError, match="P1 .* cannot be represented"):
        evaluate_prompts(
            bert,
            [PromptCandidate("{text} It was {mask}.", {"negative": "bad", "positive": "\u2603\u2604"})],
            DATA,
        )
    with pytest.raises(VerbalizerError, match="no label word"):
        evaluate_prompts(planted, [PromptCandidate("{text} It was {mask}.", {"positive": "great"})], DATA)


# ---------------------------------------------------------------------------------------------------------
# the command line


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def user_error(result, *fragments):
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    for fragment in fragments:
        assert fragment in message, message
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("prompts")
    model, tok = tiny_llama()
    model.save_pretrained(root / "tiny")
    tok.save_pretrained(root / "tiny")
    model, tok = tiny_bert()
    model.save_pretrained(root / "bert")
    tok.save_pretrained(root / "bert")
    rows = [(f"I {v} it {i}", lab) for i in range(4) for v, lab in (("loved", 1), ("hated", 0))]
    for name in ("train", "dev"):
        (root / f"{name}.tsv").write_text("sentence\tlabel\n" + "".join(f"{s}\t{lab}\n" for s, lab in rows))
    return root


def test_cli_eval_table_and_json(env):
    args = [
        "prompts",
        "eval",
        "--data",
        env / "dev.tsv",
        "--model",
        env / "tiny",
        "--device",
        "cpu",
        "--template",
        "{text} It was {mask}.",
        "--template",
        "Review: {text}\\nSentiment: {mask}",
        "--label-words",
        "negative=terrible,positive=great",
        "--label-map",
        "0=negative,1=positive",
    ]
    result = invoke(*args, "--json", "--calibrate", "contextual")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["rows"]) == 2 and data["n"] == 8
    assert {r["template"] for r in data["rows"]} == {
        "{text} It was {mask}.",
        "Review: {text}\nSentiment: {mask}",
    }
    assert all(r["calibrated"] is not None for r in data["rows"])
    table = invoke(*args)
    assert table.exit_code == 0, table.output
    assert "leans to" in table.stdout and "It was" in table.stdout


def test_cli_eval_reads_a_label_words_file(env, tmp_path):
    words = tmp_path / "words.json"
    words.write_text(json.dumps({"label_words": {"negative": "bad", "positive": "good"}, "other": 1}))
    result = invoke(
        "prompts",
        "eval",
        "--data",
        env / "dev.tsv",
        "--model",
        env / "tiny",
        "--template",
        "{text} It was {mask}.",
        "--label-words-file",
        words,
        "--label-map",
        "0=negative,1=positive",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"][0]["label_words"] == {"negative": "bad", "positive": "good"}


def test_cli_errors(env):
    base = [
        "prompts",
        "eval",
        "--data",
        env / "dev.tsv",
        "--model",
        env / "tiny",
        "--label-map",
        "0=negative,1=positive",
    ]
    user_error(
        invoke(*base, "--template", "{text} It was", "--label-words", "negative=terrible,positive=great"),
        "no {mask} slot",
    )
    bert = [a if a != env / "tiny" else env / "bert" for a in base]
    user_error(
        invoke(
            *bert, "--template", "{text} It was {mask}", "--label-words", "negative=bad,positive=\u2603\u2604"
        ),
        "cannot be represented",
    )
    user_error(invoke(*base, "--template", "{text} It was {mask}"), "no label words")
    user_error(
        invoke(
            *base,
            "--template",
            "{text} It was {mask}",
            "--label-words",
            "negative=bad,positive=good",
            "--finetune-steps",
            "2",
        ),
        "--train",
    )
    user_error(
        invoke(
            "prompts",
            "search-words",
            "--train",
            env / "train.tsv",
            "--dev",
            env / "dev.tsv",
            "--model",
            env / "tiny",
            "--template",
            "{text} It was",
            "--output",
            env / "w.json",
        ),
        "no {mask} slot",
    )


def test_cli_search_words_and_templates(env, tmp_path):
    out = tmp_path / "words.json"
    result = invoke(
        "prompts",
        "search-words",
        "--train",
        env / "train.tsv",
        "--dev",
        env / "dev.tsv",
        "--model",
        env / "tiny",
        "--template",
        "{text} It was {mask}.",
        "--label-map",
        "0=negative,1=positive",
        "--output",
        out,
        "--k",
        3,
        "--top-n",
        2,
        "--finetune-top",
        0,
    )
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert set(saved["label_words"]) == {"negative", "positive"}
    assert len(saved["assignments"]) == 2
    folder = tmp_path / "templates"
    result = invoke(
        "prompts",
        "search-templates",
        "--train",
        env / "train.tsv",
        "--dev",
        env / "dev.tsv",
        "--model",
        env / "tiny",
        "--label-words-file",
        out,
        "--label-map",
        "0=negative,1=positive",
        "--task-type",
        "sentiment",
        "--no-generate",
        "--finetune-top",
        0,
        "--output",
        folder,
    )
    assert result.exit_code == 0, result.output
    record = json.loads((folder / "template_search.json").read_text())
    assert record["label_words"] == saved["label_words"]
    assert record["settings"]["counts"]["library"] >= 5
    assert record["template"] == record["ranked"][0]["template"]
    # A second search to the same --output keeps the first one's file unless --overwrite says otherwise.
    words_args = ["--train", env / "train.tsv", "--dev", env / "dev.tsv", "--model", env / "tiny"]
    words_args += ["--template", "{text} It was {mask}.", "--label-map", "0=negative,1=positive"]
    words_args += ["--output", out, "--k", 3, "--top-n", 2, "--finetune-top", 0]
    kept = out.read_text()
    user_error(invoke("prompts", "search-words", *words_args, "--top-n", 1), "already exists")
    assert out.read_text() == kept
    result = invoke("prompts", "search-words", *words_args, "--top-n", 1, "--overwrite")
    assert result.exit_code == 0, result.output
    assert len(json.loads(out.read_text())["assignments"]) == 1
    user_error(
        invoke(
            "prompts", "search-templates", "--train", env / "train.tsv", "--dev", env / "dev.tsv",
            "--model", env / "tiny", "--label-words", "negative=bad,positive=good", "--output", folder,
        ),
        "already exists",
    )  # fmt: skip
    assert json.loads((folder / "template_search.json").read_text()) == record
    result = invoke(
        "prompts", "search-templates", "--train", env / "train.tsv", "--dev", env / "dev.tsv",
        "--model", env / "tiny", "--label-words", "negative=bad,positive=good", "--label-map",
        "0=negative,1=positive", "--task-type", "sentiment", "--no-generate", "--finetune-top", 0,
        "--max-minutes", 0, "--output", folder / "timed",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    timed = json.loads((folder / "timed" / "template_search.json").read_text())
    assert len(timed["ranked"]) == 1 and len(timed["settings"]["unscored"]) >= 4
    assert "left unscored by --max-minutes" in " ".join(result.output.split())
    user_error(
        invoke(
            "prompts",
            "search-templates",
            "--train",
            env / "train.tsv",
            "--dev",
            env / "dev.tsv",
            "--model",
            env / "tiny",
            "--label-map",
            "0=negative,1=positive",
            "--task-type",
            "poetry",
            "--label-words",
            "negative=bad,positive=good",
            "--output",
            folder / "x",
        ),
        "unknown task type",
    )


def test_cli_train_with_contextual_calibration_saves_it(env, tmp_path):
    import yaml

    from promptft import load_classifier

    run = tmp_path / "run"
    result = invoke(
        "train", "--finetune", "none", "--dev", env / "dev.tsv", "--model", env / "tiny", "--device", "cpu",
        "--label-map", "0=negative,1=positive", "--label-words", "negative=terrible,positive=great",
        "--calibrate", "contextual", "--output", run, "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "best" / "promptft_config.json").read_text())
    assert saved["calibration"]["method"] == "contextual"
    assert yaml.safe_load((run / "job.yaml").read_text())["prompt"]["calibrate"] == "contextual"
    assert load_classifier(run / "best").calibrate == "contextual"
    user_error(
        invoke(
            "train", "--finetune", "none", "--dev", env / "dev.tsv", "--model", env / "tiny", "--task",
            "multi_label", "--label-map", "0=negative,1=positive", "--label-words",
            "negative=terrible,positive=great", "--calibrate", "contextual", "--output", tmp_path / "r2",
        ),
        "single-label",
    )  # fmt: skip


def test_cli_train_with_temperature_calibration_fits_it_on_dev(env, tmp_path):
    from promptft import load_classifier

    run = tmp_path / "run"
    result = invoke(
        "train", "--finetune", "none", "--dev", env / "dev.tsv", "--model", env / "tiny", "--device", "cpu",
        "--label-map", "0=negative,1=positive", "--label-words", "negative=terrible,positive=great",
        "--calibrate", "contextual+temperature", "--output", run, "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "best" / "promptft_config.json").read_text())
    assert saved["objective"]["tune_temperature"] is True
    assert saved["objective"]["calibration_temperature"] != 1.0  # fitted on dev.tsv
    loaded = load_classifier(run / "best")
    assert loaded.calibrate == "contextual+temperature"
    assert loaded.objective.calibration_temperature == saved["objective"]["calibration_temperature"]
    user_error(
        invoke(
            "train", "--finetune", "none", "--model", env / "tiny", "--label-map", "0=negative,1=positive",
            "--label-words", "negative=terrible,positive=great", "--calibrate", "temperature",
            "--train", env / "dev.tsv", "--output", tmp_path / "r2",
        ),
        "--dev",
    )  # fmt: skip
