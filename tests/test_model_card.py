"""Model cards: save_pretrained writes README.md beside the weights; the train recipe completes it; the
saved-model format version is checked on load."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import promptft
from promptft import Example, LoraSettings, PromptClassifier, TrainConfig, load_classifier
from promptft.classifiers.card import render_model_card, update_model_card
from promptft.classifiers.saving import CONFIG_FILE, FORMAT_VERSION
from promptft.errors import ModelError
from promptft.models import backbone_from_model
from tiny import tiny_llama

WORDS = {"negative": "terrible", "positive": "great"}
DATA = [
    Example({"text": t}, lab)
    for t, lab in [
        ("I loved it", "positive"),
        ("a wonderful film", "positive"),
        ("I hated it", "negative"),
        ("an awful mess", "negative"),
    ]
]


def _clf(finetune="lora", base: Path | None = None):
    model, tok = tiny_llama()
    if base is not None:  # a folder to load the base model from again
        model.save_pretrained(base)
        tok.save_pretrained(base)
    clf = PromptClassifier(backbone_from_model(model, tok, "causal"), "{text} It was {mask}.", WORDS)
    clf.base_model = str(base) if base else "tiny-llama"
    clf.set_finetune(finetune, LoraSettings(r=2) if finetune == "lora" else None)
    return clf


def test_fit_then_save_writes_a_card_with_prompt_adapter_training_and_metrics(tmp_path):
    clf = _clf(base=tmp_path / "base")
    result = clf.fit(DATA, DATA[:2], TrainConfig(max_steps=2, eval_every=1, batch_size=2, learning_rate=1e-3))
    clf.save_pretrained(tmp_path / "clf")
    card = (tmp_path / "clf" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: promptft\n")
    assert f"# A prompt-based single-label classifier on {tmp_path / 'base'}" in card
    assert "{text} It was {mask}." in card  # the template
    assert "| `negative` | 'terrible' |" in card and "| `positive` | 'great' |" in card
    assert '"r": 2' in card and '"peft_type": "LORA"' in card  # the adapter's own settings (peft's file)
    assert "| adapter (`finetune=`) | `lora` |" in card
    assert "* train: in-memory examples, 4 examples" in card
    assert "* train examples per label: negative: 2, positive: 2" in card
    assert f"* step kept (best on dev): {result.best_step}" in card and "* learning rate: 0.001" in card
    assert f"| accuracy | {result.best_dev['accuracy']:.4f} |" in card  # dev metrics
    assert f"promptft {promptft.__version__}" in card
    assert "**Few-shot**: trained on 4 examples" in card and "No fairness audit was found" in card
    trainable, total = clf.parameter_counts()
    assert f"| trainable parameters | {trainable:,} of {total:,} |" in card
    # the notes live in the config, so the card can be written again with more in it
    update_model_card(tmp_path / "clf", test={"accuracy": 0.75, "n": 4}, command="promptft train --x")
    card = (tmp_path / "clf" / "README.md").read_text()
    assert "Test:" in card and "| accuracy | 0.7500 |" in card and "promptft train --x" in card
    assert "* test: in-memory examples, 4 examples" in card
    # and the card does not disturb loading
    assert load_classifier(tmp_path / "clf", device="cpu").labels == ["negative", "positive"]


def test_card_of_an_untrained_model_says_so_and_names_gemma_terms(tmp_path):
    clf = _clf("none")
    clf.base_model = "gemma3-270m"
    clf.save_pretrained(tmp_path / "zs")
    card = (tmp_path / "zs" / "README.md").read_text()
    assert "Not trained through promptft's trainer" in card
    assert "Gemma's Terms of Use" in card
    assert "Few-shot" not in card  # no training size to speak of


def test_fairness_results_in_the_run_folder_go_into_the_card(tmp_path):
    run = tmp_path / "run"
    _clf("none").save_pretrained(run / "best")
    (run / "fairness.json").write_text(
        json.dumps(
            {"demographic_parity_difference": 0.125, "by_group": {"women": 0.8, "men": 0.7}, "note": "x"}
        )
    )
    card = render_model_card(run / "best")
    assert "From `fairness.json`:" in card
    assert "| demographic_parity_difference | 0.1250 |" in card and "| by_group.women | 0.8000 |" in card
    assert "No fairness audit" not in card


def test_a_newer_format_is_a_clear_error_and_an_older_one_loads(tmp_path):
    folder = tmp_path / "clf"
    _clf("none").save_pretrained(folder)
    config = json.loads((folder / CONFIG_FILE).read_text())
    assert config["format_version"] == FORMAT_VERSION and config["promptft_version"] == promptft.__version__
    newer = {**config, "format_version": FORMAT_VERSION + 1, "promptft_version": "9.0.0"}
    (folder / CONFIG_FILE).write_text(json.dumps(newer))
    with pytest.raises(ModelError, match=r"saved in format 3 by promptft 9\.0\.0.*upgrade it"):
        PromptClassifier.from_pretrained(folder)
    older = {k: v for k, v in config.items() if k not in ("adapter", "promptft_version", "card")}
    older.update(format_version=1, finetune="none")  # format 1 named the adapter "finetune"
    (folder / CONFIG_FILE).write_text(json.dumps(older))
    from promptft.classifiers.saving import read_config

    assert read_config(folder, "prompt")["adapter"] == "none"


def test_train_command_records_data_command_and_test_metrics_in_the_card(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from promptft.cli import app

    model, tok = tiny_llama()
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    rows = ["sentence\tlabel", "I loved it\t1", "I hated it\t0", "great fun\t1", "terrible plot\t0"]
    (tmp_path / "d.tsv").write_text("\n".join(rows) + "\n")
    args = ["train", "--train", str(tmp_path / "d.tsv"), "--dev", str(tmp_path / "d.tsv"),
            "--test", str(tmp_path / "d.tsv"), "--label-map", "0=negative,1=positive",
            "--label-words", "negative=terrible,positive=great", "--model", str(tmp_path / "tiny"),
            "--device", "cpu", "--no-progress", "--steps", "2", "--set", "train.eval_every=1",
            "--output", str(tmp_path / "run")]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["/somewhere/bin/promptft", *args])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    card = (tmp_path / "run" / "best" / "README.md").read_text()
    test = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert f"* train: `{tmp_path / 'd.tsv'}`, 4 examples" in card
    assert "promptft train --train" in card and "--steps 2" in card
    assert "Test:" in card and f"| accuracy | {test['accuracy']:.4f} |" in card
    assert f"`{tmp_path / 'run' / 'job.yaml'}`" in card
    assert Path(tmp_path / "run" / "best" / CONFIG_FILE).exists()


def test_head_baseline_gets_a_card_too(tmp_path):
    from promptft import HeadClassifier

    model, tok = tiny_llama()
    model.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    clf = HeadClassifier.from_model(str(tmp_path / "base"), ["negative", "positive"], device="cpu", seed=0)
    clf.save_pretrained(tmp_path / "head")
    card = (tmp_path / "head" / "README.md").read_text()
    assert "# A classification-head single-label classifier on" in card
    assert "| classifier | head |" in card and "## Prompt" not in card and "backbone kind" not in card
