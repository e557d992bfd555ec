"""`promptft ensemble`: trained runs combined into one saved classifier, on a tiny Llama (never the real models)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_cli import LABEL_MAP, SENTENCES, common, invoke, ok, user_error, write_tsv

from promptft.data import Example
from promptft.errors import ConfigError
from tiny import tiny_llama

HEADER = ["sentence", "label"]


def train(env: Path, out: Path, *extra, label_map: str = LABEL_MAP) -> Path:
    data = ["--train", env / "train.tsv", "--dev", env / "dev.tsv", "--label-map", label_map]
    steps = ["--steps", 2, "--eval-every", 1, "--batch-size", 4]
    ok(invoke("train", *common(env), *data, *steps, "-o", out, *extra))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished runs on the same data with different prompts and adapters, and a third with other labels."""
    env = tmp_path_factory.mktemp("ens")
    model, tok = tiny_llama()
    model.save_pretrained(env / "tiny")
    tok.save_pretrained(env / "tiny")
    write_tsv(env / "train.tsv", HEADER, SENTENCES)
    write_tsv(env / "dev.tsv", HEADER, SENTENCES[:6])
    lora = train(env, env / "lora", "--finetune", "lora", "--label-words", "negative=terrible,positive=great")
    ia3 = train(
        env, env / "ia3", "--finetune", "ia3", "--template", "{text} All in all, it was {mask}",
        "--label-words", "negative=bad,positive=good",
    )  # fmt: skip
    demos = train(
        env, env / "demos", "--finetune", "lora", "--label-words", "negative=terrible,positive=great",
        "--demonstrations", "random", "--demo-sets", 2,
    )  # fmt: skip
    other = train(env, env / "other", "--label-words", "bad=terrible,good=great", label_map="0=bad,1=good")
    return env, lora, ia3, other, demos


def test_ensemble_scores_weights_saves_and_is_usable(runs):
    from promptft.classifiers import load_classifier

    env, lora, ia3, _, demos = runs
    out = env / "vote"
    result = invoke(
        "ensemble", lora, ia3 / "best", "--dev", env / "dev.tsv", "-o", out, "--json", "--no-progress"
    )
    ok(result)
    summary = json.loads(result.stdout)
    names = [m["name"] for m in summary["members"]]
    assert names == ["lora", "ia3"]  # a best/ folder is named after its run
    dev_scores = [m["dev"]["accuracy"] for m in summary["members"]]
    weights = [m["weight"] for m in summary["members"]]
    if sum(dev_scores) > 0:
        np.testing.assert_allclose(weights, np.array(dev_scores) / sum(dev_scores), atol=1e-6)
    record = json.loads((out / "ensemble.json").read_text())
    assert (
        record["weighting"] == "dev"
        and record["combine"] == "logits"
        and record["members"] == summary["members"]
    )

    # the saved ensemble predicts the members' dev-weighted mean log-probabilities (PET)
    ensemble = load_classifier(out)
    members = [load_classifier(lora / "best"), load_classifier(ia3 / "best")]
    examples = [Example({"text": t}) for t, _ in SENTENCES]
    logp = [
        torch.log(torch.as_tensor(np.asarray(m.predict_proba(examples)), dtype=torch.float64))
        for m in members
    ]
    mixed = sum(w * lp for w, lp in zip(weights, logp, strict=True))
    expected = torch.softmax(mixed, dim=-1).numpy()
    np.testing.assert_allclose(np.asarray(ensemble.predict_proba(examples)), expected, atol=1e-4)

    card = (out / "README.md").read_text()  # the model card lists the members, weights and dev scores
    assert "# An ensemble single-label classifier" in card and "## Members" in card
    for m in summary["members"]:
        assert f"| `{m['name']}` | {m['weight']:.3f} | {m['dev']['accuracy']:.4f} |" in card

    # eval reads the dev file with the members' label map (the ensemble folder has no job.yaml)
    scored = invoke("eval", out, "--data", env / "dev.tsv", "--json", "--no-progress")
    ok(scored)
    assert json.loads(scored.stdout)["accuracy"] == pytest.approx(summary["dev"]["accuracy"])
    predicted = env / "pred.jsonl"
    ok(invoke("predict", out, "--input", env / "dev.tsv", "--output", predicted, "--no-progress"))
    assert len(predicted.read_text().splitlines()) == 6

    # a member with demonstrations in context keeps them in the ensemble (its pool is saved with it)
    uniform = invoke(
        "ensemble", lora, ia3, demos, "--dev", env / "dev.tsv", "-o", env / "uniform", "--weighting", "uniform",
        "--combine", "probabilities", "--names", "a,b,c", "--no-progress",
    )  # fmt: skip
    ok(uniform)
    saved = json.loads((env / "uniform" / "ensemble.json").read_text())
    assert [m["name"] for m in saved["members"]] == ["a", "b", "c"]
    assert [m["weight"] for m in saved["members"]] == pytest.approx([1 / 3] * 3, abs=1e-6)
    demo_member = load_classifier(env / "uniform" / "members" / "c")
    assert demo_member.demonstrations is not None
    np.testing.assert_allclose(
        np.asarray(demo_member.predict_proba(examples)),
        np.asarray(load_classifier(demos / "best").predict_proba(examples)),
        atol=1e-5,
    )
    assert "ensemble" in uniform.stdout and "dev accuracy" in uniform.stdout


def test_members_whose_labels_come_in_another_order_are_aligned(runs):
    from promptft.classifiers import load_classifier

    env, lora, _, _, _ = runs
    swapped = train(
        env, env / "swapped", "--finetune", "lora", "--label-words", "positive=great,negative=terrible"
    )
    assert load_classifier(swapped / "best").labels == ["positive", "negative"]
    out = env / "aligned"
    ok(invoke("ensemble", lora, swapped, "--dev", env / "dev.tsv", "-o", out, "--weighting", "uniform"))
    ensemble = load_classifier(out)
    assert ensemble.labels == ["negative", "positive"]  # the first member's order
    examples = [Example({"text": t}) for t, _ in SENTENCES]
    first = np.log(np.asarray(load_classifier(lora / "best").predict_proba(examples)))
    second = np.log(np.asarray(load_classifier(swapped / "best").predict_proba(examples)))[:, ::-1]
    expected = torch.softmax(torch.as_tensor((first + second) / 2), dim=-1).numpy()
    np.testing.assert_allclose(np.asarray(ensemble.predict_proba(examples)), expected, atol=1e-4)


def test_ensemble_bad_input_is_explained_and_nothing_is_replaced(runs):
    env, lora, ia3, other, _ = runs
    dev = env / "dev.tsv"
    out = env / "kept"
    ok(invoke("ensemble", lora, ia3, "--dev", dev, "-o", out, "--no-progress"))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    user_error(
        invoke("ensemble", lora, ia3, "--dev", dev, "-o", out),
        "already holds a saved classifier",
        "--overwrite",
    )
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    user_error(invoke("ensemble", lora, "--dev", dev, "-o", env / "x1"), "at least two")
    user_error(invoke("ensemble", lora, other, "--dev", dev, "-o", env / "x2"), "share one label set")
    user_error(invoke("ensemble", lora, out, "--dev", dev, "-o", env / "x3"), "is an ensemble already")
    user_error(
        invoke("ensemble", lora, ia3, "--dev", env / "nope.tsv", "-o", env / "x4"), "data file not found"
    )
    user_error(
        invoke("ensemble", lora, ia3, "--dev", dev, "-o", env / "x5", "--names", "a"), "--names gives 1"
    )
    user_error(
        invoke("ensemble", lora, ia3, "--dev", dev, "-o", env / "x6", "--weighting", "best"), "weighting"
    )
    user_error(invoke("ensemble", lora, env / "missing", "--dev", dev, "-o", env / "x7"), "no such folder")
    (env / "file").write_text("x")
    user_error(invoke("ensemble", lora, ia3, "--dev", dev, "-o", env / "file"), "is a file")
    bad_labels = write_tsv(env / "bad.tsv", HEADER, [("fine", 7)])
    user_error(invoke("ensemble", lora, ia3, "--dev", bad_labels, "-o", env / "x8"), "label '7'")
    assert not any((env / f"x{i}").exists() for i in range(1, 9))


def test_ensemble_recipe_python_api(runs):
    from promptft.recipes.ensemble import build_ensemble, member_names

    env, lora, ia3, _, _ = runs
    assert member_names([lora / "best", ia3, lora]) == ["lora", "ia3", "lora-2"]
    with pytest.raises(ConfigError, match="distinct names"):
        member_names([lora, ia3], ["a", "a"])
    with pytest.raises(ConfigError, match="folder names"):
        member_names([lora, ia3], ["a", "../b"])
    result = build_ensemble([lora, ia3], env / "dev.tsv", env / "api", batch_size=4)
    assert result.folder == env / "api" and len(result.members) == 2
    best = max(m["dev"]["accuracy"] for m in result.members)
    assert result.beats_best_member == (result.dev["accuracy"] > best)


def test_a_member_refit_on_the_dev_file_is_refused(runs):
    env, lora, *_ = runs
    refit = train(
        env, env / "refit", "--finetune", "lora", "--label-words", "negative=terrible,positive=great",
        "--set", "train.refit=true", "--set", "train.eval_at_start=false",
    )  # fmt: skip
    assert json.loads((refit / "final_metrics.json").read_text())["refit"]
    out = env / "refit-vote"
    result = invoke("ensemble", lora, refit, "--dev", env / "dev.tsv", "-o", out, "--no-progress")
    user_error(
        result, "was refit on train + dev", "dev.tsv is its dev split", "none of the members trained on"
    )
    assert not out.exists()
    other_dev = write_tsv(env / "held_out.tsv", HEADER, SENTENCES[6:])  # a file the refit never saw: fine
    ok(invoke("ensemble", lora, refit, "--dev", other_dev, "-o", out, "--no-progress"))
