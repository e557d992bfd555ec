"""`promptft learning-curve` (tiny model, tiny K, resumable cells) and `promptft report` (one self-contained
HTML page with the evaluation, fitting and fairness sections, rendered in headless Chromium when installed)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from promptft.cli import app
from promptft.config import DataConfig, JobConfig
from promptft.errors import ConfigError, DataError
from promptft.recipes import learning_curve as lc
from tiny import tiny_llama

ROOT = Path(__file__).resolve().parents[1]
POSITIVE = ["I loved it", "a wonderful film", "good acting", "great fun", "a moving story", "fantastic work"]
NEGATIVE = [
    "I hated it",
    "an awful mess",
    "boring and bad",
    "terrible plot",
    "a dull film",
    "horrible acting",
]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def write_tsv(path, rows, header=("sentence", "label")):
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("curve")
    model, tok = tiny_llama()
    model.save_pretrained(root / "tiny")
    tok.save_pretrained(root / "tiny")
    write_tsv(root / "pool.tsv", [(t, 1) for t in POSITIVE] + [(t, 0) for t in NEGATIVE])
    test = [("he was good and great", 1, "m"), ("she was good and great", 1, "f"),
            ("he was bad", 0, "m"), ("she was bad", 0, "f")]  # fmt: skip
    write_tsv(root / "test.tsv", test, ("sentence", "label", "group"))
    job = JobConfig()
    job.data = DataConfig(
        fields={"text": "sentence"}, label="label", label_map={"0": "negative", "1": "positive"}
    )
    job.prompt.label_words = {"negative": "terrible", "positive": "great"}
    job.model.name = str(root / "tiny")
    job.model.finetune = "lora"
    job.model.device = "cpu"
    job.train.max_steps = 2
    job.train.eval_every = 1
    job.train.batch_size = 2
    job.train.learning_rate = 1e-3
    job.train.progress = False
    job.to_yaml(root / "job.yaml")
    return root


def test_learning_curve_trains_each_cell_once_and_plots(env, tmp_path):
    out = tmp_path / "curve"
    job = JobConfig.from_yaml(env / "job.yaml")
    seen = []
    curve = lc.learning_curve(
        job, output=out, pool=env / "pool.tsv", eval_data=env / "test.tsv", ks=[2, 1], seeds=[1, 2],
        on_cell=lambda cell, cached: seen.append((cell["k"], cell["seed"], cached)),
    )  # fmt: skip
    assert seen == [(1, 1, False), (1, 2, False), (2, 1, False), (2, 2, False)]
    assert curve.metric == "accuracy" and [r["k"] for r in curve.summary] == [1, 2]
    assert all(r["n"] == 2 and r["min"] <= r["mean"] <= r["max"] for r in curve.summary)
    cell = json.loads((out / "cells" / "k2-seed1.json").read_text())
    assert cell["n_train"] == 4 and cell["n_dev"] == 4 and cell["eval"]["n"] == 4
    saved = json.loads((out / lc.CURVE_FILE).read_text())
    assert saved["summary"] == curve.summary
    assert (out / lc.PLOT_FILE).read_bytes()[:4] == b"\x89PNG"
    # resumable: a second run reads the finished cells and trains nothing
    (out / "cells" / "k2-seed2.json").unlink()
    seen.clear()
    lc.learning_curve(
        job, output=out, pool=env / "pool.tsv", eval_data=env / "test.tsv", ks=[1, 2], seeds=[1, 2],
        on_cell=lambda cell, cached: seen.append((cell["k"], cell["seed"], cached)),
    )  # fmt: skip
    assert seen == [(1, 1, True), (1, 2, True), (2, 1, True), (2, 2, False)]


def test_learning_curve_refuses_bad_inputs(env, tmp_path):
    job = JobConfig.from_yaml(env / "job.yaml")
    with pytest.raises(DataError, match="K=10"):
        lc.learning_curve(
            job, output=tmp_path / "a", pool=env / "pool.tsv", eval_data=env / "test.tsv", ks=[10]
        )
    with pytest.raises(DataError, match="also in the pool"):
        lc.learning_curve(job, output=tmp_path / "b", pool=env / "pool.tsv", eval_data=env / "pool.tsv")
    with pytest.raises(ConfigError, match="no pool"):
        lc.learning_curve(job, output=tmp_path / "c", eval_data=env / "test.tsv")


def test_learning_curve_command(env, tmp_path):
    out = tmp_path / "cli-curve"
    result = invoke("learning-curve", "--config", env / "job.yaml", "--pool", env / "pool.tsv",
                    "--eval", env / "test.tsv", "--k", "1", "--seeds", "3", "--output", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Learning curve" in result.output and (out / "learning_curve.png").is_file()
    bad = invoke("learning-curve", "--config", env / "job.yaml", "--k", "four", "--output", out)
    assert bad.exit_code == 2 and "whole numbers" in bad.output


@pytest.fixture(scope="module")
def report(env):
    """A finished tiny run with a fairness audit and a learning curve, and its report."""
    run = env / "run"
    result = invoke("train", "--config", env / "job.yaml", "--train", env / "pool.tsv", "--dev", env / "pool.tsv",
                    "--output", run, "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    fairness = invoke("fairness", run, "--data", env / "test.tsv", "--group-column", "group", "--text-field",
                      "sentence", "--label-map", "0=negative,1=positive")  # fmt: skip
    assert fairness.exit_code in (0, 1), fairness.output  # 1: something flagged (a random tiny model may be)
    assert (run / "fairness" / "fairness.json").is_file()
    curve = env / "curve-for-report"
    assert invoke("learning-curve", "--config", env / "job.yaml", "--pool", env / "pool.tsv", "--eval",
                  env / "test.tsv", "--k", "1", "--seeds", "1", "--output", curve).exit_code == 0  # fmt: skip
    out = invoke("report", run, "--data", env / "test.tsv", "--learning-curve", curve)
    assert out.exit_code == 0, out.output
    return run / "report"


def test_report_is_one_self_contained_page_with_every_section(report):
    page = (report / "report.html").read_text()
    for title in ("Overview", "Evaluation", "Fitting", "Fairness", "Learning curve over K"):
        assert f">{title}" in page
    images = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(images) == 4  # confusion, reliability, learning curves, curve over K
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r'(src|href)="(?!data:|#)', page)  # nothing loaded from elsewhere
    assert "Counterfactual identity swaps" in page and "Group fairness" in page
    summary = (report / "report.md").read_text()
    assert summary.startswith("# promptft report") and "## Fairness" in summary and "## Evaluation" in summary


def test_report_without_data_or_fairness_says_how_to_add_them(env, report, tmp_path):
    out = invoke("report", env / "run" / "best", "--output", tmp_path / "r", "--fairness", tmp_path / "none")
    assert out.exit_code == 0, out.output
    page = (tmp_path / "r" / "report.html").read_text()
    assert "No labelled data given" in page and "No fairness audit" in page
    assert invoke("report", tmp_path / "missing").exit_code == 2


def _render_check():
    spec = importlib.util.spec_from_file_location("render_check", ROOT / "scripts" / "check_report_render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_report_renders_in_headless_chromium(report, tmp_path):
    check = _render_check()
    if check.find_browser() is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    png = check.screenshot(report / "report.html", tmp_path / "shot.png", height=2000)
    stats = check.measure(png)
    assert not check.is_blank(stats), stats
    assert stats["rows_with_content_share"] > 0.3, stats
    blank = tmp_path / "blank.html"
    blank.write_text("<html><body></body></html>")
    assert check.is_blank(check.measure(check.screenshot(blank, tmp_path / "blank.png", height=600)))


def test_markdown_to_html_escapes_text_and_builds_tables():
    from promptft.evaluation.html import markdown_to_html

    page = markdown_to_html(
        "# Title\n\nA <script>x</script> **bold**\n\n| a | b |\n|---|---|\n| 1 \\| 2 | `c` |\n\n* one\n* two"
    )
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<strong>bold</strong>" in page and "<h3>Title</h3>" in page
    assert '<td class="nw">1 | 2</td><td class="nw"><code>c</code></td>' in page  # short cells do not wrap
    assert "<td>a cell long enough to wrap when the table is narrow</td>" in markdown_to_html(
        "| x |\n|---|\n| a cell long enough to wrap when the table is narrow |"
    )
    assert "<ul><li>one</li><li>two</li></ul>" in page
