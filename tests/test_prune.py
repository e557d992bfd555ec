"""Structured pruning on tiny models: the shapes and the config shrink, the pruned model computes exactly
what the original computes with those neurons/heads masked, it saves smaller and loads back; the recipe
and the CLI run importance -> prune -> recovery end to end."""

import copy
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from promptft import Example, HeadClassifier, LoraSettings, PromptClassifier, TrainConfig, load_classifier
from promptft.cli import app
from promptft.deploy.prune import (
    apply_pruning,
    find_structures,
    hf_model,
    keep_count,
    merge_adapter,
    prune_classifier,
    taylor_importance,
)
from promptft.errors import PromptFTError
from promptft.models import backbone_from_model
from tiny import bpe_tokenizer, tiny_bert, tiny_llama

WORDS = {"negative": "terrible", "positive": "great"}
DEV = [
    Example({"text": t}, lab)
    for t, lab in [
        ("I loved it", "positive"),
        ("I hated it", "negative"),
        ("a wonderful film", "positive"),
        ("an awful mess", "negative"),
        ("good acting", "positive"),
        ("boring and bad", "negative"),
    ]
]


def llama_clf(heads=4, kv_heads=2, intermediate=64, finetune="full"):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = bpe_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=intermediate,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=256,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(cfg).eval()
    clf = PromptClassifier(
        backbone_from_model(model, tok, "causal"), "{text} It was {mask}.", WORDS, max_length=64
    )
    clf.set_finetune(finetune)
    return clf


def bert_clf():
    from transformers import BertConfig, BertForSequenceClassification

    bert, tok = tiny_bert()
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**{**bert.config.to_dict(), "num_labels": 2})).eval()
    return HeadClassifier(model, tok, ["negative", "positive"], max_length=32)


def masked_reference(clf, mlp_scores, head_scores, sparsity, head_sparsity):
    """A deep copy of `clf` whose removed neurons/heads are zeroed instead of cut (same selection rule)."""
    ref = copy.deepcopy(clf)
    mlps, attns = find_structures(hf_model(ref))
    with torch.no_grad():
        for mlp, s in zip(mlps, mlp_scores, strict=True):
            keep = s.topk(keep_count(mlp.size, sparsity, 8)).indices
            drop = torch.ones(mlp.size, dtype=torch.bool)
            drop[keep] = False
            for parent, name in mlp.cols:
                getattr(parent, name).weight[:, drop] = 0
        for attn, s in zip(attns, head_scores, strict=True):
            if head_sparsity == 0:
                break
            g = attn.per_group
            if g > 1:
                top = s.view(attn.kv_heads, g).topk(keep_count(g, head_sparsity), dim=1).indices
                keep = (top + torch.arange(attn.kv_heads)[:, None] * g).reshape(-1)
            else:
                keep = s.topk(keep_count(attn.heads, head_sparsity)).indices
            drop = torch.ones(attn.heads, dtype=torch.bool)
            drop[keep] = False
            cols = drop.repeat_interleave(attn.head_dim)
            attn.module.o_proj.weight[:, cols] = 0
    return ref


@pytest.mark.parametrize(
    ("heads", "kv_heads", "sparsity", "new_heads", "new_kv"),
    [(4, 2, 0.5, 2, 2), (8, 2, 0.5, 4, 2), (4, 4, 0.5, 2, 2)],  # GQA: per group; MHA: k/v go too
)
def test_llama_pruning_shrinks_shapes_and_equals_masking(heads, kv_heads, sparsity, new_heads, new_kv):
    clf = llama_clf(heads, kv_heads)
    mlp_scores, head_scores = taylor_importance(clf, DEV, batch_size=4)
    ref = masked_reference(clf, mlp_scores, head_scores, sparsity, sparsity)
    report = apply_pruning(hf_model(clf), mlp_scores, head_scores, sparsity, sparsity, multiple_of=8)
    model = hf_model(clf)
    d = model.config.head_dim
    new_inter = keep_count(64, sparsity, 8)
    assert report.intermediate_size == (64, new_inter) and new_inter < 64
    assert report.attention_heads == (heads, new_heads) and report.kv_heads == (kv_heads, new_kv)
    for layer in model.model.layers:
        assert layer.mlp.gate_proj.weight.shape == (new_inter, 32)
        assert layer.mlp.up_proj.weight.shape == (new_inter, 32)
        assert layer.mlp.down_proj.weight.shape == (32, new_inter)
        assert layer.self_attn.q_proj.weight.shape == (new_heads * d, 32)
        assert layer.self_attn.k_proj.weight.shape == (new_kv * d, 32)
        assert layer.self_attn.o_proj.weight.shape == (32, new_heads * d)
    cfg = model.config
    assert (cfg.intermediate_size, cfg.num_attention_heads, cfg.num_key_value_heads) == (
        new_inter,
        new_heads,
        new_kv,
    )
    assert report.parameters[1] < report.parameters[0]
    np.testing.assert_allclose(clf.predict_proba(DEV), ref.predict_proba(DEV), atol=1e-5)


def test_head_count_stays_valid_for_the_config():
    clf = llama_clf(heads=8, kv_heads=2)  # 0.3 would keep 3 per group = 6 heads: 32 % 6 != 0
    report = prune_classifier(clf, DEV, 0.3)
    assert report.attention_heads is None and "divide hidden_size" in report.notes[0]
    assert hf_model(clf).config.num_attention_heads == 8


def test_zero_sparsity_changes_nothing():
    clf = llama_clf()
    before = clf.predict_proba(DEV)
    report = prune_classifier(clf, DEV, 0.0)
    assert report.intermediate_size == (64, 64) and report.attention_heads is None
    np.testing.assert_allclose(clf.predict_proba(DEV), before, atol=1e-6)


def test_importance_ranks_a_dead_neuron_last_and_it_goes_first():
    clf = llama_clf()
    mlp = hf_model(clf).model.layers[0].mlp
    with torch.no_grad():
        mlp.gate_proj.weight[5] = 0
        mlp.up_proj.weight[5] = 0
        mlp.down_proj.weight[:, 5] = 0
    scores, _ = taylor_importance(clf, DEV)
    assert scores[0][5] == 0 and scores[0].argmin() == 5 and (scores[0] > 0).sum() == 63
    assert all(p.grad is None for p in clf.module.parameters())  # gradients released


def test_pruned_lora_prompt_model_saves_smaller_and_loads_back(tmp_path):
    clf = llama_clf(finetune=LoraSettings(r=4))
    with torch.no_grad():  # a trained-looking adapter, so merging matters
        for name, p in clf.module.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    lora_probs = clf.predict_proba(DEV)
    merge_adapter(clf)
    assert clf.peft_model is None and clf.adapter.name == "full"
    np.testing.assert_allclose(clf.predict_proba(DEV), lora_probs, atol=1e-5)
    clf.save_pretrained(tmp_path / "full")
    report = prune_classifier(clf, DEV, 0.5)
    probs = clf.predict_proba(DEV)
    assert probs.shape == (6, 2)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    clf.save_pretrained(tmp_path / "pruned")
    size = lambda d: sum(p.stat().st_size for p in (tmp_path / d).rglob("*.safetensors"))  # noqa: E731
    assert size("pruned") < size("full")
    saved = json.loads((tmp_path / "pruned" / "model" / "config.json").read_text())
    assert saved["intermediate_size"] == report.intermediate_size[1] and saved["num_attention_heads"] == 2
    again = load_classifier(tmp_path / "pruned", device="cpu")
    np.testing.assert_allclose(again.predict_proba(DEV), probs, atol=1e-5)
    assert sum(p.numel() for p in hf_model(again).parameters()) == report.parameters[1]


def test_bert_student_loses_mlp_neurons_only_and_reloads(tmp_path):
    clf = bert_clf()
    mlp_scores, head_scores = taylor_importance(clf, DEV)
    assert head_scores == []
    ref = masked_reference(clf, mlp_scores, head_scores, 0.5, 0.0)
    report = apply_pruning(hf_model(clf), mlp_scores, head_scores, 0.5, 0.5)
    assert report.attention_heads is None and "heads kept" in report.notes[0]
    for layer in clf.model.bert.encoder.layer:
        assert layer.intermediate.dense.weight.shape == (32, 32)
        assert layer.output.dense.weight.shape == (32, 32)
    probs = clf.predict_proba(DEV)
    np.testing.assert_allclose(probs, ref.predict_proba(DEV), atol=1e-5)
    clf.save_pretrained(tmp_path / "bert")
    again = load_classifier(tmp_path / "bert", device="cpu")
    assert again.model.config.intermediate_size == 32
    np.testing.assert_allclose(again.predict_proba(DEV), probs, atol=1e-5)


def test_pruning_user_errors():
    clf = llama_clf(finetune="prompt_tuning")
    with pytest.raises(PromptFTError, match="cannot be merged"):
        prune_classifier(clf, DEV, 0.3)
    clf = llama_clf()
    with pytest.raises(PromptFTError, match="sparsity must be in"):
        prune_classifier(clf, DEV, 1.2)
    assert keep_count(1536, 0.3, 8) == 1072 and keep_count(3, 0.3) == 2 and keep_count(3, 0.5) == 2
    assert keep_count(3, 0.9) == 1


def test_prune_recipe_and_cli(tmp_path):
    model, tok = tiny_llama()
    model.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    clf = PromptClassifier.from_model(
        str(tmp_path / "base"), "{text} It was {mask}.", WORDS, finetune="lora", max_length=64, device="cpu"
    )
    clf.save_pretrained(tmp_path / "run")
    rows = "sentence\tlabel\n" + "".join(
        f"{ex.fields['text']}\t{int(ex.label == 'positive')}\n" for ex in DEV
    )
    for name in ("train", "dev", "test"):
        (tmp_path / f"{name}.tsv").write_text(rows)
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "prune", str(tmp_path / "run"), "--output", str(tmp_path / "p"), "--dev", str(tmp_path / "dev.tsv"),
            "--train", str(tmp_path / "train.tsv"), "--test", str(tmp_path / "test.tsv"), "--sparsity", "0.5",
            "--steps", "4", "--set", "eval_every=2", "--label-map", "0=negative,1=positive", "--device", "cpu",
            "--no-progress", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    summary = json.loads(result.stdout)
    assert summary["prune"]["intermediate_size"] == [64, 32]
    assert summary["recovery"]["train"]["max_steps"] == 4 and summary["test"]["n"] == 6
    pruned = load_classifier(tmp_path / "p" / "best", device="cpu")
    assert hf_model(pruned).config.intermediate_size == 32
    assert pruned.predict(["I loved it"])[0] in WORDS
    again = runner.invoke(
        app, ["prune", str(tmp_path / "run"), "-o", str(tmp_path / "p"), "--dev", "x.tsv", "--no-recover"]
    )
    assert again.exit_code == 2 and "already holds a pruned model" in again.stderr
    no_data = runner.invoke(
        app, ["prune", str(tmp_path / "run"), "-o", str(tmp_path / "q"), "--dev", str(tmp_path / "dev.tsv")]
    )
    assert no_data.exit_code == 2 and "--train" in no_data.stderr


def test_recovery_on_soft_labels(tmp_path):
    from promptft.recipes.prune import read_soft_labels

    path = tmp_path / "soft_labels.jsonl"
    path.write_text(
        json.dumps({"teachers": []}) + "\n"
        + "".join(json.dumps({"fields": ex.fields, "logits": [-0.1, -2.4]}) + "\n" for ex in DEV)
        + '{"fields": {"te'
    )  # fmt: skip
    examples = read_soft_labels(tmp_path, temperature=2.0)
    assert len(examples) == 6
    p = torch.softmax(torch.tensor([-0.1, -2.4]) / 2, -1).tolist()
    assert examples[0].label == pytest.approx(tuple(p))
    clf = llama_clf()
    prune_classifier(clf, DEV, 0.5)
    from promptft.objectives import SoftLabel
    from promptft.training import Trainer

    cfg = TrainConfig(learning_rate=1e-3, batch_size=3, max_steps=2, eval_every=2, progress=False)
    Trainer(clf, cfg, objective=SoftLabel(clf.labels, 2.0)).train(examples, DEV)
    assert clf.predict_proba(DEV).shape == (6, 2)
