"""Model listing (kind, parameters, size, memory estimates) and model selection on tiny models."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from promptft.data import Example
from promptft.errors import ConfigError, DataError, ModelError
from promptft.search import (
    FULL_FT_BYTES_PER_PARAM,
    GB,
    Candidate,
    check_constraints,
    describe_folder,
    estimate_training_memory,
    gguf_parameters,
    list_models,
    parse_label_words,
    rank_candidates,
    safetensors_parameters,
    select_models,
)
from tiny import tiny_llama

WORDS = {"negative": "terrible", "positive": "great"}
POS = ["a great film", "great acting", "it was great", "good and great", "wonderful", "I loved it"]
NEG = ["a terrible film", "bad acting", "it was terrible", "awful and bad", "boring", "I hated it"]
DATA = [Example({"text": t}, "positive") for t in POS] + [Example({"text": t}, "negative") for t in NEG]


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    out = []
    for seed in (0, 1):
        model, tok = tiny_llama(seed)
        model.save_pretrained(root / f"tiny-{seed}")
        tok.save_pretrained(root / f"tiny-{seed}")
        out.append(str(root / f"tiny-{seed}"))
    return out


def test_describe_a_tiny_folder_without_loading_weights(tiny_dirs):
    model, _ = tiny_llama(0)
    n = sum(p.numel() for p in model.parameters())  # tied embeddings are counted (and stored) once
    assert safetensors_parameters(tiny_dirs[0]) == n
    info = describe_folder(tiny_dirs[0])
    assert info.kind == "causal" and info.n_params == n and info.params_from == "safetensors header"
    assert info.size_bytes > 4 * n and info.ready
    assert info.full_ft_gb >= info.lora_gb > 0
    with pytest.raises(ModelError, match="config.json"):
        describe_folder(tiny_dirs[0] + "/nope")


def test_list_models_includes_registry_aliases_and_paths(tiny_dirs):
    infos = list_models([tiny_dirs[0]], include_cache=False)
    names = [i.name for i in infos]
    assert {"smollm2-135m", "gemma3-270m", "minilm-l6"} <= set(names)
    mine = next(i for i in infos if i.source == "path")
    assert mine.path == tiny_dirs[0] and mine.kind == "causal"
    from promptft.models.registry import REGISTRY, is_ready, package_dir

    for info in infos:
        if info.source != "registry":
            assert info.ready and info.status == "ready"
            continue
        entry = REGISTRY[info.name]
        assert info.ready == is_ready(info.name), info.name  # the table tells the truth about the install
        if not info.ready:  # and says what to do about it
            installed = package_dir(entry) is not None
            assert ("converts on first use" if installed else entry.make_target) in info.status
        if info.name == "minilm-l6" and info.ready:
            assert info.kind == "encoder" and info.n_params and 20e6 < info.n_params < 25e6


def test_gguf_header_parameter_count():
    from promptft.models.registry import REGISTRY, package_dir

    entry = REGISTRY["smollm2-135m"]
    pkg = package_dir(entry)
    if pkg is None or not (pkg / entry.gguf_file).exists():
        pytest.skip("the SmolLM2 GGUF package is not installed")
    assert 130e6 < gguf_parameters(pkg / entry.gguf_file) < 140e6


def test_memory_estimate_follows_bytes_per_parameter():
    full, lora = estimate_training_memory(1_000_000_000)
    assert full == pytest.approx(FULL_FT_BYTES_PER_PARAM * 1e9 / GB, rel=0.01)
    assert lora < full / 3
    assert estimate_training_memory(None) == (None, None)


def test_ranking_puts_constraint_breakers_and_errors_last():
    fast = Candidate("fast", zero_shot_accuracy=0.6, tuned_accuracy=0.7, latency_ms=5, peak_memory_gb=0.5)
    accurate = Candidate(
        "accurate", zero_shot_accuracy=0.7, tuned_accuracy=0.9, latency_ms=50, peak_memory_gb=2
    )
    broken = Candidate("broken", error="could not load")
    for c in (fast, accurate, broken):
        c.violations = check_constraints(c, max_latency_ms=20)
    assert accurate.violations == ["latency 50.0 ms > 20 ms"] and not fast.violations
    ranked, pick, reason = rank_candidates([broken, accurate, fast])
    assert [c.model for c in ranked] == ["fast", "accurate", "broken"] and pick is fast
    assert "fast" in reason
    accurate.violations = []
    ranked, pick, _ = rank_candidates([fast, accurate, broken])
    assert pick is accurate
    fast.violations = check_constraints(fast, max_memory_gb=0.1)
    accurate.violations = check_constraints(accurate, max_memory_gb=0.1)
    _, pick, reason = rank_candidates([fast, accurate])
    assert pick is None and "relax" in reason


def test_select_on_two_tiny_models_with_constraints(tiny_dirs):
    sel = select_models(
        [*tiny_dirs, "no-such-model"],
        DATA,
        "{text} It was {mask}.",
        WORDS,
        dev=DATA,
        budget_s=30,
        max_steps=3,
        device="cpu",
        max_memory_gb=100,
    )
    assert sel.recommended is not None and sel.recommended.model in tiny_dirs
    assert sel.candidates[0] is sel.recommended and sel.candidates[-1].model == "no-such-model"
    assert "unknown model" in sel.candidates[-1].error
    for cand in sel.candidates[:2]:
        assert cand.kind == "causal" and 0 <= cand.zero_shot_accuracy <= 1 and 0 <= cand.tuned_accuracy <= 1
        assert 1 <= cand.steps <= 3 and cand.latency_ms > 0 and cand.peak_memory_gb is not None
    assert sel.to_dict()["recommended"] == sel.recommended.model

    strict = select_models(
        tiny_dirs,
        DATA,
        "{text} It was {mask}.",
        WORDS,
        budget_s=30,
        max_steps=1,
        device="cpu",
        max_latency_ms=1e-6,
    )
    assert strict.recommended is None and "relax" in strict.reason
    assert all(c.violations for c in strict.candidates)
    assert strict.n_train + strict.n_dev == len(DATA)  # no --dev: a stratified part of the data is held out


def test_select_rejects_bad_input(tiny_dirs):
    with pytest.raises(DataError, match="no label words"):
        select_models(tiny_dirs, DATA, "{text} It was {mask}.", {"positive": "great"}, dev=DATA)
    with pytest.raises(ConfigError, match="--budget-s"):
        select_models(tiny_dirs, DATA, "{text} It was {mask}.", WORDS, budget_s=0)
    with pytest.raises(ConfigError, match="--models"):
        select_models([], DATA, "{text} It was {mask}.", WORDS)


def test_parse_label_words():
    assert parse_label_words("0=terrible, 1=great|good") == {"0": ["terrible"], "1": ["great", "good"]}
    assert parse_label_words('{"a": "x", "b": ["y", "z"]}') == {"a": ["x"], "b": ["y", "z"]}
    with pytest.raises(ConfigError, match="LABEL=WORD"):
        parse_label_words("terrible")


def test_cli_models_and_select(tiny_dirs, tmp_path):
    from promptft.cli import app  # the real entry point, whose command group reports user errors

    runner = CliRunner()
    out = runner.invoke(app, ["models", "--path", tiny_dirs[0], "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert any(r["path"] == tiny_dirs[0] and r["kind"] == "causal" for r in rows)
    out = runner.invoke(app, ["models", "--path", tiny_dirs[0]])
    assert out.exit_code == 0 and "estimate" in out.output

    data = tmp_path / "train.csv"
    data.write_text("".join(f"1,{t}\n" for t in POS) + "".join(f"0,{t}\n" for t in NEG))
    args = [
        "select",
        "--data",
        str(data),
        "--template",
        "{text} It was {mask}.",
        "--label-words",
        "0=terrible,1=great",
        "--models",
        tiny_dirs[0],
        "--budget-s",
        "20",
        "--max-steps",
        "1",
        "--device",
        "cpu",
    ]
    out = runner.invoke(app, [*args, "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["recommended"] == tiny_dirs[0]
    out = runner.invoke(app, [*args[:6], "0=terrible", *args[7:]])
    assert out.exit_code == 2 and "no label words" in out.output
    missing = str(tmp_path / "no-such-model")
    out = runner.invoke(app, [*args[:8], missing, *args[9:], "--json"])  # it exited 0 with nothing chosen
    assert out.exit_code == 1 and json.loads(out.stdout)["recommended"] is None


def test_cli_tables_fit_80_columns_and_say_when_tuning_was_skipped(tiny_dirs, tmp_path):
    from promptft.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["models", "--path", tiny_dirs[0]], terminal_width=80)
    assert out.exit_code == 0, out.output
    assert "smollm2-135m" in out.stdout and "…" not in out.stdout
    assert max(len(line.rstrip()) for line in out.stdout.splitlines()) <= 80

    data = tmp_path / "train.csv"  # raw labels 0/1, label words keyed by names through --label-map
    data.write_text("".join(f"1,{t}\n" for t in POS) + "".join(f"0,{t}\n" for t in NEG))
    args = ["select", "--data", str(data), "--template", "{text}\\nIt was {mask}", "--models", tiny_dirs[0]]
    args += ["--label-map", "0=negative,1=positive", "--label-words", "negative=terrible,positive=great"]
    out = runner.invoke(app, [*args, "--budget-s", "0.001", "--device", "cpu"], terminal_width=80)
    assert out.exit_code == 0, out.output
    text = " ".join(out.stdout.split())
    assert "skipped" in text and "fine-tuning was skipped" in text and "…" not in out.stdout
