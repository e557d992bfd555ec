"""A max_length longer than the model reads is cut to the model's limit (with a warning), never an index error."""

import json
import logging

import numpy as np
import pytest
from transformers import BertConfig, BertForSequenceClassification, GPT2Config, RobertaConfig, T5Config
from typer.testing import CliRunner

from promptft import ChannelClassifier, HeadClassifier, PromptClassifier
from promptft.cli import app
from promptft.errors import ModelError
from promptft.models import backbone_from_model
from promptft.models.limits import fit_max_length, position_limit
from tiny import minilm_tokenizer, tiny_bert, tiny_llama, tiny_roberta

LONG = "the plot was fine and the acting was bad " * 120  # ~1,000 tokens: longer than any tiny model reads
WORDS = {"negative": "terrible", "positive": "great"}


def test_position_limit_reads_config_and_tokenizer():
    assert position_limit(BertConfig(max_position_embeddings=256), minilm_tokenizer()) == 256  # config < 512
    assert position_limit(BertConfig(max_position_embeddings=1024), minilm_tokenizer()) == 512  # tokenizer
    assert position_limit(GPT2Config(n_positions=1024)) == 1024
    assert position_limit(RobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512  # offset ids
    assert position_limit(T5Config()) is None  # relative positions: no limit declared


def test_fit_max_length_counts_virtual_tokens_and_refuses_a_prompt_that_leaves_no_room():
    config = BertConfig(max_position_embeddings=256)
    assert fit_max_length(100, config) == 100 and fit_max_length(300, config) == 256
    assert fit_max_length(300, config, virtual_tokens=20) == 236
    assert fit_max_length(300, T5Config()) == 300  # no declared limit: kept
    with pytest.raises(ModelError, match="use fewer virtual tokens"):
        fit_max_length(300, BertConfig(max_position_embeddings=16), virtual_tokens=20)


@pytest.mark.parametrize(
    ("factory", "kind", "limit"), [(tiny_bert, "masked", 256), (tiny_roberta, "masked", 259)]
)
def test_prompt_classifier_cuts_max_length_to_the_model(factory, kind, limit, caplog):
    model, tok = factory()
    clf = PromptClassifier(
        backbone_from_model(model, tok, kind), "{text} It was {mask}.", WORDS, max_length=1024
    )
    with caplog.at_level(logging.WARNING, logger="promptft.models.limits"):
        proba = clf.predict_proba([LONG, "great"])  # 1024 positions would index past the position table
    assert clf.max_length == limit and proba.shape == (2, 2)
    assert len(clf.encoder.encode({"text": LONG}).input_ids) == limit
    assert not caplog.records or f"cut to {limit}" in caplog.text  # warned once per model, maybe earlier


def test_channel_and_demonstrations_fit_the_model():
    from promptft.prompts.demonstrations import DemonstrationSettings

    model, tok = tiny_llama()
    model.config.max_position_embeddings = 128
    backbone = backbone_from_model(model, tok, "causal")
    channel = ChannelClassifier(backbone, "It was {mask}.\n{text}", WORDS, max_length=512)
    demos = PromptClassifier(
        backbone, "{text} It was {mask}.", WORDS, max_length=512, demonstrations=DemonstrationSettings()
    )
    assert channel.max_length == demos.max_length == 128
    assert demos.encoder.max_length == channel.encoder.max_length == 128
    assert len(channel.encoder.encode_all({"text": LONG}).input_ids) <= 128


def test_head_classifier_cuts_max_length_to_the_model():
    tok = minilm_tokenizer()
    config = BertConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=128, num_labels=2,
    )  # fmt: skip
    clf = HeadClassifier(
        BertForSequenceClassification(config).eval(), tok, ["negative", "positive"], max_length=512
    )
    assert clf.max_length == 128
    assert clf.predict_proba([LONG, "great"]).shape == (2, 2)


@pytest.mark.parametrize("adapter", ["prompt_tuning", "p_tuning"])
def test_soft_prompt_virtual_tokens_take_positions(adapter, tmp_path):
    from promptft.adapters import adapter_settings
    from promptft.classifiers import load_classifier
    from promptft.models import load_backbone

    model, tok = tiny_bert()
    model.save_pretrained(tmp_path / "base")  # a saved classifier names its base model by path
    tok.save_pretrained(tmp_path / "base")
    backbone = load_backbone(str(tmp_path / "base"), kind="masked", device="cpu")
    clf = PromptClassifier(backbone, "{text} It was {mask}.", WORDS, max_length=512)
    clf.set_finetune(adapter_settings(adapter, num_virtual_tokens=20))
    assert clf.max_length == clf.encoder.max_length == 256 - 20
    before = clf.predict_proba([LONG, "great"])  # the text and 20 virtual tokens fill the 256 positions
    clf.save_pretrained(tmp_path / "clf")
    loaded = load_classifier(tmp_path / "clf")
    assert loaded.max_length == 236
    np.testing.assert_allclose(loaded.predict_proba([LONG, "great"]), before, atol=1e-5)


def test_chat_reads_no_more_than_the_model(tmp_path, caplog):
    """Chat training, perplexity and the generation window are cut to GPT-2's 64 positions: before, a
    conversation longer than that failed with an index error in the position table."""
    import torch
    from chat_tiny import chatml_tokenizer
    from transformers import GPT2LMHeadModel

    from promptft.chat.data import Conversation
    from promptft.chat.evaluate import perplexity
    from promptft.chat.generate import GenerationSettings, context_window, fit_history
    from promptft.chat.model import ChatModel
    from promptft.chat.templates import resolve_template

    tok = chatml_tokenizer()
    torch.manual_seed(0)
    ends = {"bos_token_id": tok.eos_token_id, "eos_token_id": tok.eos_token_id}
    config = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=4, **ends)
    chat = ChatModel(GPT2LMHeadModel(config).eval(), tok, resolve_template(tok), base_model="tiny-chat-gpt2")
    long = Conversation([{"role": "user", "content": "hi"}, {"role": "assistant", "content": LONG[:600]}])
    with caplog.at_level(logging.WARNING, logger="promptft.models.limits"):
        assert context_window(chat, GenerationSettings(context_window=4096)) == 64
        result = perplexity(chat, [long], max_length=1024)
    assert "context_window=4096 is more than tiny-chat-gpt2 reads (64 tokens)" in caplog.text
    assert "max_length=1024 is more than tiny-chat-gpt2 reads" in caplog.text
    assert result["truncated"] == 1 and np.isfinite(result["loss"]) and result["tokens"] > 0
    assert context_window(chat, GenerationSettings()) == 64  # the model's own limit by default
    kept, ids = fit_history(chat, [{"role": "user", "content": LONG}], GenerationSettings(max_new_tokens=16))
    assert 0 < len(ids) <= 64 - 16

    model_dir = tmp_path / "base"
    chat.model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    data = tmp_path / "train.jsonl"
    data.write_text((json.dumps({"messages": long.messages}) + "\n") * 4)
    args = [
        "chat-train",
        "--train",
        str(data),
        "--model",
        str(model_dir),
        "--finetune",
        "full",
        "--max-steps",
        "2",
    ]
    args += ["--max-length", "1024", "--output", str(tmp_path / "run"), "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["max_length"] == 64
    assert json.loads((tmp_path / "run" / "run.json").read_text())["data"]["max_length"] == 64
