"""Bulk prediction: `predict --chunk-size` streams the file (same output as the in-memory path), resumes
after an interruption without redoing finished rows, and runs data-parallel with outputs in input order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import promptft
from promptft import PromptClassifier
from promptft.cli import app
from promptft.data.readers import iter_rows
from promptft.deploy.bulk import marker_path, partial_path, render_rows, stream_predictions
from promptft.models import backbone_from_model
from tiny import tiny_llama

SENTENCES = ["I loved it", "a wonderful film", "I hated it", "an awful mess", "good acting", "boring and bad"]


def write_input(path: Path, n: int) -> list[str]:
    texts = [f"{SENTENCES[i % len(SENTENCES)]} number {i}" for i in range(n)]
    path.write_text("id\tsentence\n" + "".join(f"{i}\t{t}\n" for i, t in enumerate(texts)))
    return texts


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "clf"
    model, tok = tiny_llama()
    clf = PromptClassifier(
        backbone_from_model(model, tok),
        "{text} It was {mask}.",
        {"negative": "terrible", "positive": "great"},
    )
    clf.save_pretrained(folder)
    return folder


def run_cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("suffix", [".jsonl", ".tsv", ".csv"])
def test_streamed_output_equals_the_in_memory_one(tmp_path, saved, suffix):
    write_input(tmp_path / "in.tsv", 23)
    whole, streamed = tmp_path / f"whole{suffix}", tmp_path / f"streamed{suffix}"
    assert run_cli("predict", saved, "-i", tmp_path / "in.tsv", "-o", whole).exit_code == 0
    done = run_cli("predict", saved, "-i", tmp_path / "in.tsv", "-o", streamed, "--chunk-size", 5)
    assert done.exit_code == 0, done.output
    assert streamed.read_text() == whole.read_text()
    assert not partial_path(streamed).exists() and not marker_path(streamed).exists()
    again = run_cli("predict", saved, "-i", tmp_path / "in.tsv", "-o", streamed, "--chunk-size", 50)
    assert again.exit_code == 2 and "already exists" in again.stderr
    if suffix == ".jsonl":
        replaced = run_cli(
            "predict", saved, "-i", tmp_path / "in.tsv", "-o", streamed, "--chunk-size", 50, "--overwrite"
        )
        assert replaced.exit_code == 0, replaced.output
        assert streamed.read_text() == whole.read_text()


def test_iter_rows_is_lazy(tmp_path):
    write_input(tmp_path / "in.tsv", 5)
    rows = iter_rows(tmp_path / "in.tsv")
    assert next(rows).cells == {"id": "0", "sentence": "I loved it number 0"}


class Interrupt(Exception):
    pass


def test_resume_skips_finished_rows_and_drops_a_half_written_chunk(tmp_path):
    write_input(tmp_path / "in.tsv", 17)
    out = tmp_path / "out.jsonl"
    seen: list[str] = []

    def predict_chunk(rows, fail_after=None):
        if fail_after is not None and len(seen) >= fail_after:
            raise Interrupt
        seen.extend(r.cells["id"] for r in rows)
        return [{**r.cells, "label": "x"} for r in rows]

    def run(fail_after=None):
        return stream_predictions(
            iter_rows(tmp_path / "in.tsv"),
            out,
            input=tmp_path / "in.tsv",
            model="m",
            predict_chunk=lambda rows: predict_chunk(rows, fail_after),
            render=render_rows("jsonl"),
            chunk_size=4,
        )

    with pytest.raises(Interrupt):
        run(fail_after=8)  # two chunks written, then the process "dies"
    assert json.loads(marker_path(out).read_text())["rows_done"] == 8
    with partial_path(out).open("a") as f:
        f.write('{"id": "half a chunk')  # written after the last marker: must be dropped
    assert run() == 17
    assert seen == [str(i) for i in range(17)]  # rows 0-7 were not predicted twice
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == [str(i) for i in range(17)]
    assert not marker_path(out).exists()


def test_a_changed_input_starts_afresh(tmp_path):
    write_input(tmp_path / "in.tsv", 6)
    out = tmp_path / "out.tsv"
    partial_path(out).write_text("stale\n")
    marker_path(out).write_text(json.dumps({"input": "elsewhere", "rows_done": 3, "bytes_written": 6}))
    n = stream_predictions(
        iter_rows(tmp_path / "in.tsv"),
        out,
        input=tmp_path / "in.tsv",
        model="m",
        predict_chunk=lambda rows: [{"id": r.cells["id"]} for r in rows],
        render=render_rows("tsv"),
        chunk_size=4,
    )
    assert n == 6 and out.read_text().splitlines() == ["id", *[str(i) for i in range(6)]]


def test_cli_resume_after_interruption(tmp_path, saved, monkeypatch):
    write_input(tmp_path / "in.tsv", 12)
    out = tmp_path / "out.jsonl"
    reference = tmp_path / "ref.jsonl"
    assert run_cli("predict", saved, "-i", tmp_path / "in.tsv", "-o", reference).exit_code == 0

    import promptft.deploy.bulk as bulk

    real = bulk.write_marker
    calls = {"n": 0}

    def dying_marker(*args, **kwargs):
        real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # Ctrl-C after the second chunk

    monkeypatch.setattr(bulk, "write_marker", dying_marker)
    stopped = run_cli("predict", saved, "-i", tmp_path / "in.tsv", "-o", out, "--chunk-size", 4)
    assert stopped.exit_code != 0  # click reports the Ctrl-C as "Aborted!"
    monkeypatch.setattr(bulk, "write_marker", real)
    assert not out.exists() and json.loads(marker_path(out).read_text())["rows_done"] == 8
    done = run_cli("predict", saved, "-i", tmp_path / "in.tsv", "-o", out, "--chunk-size", 4)
    assert done.exit_code == 0, done.output
    assert out.read_text() == reference.read_text()


def test_two_processes_write_the_rows_in_input_order(tmp_path, saved):
    from test_accelerate import free_port

    write_input(tmp_path / "in.tsv", 11)
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    assert run_cli("predict", saved, "-i", tmp_path / "in.tsv", "-o", one, "--device", "cpu").exit_code == 0
    src = str(Path(promptft.__file__).parents[1])
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    launch += ["--main_process_port", str(free_port())]
    command = [
        *launch,
        "-m",
        "promptft",
        "predict",
        str(saved),
        "-i",
        str(tmp_path / "in.tsv"),
        "-o",
        str(two),
    ]
    done = subprocess.run(
        [*command, "--chunk-size", "4", "--device", "cpu"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("wrote 11 predictions") == 1  # one process writes and reports
    got = [json.loads(line) for line in two.read_text().splitlines()]
    expected = [json.loads(line) for line in one.read_text().splitlines()]
    assert [r["id"] for r in got] == [str(i) for i in range(11)]
    for a, b in zip(got, expected, strict=True):
        assert a["label"] == b["label"]
        assert abs(a["prob_positive"] - b["prob_positive"]) < 1e-5
