"""Channel scoring (Min et al. 2022): log P(text | label) from a causal LM, zero-shot and through LoRA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from promptft import LoraSettings, load_classifier
from promptft.classifiers import ChannelClassifier, channel_template
from promptft.data import Example
from promptft.errors import ConfigError, TemplateError
from promptft.models import backbone_from_model
from promptft.training import TrainConfig
from tiny import tiny_llama, tiny_roberta

TEMPLATE = "Sentiment: {mask}\nReview: {text}"
WORDS = {"negative": "terrible", "positive": ["great", "wonderful fantastic"]}
DATA = [
    Example({"text": "I loved it"}, "positive"),
    Example({"text": "a wonderful film"}, "positive"),
    Example({"text": "good acting and a fine plot"}, "positive"),
    Example({"text": "great fun"}, "positive"),
    Example({"text": "I hated it"}, "negative"),
    Example({"text": "an awful mess"}, "negative"),
    Example({"text": "boring and bad"}, "negative"),
    Example({"text": "terrible plot"}, "negative"),
]
STEPS = TrainConfig(learning_rate=1e-2, max_steps=4, eval_every=2, batch_size=4, progress=False)


def make(**kw):
    model, tok = tiny_llama()
    return ChannelClassifier(backbone_from_model(model, tok, "causal"), TEMPLATE, WORDS, max_length=64, **kw)


def by_hand(net, tok, word: str, text: str) -> float:
    """log P(text | "Sentiment: <word>\\nReview: ") from the full [seq, vocab] logits of one sequence."""
    prefix = f"Sentiment: {word}\nReview: "
    ids = tok(prefix + text, return_offsets_mapping=True)
    start = len(prefix)
    logp = net(input_ids=torch.tensor([ids["input_ids"]])).logits[0].float().log_softmax(-1)
    return sum(
        logp[i - 1, token].item()
        for i, (token, (s, e)) in enumerate(zip(ids["input_ids"], ids["offset_mapping"], strict=True))
        if i > 0 and e > start and e > s
    )


def expected(net, tok, text: str) -> list[float]:
    out = []
    for words in ([WORDS["negative"]], WORDS["positive"]):
        scores = torch.tensor([by_hand(net, tok, w, text) for w in words])
        out.append(torch.logsumexp(scores, 0).item())
    return out


@pytest.mark.parametrize("finetune", ["none", "lora"])
def test_channel_scores_equal_a_hand_computation_from_the_full_logits(finetune):
    clf = make()
    clf.set_finetune(finetune if finetune == "none" else LoraSettings(r=4))
    if finetune == "lora":  # LoRA starts as a no-op (B = 0): make it count, so the test sees peft's forward
        with torch.no_grad():
            for name, param in clf.module.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))
    net, tok = clf.backbone.net, clf.backbone.tokenizer
    texts = [ex.fields["text"] for ex in DATA[:4]]  # different lengths: padding in one batch
    with torch.no_grad():
        scores = clf.module(clf.encode([Example({"text": t}) for t in texts]))
        hand = torch.tensor([expected(net, tok, t) for t in texts])
    assert scores.shape == (4, 2)
    torch.testing.assert_close(scores, hand, atol=1e-4, rtol=1e-4)
    if finetune == "lora":
        with clf.peft_model.disable_adapter(), torch.no_grad():
            plain = torch.tensor([expected(net, tok, t) for t in texts])
        assert not torch.allclose(scores, plain, atol=1e-3)  # the adapter is on the path


def test_only_the_text_tokens_are_scored_and_the_text_is_cut_never_the_label_word():
    clf = make()
    tok = clf.backbone.tokenizer
    (short,) = clf.encode([Example({"text": "I loved it"})])
    for prompt, word in zip(short.prompts, ["terrible", "great", "wonderful fantastic"], strict=True):
        assert tok.decode(list(prompt.input_ids)) == f"Sentiment: {word}\nReview: I loved it"
        assert tok.decode([prompt.input_ids[i] for i in prompt.targets]).strip() == "I loved it"
    (long,) = clf.encode([Example({"text": "the movie was good and the acting was bad " * 30})])
    for prompt, word in zip(long.prompts, ["terrible", "great", "wonderful fantastic"], strict=True):
        assert prompt.truncated and len(prompt.input_ids) <= 64
        text = tok.decode(list(prompt.input_ids))
        assert text.startswith(f"Sentiment: {word}\nReview: the movie was good")
    assert len({tok.decode([p.input_ids[i] for i in p.targets]) for p in long.prompts}) == 1  # same text cut


def test_channel_lora_trains_only_adapter_weights_and_round_trips(tmp_path):
    model, tok = tiny_llama()
    model.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    clf = ChannelClassifier.from_model(
        str(tmp_path / "base"), TEMPLATE, WORDS, finetune=LoraSettings(r=4), device="cpu", max_length=64
    )
    trainable = {n for n, p in clf.module.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    before = {n: p.detach().clone() for n, p in clf.module.named_parameters()}
    result = clf.fit(DATA, DATA[:4], STEPS.replace(eval_at_start=False, early_stopping_patience=None))
    assert result.steps == 4
    after = dict(clf.module.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n].detach())}
    assert changed and changed <= trainable
    probs = clf.predict_proba(DATA)
    assert probs.shape == (8, 2)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    clf.save_pretrained(tmp_path / "channel")
    again = load_classifier(tmp_path / "channel", device="cpu")
    assert isinstance(again, ChannelClassifier) and again.template.text == TEMPLATE
    np.testing.assert_allclose(again.predict_proba(DATA), probs, atol=1e-5)
    assert again.predict(DATA) == clf.predict(DATA)


def test_zero_shot_channel_round_trip(tmp_path):
    clf = make()
    clf.set_finetune("none")
    probs = clf.predict_proba(DATA[:3])
    clf.save_pretrained(tmp_path / "zs")
    # a frozen classifier names its base model: point it at a saved copy
    model, tok = tiny_llama()
    model.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    config = (tmp_path / "zs" / "promptft_config.json").read_text()
    (tmp_path / "zs" / "promptft_config.json").write_text(
        config.replace(f'"base_model": "{clf.base_model}"', f'"base_model": "{tmp_path / "base"}"')
    )
    again = load_classifier(tmp_path / "zs", device="cpu")
    np.testing.assert_allclose(again.predict_proba(DATA[:3]), probs, atol=1e-5)


def test_channel_template_turns_a_direct_prompt_around():
    assert channel_template("Review: {text}\nSentiment: {mask}") == TEMPLATE
    assert channel_template("{text} Answer type: {mask}") == "Answer type: {mask}\n{text}"
    with pytest.raises(TemplateError, match="no cue"):
        channel_template("{text}{mask}")


def test_channel_needs_a_causal_lm_and_text_after_the_label():
    model, tok = tiny_roberta()
    with pytest.raises(ConfigError, match="causal LM"):
        ChannelClassifier(backbone_from_model(model, tok, "masked"), TEMPLATE, WORDS)
    model, tok = tiny_llama()
    with pytest.raises(TemplateError, match="no field after"):
        ChannelClassifier(backbone_from_model(model, tok, "causal"), "{text} It was {mask}.", WORDS)


def test_cached_frozen_layers_give_the_same_channel_scores():
    clf = make()
    clf.set_finetune(LoraSettings(r=4, top_layers=1))
    with torch.no_grad():
        for name, param in clf.module.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))
    encoded = clf.encode(DATA[:4])
    with torch.no_grad():
        whole = clf.module(encoded)
        assert clf.enable_training_cache()
        cached = clf.module(encoded)
        clf.disable_training_cache()
    torch.testing.assert_close(cached, whole, atol=1e-5, rtol=1e-5)


def test_the_output_head_sees_only_the_positions_that_predict_text_tokens():
    clf = make()
    clf.set_finetune("none")
    encoded = clf.encode(DATA[:3])
    shapes = []
    head = clf.backbone.model.get_output_embeddings()
    handle = head.register_forward_hook(lambda module, args, out: shapes.append(tuple(out.shape)))
    try:
        with torch.no_grad():
            clf.module(encoded)
    finally:
        handle.remove()
    n_targets = sum(len(p.targets) for e in encoded for p in e.prompts)
    assert shapes == [(n_targets, head.out_features)]
