"""ONNX export: the exported graph scores like PyTorch (causal, masked, seq2seq prompts with multi-token
label words; LoRA merged; multi-label calibration; the head baseline), int8 variants, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from promptft import HeadClassifier, LoraSettings, PromptClassifier
from promptft.cli import app
from promptft.deploy.onnx_export import export_onnx
from promptft.deploy.onnx_runtime import ONNX_CONFIG, ONNX_MODEL, OnnxClassifier, ScoringPlan
from promptft.deploy.quantize import quantize_torch_int8, state_size_bytes
from promptft.errors import PromptFTError
from promptft.models import backbone_from_model
from promptft.objectives import MultiLabel
from tiny import minilm_tokenizer, tiny_bert, tiny_llama, tiny_roberta, tiny_t5

# "wonderful film" takes several tokens: extra rows (causal, seq2seq) or extra masks (masked)
WORDS = {"negative": "terrible", "positive": ["great", "wonderful film"]}
TEXTS = [
    "I loved it",
    "a wonderful film, with great acting and a plot that was good",
    "I hated it",
    "bad",
    "boring and bad, an awful mess",
]
TOL = 1e-4


def prompt_clf(factory, template="{text} It was {mask}.", words=WORDS, **kw):
    model, tok = factory()
    return PromptClassifier(backbone_from_model(model, tok), template, words, max_length=64, **kw)


@pytest.mark.parametrize(
    "factory",
    [tiny_llama, tiny_roberta, tiny_bert, tiny_t5],
    ids=["causal", "masked", "masked-wordpiece", "seq2seq"],
)
def test_onnx_scores_equal_pytorch(tmp_path, factory):
    clf = prompt_clf(factory)
    assert max(len(w) for w in clf.words.word_ids) > 1  # the multi-token path is exercised
    reference = clf.logits_encoded(clf.encode(TEXTS), batch_size=4).numpy()
    export_onnx(clf, tmp_path / "onnx")
    runtime = OnnxClassifier(tmp_path / "onnx")
    for batch_size in (1, 4, 32):  # no padding, padding, one batch
        got = runtime.logits_encoded(runtime.encode(TEXTS), batch_size=batch_size).numpy()
        assert np.abs(got - reference).max() < TOL, (batch_size, got, reference)
    assert runtime.predict(TEXTS) == clf.predict(TEXTS)
    config = json.loads((tmp_path / "onnx" / ONNX_CONFIG).read_text())
    assert config["kind"] == clf.backbone.kind and config["labels"] == ["negative", "positive"]
    assert (tmp_path / "onnx" / "tokenizer").is_dir()


def test_a_seq2seq_graph_takes_decoder_inputs(tmp_path):
    clf = prompt_clf(tiny_t5)
    export_onnx(clf, tmp_path / "onnx")
    names = [i.name for i in OnnxClassifier(tmp_path / "onnx").session.get_inputs()]
    assert names == [
        "input_ids",
        "attention_mask",
        "score_rows",
        "score_cols",
        "decoder_input_ids",
        "decoder_attention_mask",
    ]


def test_scoring_plan_adds_a_row_per_multi_token_word():
    plan = ScoringPlan.build("causal", [(5,), (6, 7, 8)], [0, 1])
    assert plan.rows == [[], [6, 7]]
    assert plan.targets == [(0, 5, 0), (1, 6, 1), (2, 7, 1), (3, 8, 1)]
    masked = ScoringPlan.build("masked", [(5,), (6, 7)], [0, 1])
    assert masked.rows == [[1], [2]] and masked.positions == [(0, 0), (1, 0), (1, 1)]


def test_lora_is_merged_and_scores_the_same(tmp_path):
    clf = prompt_clf(tiny_llama)
    clf.set_finetune("lora", LoraSettings(r=2))
    with torch.no_grad():  # a non-zero adapter, so that merging matters
        for name, p in clf.backbone.peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    reference = clf.logits_encoded(clf.encode(TEXTS)).numpy()
    export_onnx(clf, tmp_path / "onnx")
    got = OnnxClassifier(tmp_path / "onnx").logits_encoded(clf.encode(TEXTS)).numpy()
    assert np.abs(got - reference).max() < TOL


def test_multi_label_calibration_is_in_the_graph(tmp_path):
    labels = ["negative", "positive"]
    clf = prompt_clf(tiny_llama, objective=MultiLabel(labels, thresholds=[0.3, 0.6]))
    with torch.no_grad():
        clf.module.calibration.scale.copy_(torch.tensor([2.0, 0.5]))
        clf.module.calibration.bias.copy_(torch.tensor([1.0, -1.0]))
    export_onnx(clf, tmp_path / "onnx")
    runtime = OnnxClassifier(tmp_path / "onnx")
    assert np.abs(runtime.predict_proba(TEXTS) - clf.predict_proba(TEXTS)).max() < TOL
    assert runtime.objective.thresholds == [0.3, 0.6]
    assert runtime.predict(TEXTS) == clf.predict(TEXTS)


def tiny_bert_head():
    from transformers import BertConfig, BertForSequenceClassification

    tok = minilm_tokenizer()
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_labels=2,
    )
    return HeadClassifier(BertForSequenceClassification(cfg).eval(), tok, ["negative", "positive"])


def test_head_classifier_exports_with_token_types(tmp_path):
    clf = tiny_bert_head()
    reference = clf.predict_proba(TEXTS)
    export_onnx(clf, tmp_path / "onnx")
    runtime = OnnxClassifier(tmp_path / "onnx")
    assert "token_type_ids" in runtime.input_names
    for batch_size in (1, 32):
        assert np.abs(runtime.predict_proba(TEXTS, batch_size=batch_size) - reference).max() < TOL


def weight_bytes(path) -> int:
    import onnx
    from onnx import numpy_helper

    return sum(numpy_helper.to_array(t).nbytes for t in onnx.load(str(path)).graph.initializer)


def test_quantized_variants_are_smaller_and_close(tmp_path):
    clf = prompt_clf(tiny_llama)
    reference = clf.predict_proba(TEXTS)
    export_onnx(clf, tmp_path / "fp32")
    export_onnx(clf, tmp_path / "int8", int8=True)
    fp32, int8 = (weight_bytes(tmp_path / name / ONNX_MODEL) for name in ("fp32", "int8"))
    # int8 weights, except the output head and the MLP's down projection (kept fp32 on purpose)
    assert int8 < 0.6 * fp32, (int8, fp32)
    nodes = {
        n.name: n.op_type for n in __import__("onnx").load(str(tmp_path / "int8" / ONNX_MODEL)).graph.node
    }
    assert nodes["/net/model/layers.0/mlp/down_proj/MatMul"] == "MatMul"
    assert nodes["/net/lm_head/MatMul"] == "MatMul"
    assert "MatMulInteger" in nodes.values()
    assert (tmp_path / "int8" / ONNX_MODEL).stat().st_size < (tmp_path / "fp32" / ONNX_MODEL).stat().st_size
    runtime = OnnxClassifier(tmp_path / "int8")
    assert runtime.config["quantization"].startswith("int8")
    assert np.abs(runtime.predict_proba(TEXTS) - reference).max() < 0.05

    export_onnx(clf, tmp_path / "int4", int4=True)
    int4 = OnnxClassifier(tmp_path / "int4")
    assert "MatMulNBits" in {n.op_type for n in __import__("onnx").load(str(int4.model_path)).graph.node}
    assert weight_bytes(int4.model_path) < 0.5 * fp32
    assert np.abs(int4.predict_proba(TEXTS) - reference).max() < 0.05

    before = state_size_bytes(clf.backbone.model)
    quantize_torch_int8(clf)
    assert any("quantized" in type(m).__module__ for m in clf.backbone.model.modules())
    assert state_size_bytes(clf.backbone.model) < before
    assert np.abs(clf.predict_proba(TEXTS) - reference).max() < 0.05


def test_soft_prompts_are_refused_with_a_reason(tmp_path):
    clf = prompt_clf(tiny_llama)
    clf.set_finetune("prompt_tuning")
    with pytest.raises(PromptFTError, match="virtual tokens"):
        export_onnx(clf, tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()


def test_cli_export_then_predict_and_eval_with_onnxruntime(tmp_path):
    clf = prompt_clf(tiny_llama)
    clf.save_pretrained(tmp_path / "run" / "best")
    rows = "sentence\tlabel\n" + "".join(f"{t}\t{i % 2}\n" for i, t in enumerate(TEXTS))
    (tmp_path / "data.tsv").write_text(rows)
    runner = CliRunner()
    done = runner.invoke(
        app, ["export", str(tmp_path / "run"), "--onnx", str(tmp_path / "out.onnx"), "--json"]
    )
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["max_abs_diff"] < 1e-3
    assert (tmp_path / "out.onnx" / ONNX_MODEL).is_file()
    again = runner.invoke(app, ["export", str(tmp_path / "run"), "--onnx", str(tmp_path / "out.onnx")])
    assert again.exit_code == 2 and "already exists" in again.stderr

    for model in (tmp_path / "out.onnx", tmp_path / "out.onnx" / ONNX_MODEL):
        out = tmp_path / f"pred-{model.name}.jsonl"
        done = runner.invoke(app, ["predict", str(model), "-i", str(tmp_path / "data.tsv"), "-o", str(out)])
        assert done.exit_code == 0, done.output
        got = [json.loads(line) for line in out.read_text().splitlines()]
        expected = clf.predict_proba(TEXTS)
        assert [r["pred_label"] for r in got] == clf.predict(TEXTS)
        assert (
            np.abs(np.array([[r["prob_negative"], r["prob_positive"]] for r in got]) - expected).max() < 1e-4
        )
    done = runner.invoke(
        app,
        [
            "eval",
            str(tmp_path / "out.onnx"),
            "-d",
            str(tmp_path / "data.tsv"),
            "--label-map",
            "0=negative,1=positive",
            "--json",
        ],
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["n"] == len(TEXTS)
