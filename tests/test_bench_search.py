"""Issue 11's searched-prompt bench methods (auto_label_words, auto_template, auto) on a tiny random Llama and
the tiny task table of test_bench: the search's choice is what the cell fine-tunes, and it is recorded."""

from __future__ import annotations

import json

import pytest
import yaml
from test_bench import run, table, tiny_model  # noqa: F401  (fixtures)

from promptft.bench.runner import cell_path
from promptft.errors import ConfigError
from promptft.recipes import bench_auto  # noqa: F401  (registers `auto`)

TRAIN = {"max_steps": 2, "batch_size": 4, "eval_every": 1, "max_length": 64, "lora": {"r": 2}}


@pytest.fixture
def search_config(tmp_path):
    spec = {
        "eval_batch_size": 8,
        "methods": {
            "auto_label_words": {**TRAIN, "search": {"k": 3, "top_n": 3}},
            "auto_template": {**TRAIN, "search": {"generate": True, "max_generated": 4, "samples": 2,
                                                  "keep_generated": 2}},
            "auto": {**TRAIN, "budget_minutes": 5, "generate": False},
        },
    }  # fmt: skip
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _cell(results, method):
    return json.loads(cell_path(results, "tiny-llama", "sent", method, 1).read_text())


def test_auto_label_words_fine_tunes_the_words_it_found(tiny_model, table, search_config, tmp_path):  # noqa: F811
    results = tmp_path / "results"
    run(tiny_model, table, search_config, results, tasks=["sent"], methods=["auto_label_words"], seeds=[1])
    cell = _cell(results, "auto_label_words")
    search = cell["info"]["search"]
    words = search["label_words"]
    assert set(words) == {"negative", "positive"} and len(set(words.values())) == 2
    assert cell["info"]["prompt"]["label_words"] == words  # the fine-tuned prompt uses the searched words
    assert search["task_label_words"] == {"negative": "terrible", "positive": "great"}
    assert search["best"]["label_words"] == words and len(search["top_assignments"]) >= 1
    assert cell["train_time_s"] >= search["seconds"] > 0 and cell["steps"] <= 2


def test_auto_template_fine_tunes_the_template_it_found(tiny_model, table, search_config, tmp_path):  # noqa: F811
    results = tmp_path / "results"
    run(tiny_model, table, search_config, results, tasks=["sent"], methods=["auto_template"], seeds=[1])
    cell = _cell(results, "auto_template")
    search = cell["info"]["search"]
    assert cell["info"]["prompt"]["template"] == search["template"]
    assert search["top"][0]["template"] == search["template"] and search["candidates"] >= 2
    assert search["task_template"] == "{text} It was {mask}." and search["task_template_rank"] >= 1
    assert "{mask}" in search["template"] and "{text}" in search["template"]
    assert cell["train_time_s"] >= search["seconds"] > 0


def test_auto_template_can_fine_tune_the_template_found_with_demonstrations(tiny_model, table, tmp_path):  # noqa: F811
    config = tmp_path / "demos.yaml"
    options = {**TRAIN, "search": {"generate": False}, "demonstrations": {"selection": "random", "n_sets": 2}}
    config.write_text(yaml.safe_dump({"eval_batch_size": 8, "methods": {"auto_template": options}}))
    results = tmp_path / "results"
    run(tiny_model, table, config, results, tasks=["sent"], methods=["auto_template"], seeds=[1])
    cell = _cell(results, "auto_template")
    assert cell["info"]["demonstrations"]["selection"] == "random"
    assert cell["info"]["demonstrations"]["n_sets"] == 2
    assert cell["info"]["prompt"]["template"] == cell["info"]["search"]["template"]


def test_auto_records_its_decisions_and_keeps_the_best_on_dev(tiny_model, table, search_config, tmp_path):  # noqa: F811
    results = tmp_path / "results"
    run(tiny_model, table, search_config, results, tasks=["sent"], methods=["auto"], seeds=[1])
    cell = _cell(results, "auto")
    info = cell["info"]
    stages = [d["stage"] for d in info["decisions"]]
    assert stages[:3] == ["manual", "label_words", "templates"] and stages[-1] == "choice"
    assert info["chosen"]["name"] in ("manual", "searched")
    assert cell["dev_accuracy"] == pytest.approx(info["chosen"]["dev"]["accuracy"])
    assert info["manual"]["template"] == "{text} It was {mask}."


def test_auto_can_add_a_demonstrations_finalist(tiny_model, table, tmp_path):  # noqa: F811
    config = tmp_path / "auto_demos.yaml"
    options = {**TRAIN, "budget_minutes": 5, "generate": False, "ensemble": False,
               "demonstrations_finalist": {"selection": "random", "n_sets": 2}}  # fmt: skip
    config.write_text(yaml.safe_dump({"eval_batch_size": 8, "methods": {"auto": options}}))
    results = tmp_path / "results"
    run(tiny_model, table, config, results, tasks=["sent"], methods=["auto"], seeds=[1])
    info = _cell(results, "auto")["info"]
    demo = next(d for d in info["decisions"] if d["stage"] == "finetune_demonstrations")
    assert demo["outcome"] == "done" and info["demonstrations_finalist"]["selection"] == "random"
    assert info["chosen"]["name"] in ("manual", "searched", "demonstrations")


def test_unknown_search_options_are_clear_errors(tiny_model, table, tmp_path):  # noqa: F811
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"methods": {"auto_label_words": {**TRAIN, "search": {"kk": 3}}}}))
    with pytest.raises(ConfigError, match="kk"):
        run(tiny_model, table, bad, tmp_path / "r", tasks=["sent"], methods=["auto_label_words"], seeds=[1])
