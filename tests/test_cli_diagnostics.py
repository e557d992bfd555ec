"""`promptft data audit` and `promptft diagnose` on the command line: exit codes, text and JSON."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from promptft.cli import app


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def write_tsv(path, rows):
    path.write_text("sentence\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in rows))
    return path


CLEAN_TRAIN = [
    ("a fine film", 1),
    ("a dull mess", 0),
    ("I loved the acting", 1),
    ("the plot was thin", 0),
    ("warm and funny throughout", 1),
    ("nothing happens for two hours", 0),
]
CLEAN_TEST = [("great fun from start to end", 1), ("boring and far too long", 0)]


def test_audit_of_clean_files_exits_zero_and_finds_nothing(tmp_path):
    train = write_tsv(tmp_path / "train.tsv", CLEAN_TRAIN)
    test = write_tsv(tmp_path / "test.tsv", CLEAN_TEST)
    result = invoke("data", "audit", train, "--test", test, "--label-map", "0=negative,1=positive")
    assert result.exit_code == 0, result.output
    assert "No problems found" in result.output


def test_audit_finds_planted_leakage_and_exits_one_with_json(tmp_path):
    train = write_tsv(tmp_path / "train.tsv", [*CLEAN_TRAIN, ("boring and far too long", 0)])
    test = write_tsv(tmp_path / "test.tsv", CLEAN_TEST)
    result = invoke("data", "audit", train, "--test", test, "--json")
    assert result.exit_code == 1, result.output
    findings = json.loads(result.output)["findings"]
    leak = next(f for f in findings if f["code"] == "leakage")
    assert leak["severity"] == "error"
    assert "train:7" in json.dumps(leak) and "test:2" in json.dumps(leak)


def test_audit_reports_a_label_without_a_word(tmp_path):
    train = write_tsv(tmp_path / "train.tsv", CLEAN_TRAIN)
    result = invoke(
        "data", "audit", train, "--label-map", "0=negative,1=positive", "--label-words", "positive=great"
    )
    assert "negative" in result.output and result.exit_code == 1, result.output


def test_audit_of_a_missing_file_is_a_user_error(tmp_path):
    result = invoke("data", "audit", tmp_path / "nope.tsv")
    assert result.exit_code == 2 and "error:" in result.output


def test_diagnose_says_over_fitting_and_writes_the_plot(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    history = [
        {"step": 0, "train_loss": None, "dev_accuracy": 0.70},
        {"step": 10, "train_loss": 0.60, "dev_accuracy": 0.85},
        {"step": 20, "train_loss": 0.30, "dev_accuracy": 0.80},
        {"step": 30, "train_loss": 0.10, "dev_accuracy": 0.74},
        {"step": 40, "train_loss": 0.02, "dev_accuracy": 0.70},
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    result = invoke("diagnose", run, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["over_fitting"] and not out["under_fitting"]
    assert (run / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_diagnose_without_a_history_is_a_user_error(tmp_path):
    result = invoke("diagnose", tmp_path)
    assert result.exit_code == 2 and "metrics.jsonl" in result.output


def test_diagnose_takes_a_best_folder_and_explains_an_ensemble(tmp_path):
    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    history = [{"step": 0, "dev_accuracy": 0.5}, {"step": 10, "train_loss": 0.4, "dev_accuracy": 0.8}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    result = invoke("diagnose", run / "best", "--json")  # best/ stands for its run
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["best_step"] == 10 and (run / "learning_curves.png").exists()

    vote = tmp_path / "vote"  # a saved ensemble (as `promptft ensemble` writes it) has no history
    vote.mkdir()
    (vote / "promptft_config.json").write_text(json.dumps({"type": "ensemble", "members": ["a", "b"]}))
    members = [{"name": "a", "source": str(run / "best")}, {"name": "b", "source": str(tmp_path / "b")}]
    (vote / "ensemble.json").write_text(json.dumps({"members": members}))
    result = invoke("diagnose", vote)
    text = "".join(result.output.split())  # the message may wrap anywhere, even inside a path
    assert result.exit_code == 2 and "isanensemble" in text, result.output
    assert f"promptftdiagnose{run};" in text and f"promptftdiagnose{tmp_path / 'b'}" in text
    assert sorted(p.name for p in vote.iterdir()) == ["ensemble.json", "promptft_config.json"]


def test_report_of_a_folder_that_is_not_a_run_is_a_user_error(tmp_path):
    """Before, it wrote an empty report into the folder and exited 0."""
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(b"\xff\xd8")
    result = invoke("report", folder)
    assert result.exit_code == 2 and "not a run folder" in " ".join(result.output.split())
    assert sorted(p.name for p in folder.iterdir()) == ["cat.jpg"]
