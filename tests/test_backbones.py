"""The correctness contract: backbone scores == the full model's log-probabilities at the label-word ids."""

import pytest
import torch

from promptft.errors import ModelError, TemplateError
from promptft.models import backbone_from_model
from promptft.prompts import Template, Verbalizer
from tiny import tiny_bert, tiny_gemma, tiny_llama, tiny_roberta, tiny_t5

TEXTS = ["I loved it", "A boring, awful mess. I hated it and the acting was bad", "fine"]
WORDS = {"neg": ["terrible", "awful mess"], "pos": "great"}  # "awful mess" is two tokens


def _setup(factory, kind, template="{text} It was {mask}."):
    model, tok = factory()
    backbone = backbone_from_model(model, tok, kind)
    t = Template(template)
    words = Verbalizer(WORDS).tokenize(tok, backbone.leading_space(t))
    encoder = backbone.make_encoder(t, max_length=64, reserve=words.max_tokens - 1)
    prompts = [encoder.encode({"text": x}) for x in TEXTS]
    return model, tok, backbone, words, prompts


def _full_causal(model, ids):
    return torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)


@pytest.mark.parametrize("factory", [tiny_llama, tiny_gemma])
def test_causal_scores_equal_full_logits(factory):
    model, tok, backbone, words, prompts = _setup(factory, "causal")
    assert any(len(w) > 1 for w in words.word_ids), "test needs a multi-token word"
    with torch.no_grad():
        scores = backbone.score(prompts, words)
        for e, p in enumerate(prompts):
            for j, word in enumerate(words.word_ids):
                full = _full_causal(model, list(p.input_ids) + list(word))
                n = len(p.input_ids)
                expected = sum(full[n - 1 + t, tok_id] for t, tok_id in enumerate(word))
                torch.testing.assert_close(scores[e, j], expected, atol=1e-4, rtol=1e-4)


def test_causal_mean_reduction_divides_by_length():
    model, tok, backbone, words, prompts = _setup(tiny_llama, "causal")
    with torch.no_grad():
        total = backbone.score(prompts, words, "sum")
        mean = backbone.score(prompts, words, "mean")
    lengths = torch.tensor([len(w) for w in words.word_ids], dtype=torch.float)
    torch.testing.assert_close(mean, total / lengths)


@pytest.mark.parametrize(
    ("factory", "kind"), [(tiny_llama, "causal"), (tiny_gemma, "causal"), (tiny_roberta, "masked")]
)
def test_one_forward_through_the_model_with_the_head_at_scoring_positions_only(factory, kind):
    """The model's own forward runs (so peft, DDP and ONNX see it), but the head never sees the sequence axis."""
    model, tok, backbone, words, prompts = _setup(factory, kind)
    calls, shapes = [], []
    top = model.register_forward_hook(lambda m, i, o: calls.append(tuple(o.logits.shape)))
    head = backbone.head if kind == "masked" else model.get_output_embeddings()
    inner = head.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    with torch.no_grad():
        backbone.score(prompts, words)
    top.remove()
    inner.remove()
    assert len(calls) == 1, "the model's forward must run exactly once"
    assert len(shapes) == 1 and len(shapes[0]) == 2  # [n_positions, vocab], no sequence axis
    assert shapes[0][0] < len(prompts) * max(len(p.input_ids) for p in prompts)


def test_causal_padding_does_not_change_scores():
    model, tok, backbone, words, prompts = _setup(tiny_llama, "causal")
    with torch.no_grad():
        batched = backbone.score(prompts, words)
        single = torch.cat([backbone.score([p], words) for p in prompts])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("factory", [tiny_roberta, tiny_bert])
def test_masked_scores_equal_full_logits(factory):
    model, tok, backbone, words, prompts = _setup(factory, "masked")
    assert backbone.head is not None, "MLM head should be recognised for BERT/RoBERTa"
    with torch.no_grad():
        scores = backbone.score(prompts, words)
        for e, p in enumerate(prompts):
            s = p.slot_index
            for j, word in enumerate(words.word_ids):
                ids = list(p.input_ids[:s]) + [tok.mask_token_id] * len(word) + list(p.input_ids[s + 1 :])
                full = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
                expected = sum(full[s + t, tok_id] for t, tok_id in enumerate(word))
                torch.testing.assert_close(scores[e, j], expected, atol=1e-4, rtol=1e-4)


def test_seq2seq_scores_equal_full_logits():
    model, tok, backbone, words, prompts = _setup(tiny_t5, "seq2seq")
    sentinel = tok.convert_tokens_to_ids("<extra_id_0>")
    assert sentinel in prompts[0].input_ids
    with torch.no_grad():
        scores = backbone.score(prompts, words)
        for e, p in enumerate(prompts):
            for j, word in enumerate(words.word_ids):
                dec = [model.config.decoder_start_token_id, sentinel] + list(word)
                logits = model(
                    input_ids=torch.tensor([p.input_ids]), decoder_input_ids=torch.tensor([dec[:-1]])
                ).logits
                full = torch.log_softmax(logits[0].float(), -1)
                expected = sum(full[1 + t, tok_id] for t, tok_id in enumerate(word))
                torch.testing.assert_close(scores[e, j], expected, atol=1e-4, rtol=1e-4)


def test_scores_are_differentiable():
    model, tok, backbone, words, prompts = _setup(tiny_llama, "causal")
    backbone.score(prompts, words).sum().backward()
    assert model.model.layers[0].self_attn.q_proj.weight.grad is not None


def test_causal_template_starting_with_slot_is_rejected():
    model, tok = tiny_llama()
    backbone = backbone_from_model(model, tok, "causal")
    with pytest.raises(TemplateError, match="move \\{mask\\} to the end"):
        backbone.make_encoder(Template("{mask}: {text}"), 32)


def test_unknown_kind_is_rejected():
    model, tok = tiny_llama()
    with pytest.raises(ModelError, match="kind"):
        backbone_from_model(model, tok, "vision")


@pytest.mark.parametrize("factory", [tiny_llama, tiny_gemma])
def test_prefix_cache_gives_the_same_scores_and_gradients(factory):
    """LoRA on the top layer only: caching the frozen bottom layer must change nothing but speed."""
    from promptft.adapters import LoraSettings, apply_lora

    model, tok, backbone, words, prompts = _setup(factory, "causal")
    apply_lora(model, LoraSettings(r=2, top_layers=1))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)  # peft initialises B to zero; make the adapter matter
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all("layers.1." in n for n, p in model.named_parameters() if p.requires_grad)

    def run():
        for p in trainable:
            p.grad = None
        scores = backbone.score(prompts, words)
        scores.sum().backward()
        return scores.detach(), [p.grad.clone() for p in trainable]

    plain_scores, plain_grads = run()
    assert backbone.enable_prefix_cache()
    assert backbone.prefix_cache.split == 1
    cached_scores, cached_grads = run()
    again_scores, _ = run()  # served from the cache this time
    backbone.disable_prefix_cache()
    assert len(backbone.prefix_cache.store if backbone.prefix_cache else []) == 0
    torch.testing.assert_close(cached_scores, plain_scores, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again_scores, plain_scores, atol=1e-5, rtol=1e-5)
    for a, b in zip(cached_grads, plain_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_prefix_cache_refused_when_bottom_layers_train():
    model, tok, backbone, words, prompts = _setup(tiny_llama, "causal")
    assert not backbone.enable_prefix_cache()  # full fine-tuning: embeddings train


def test_prefix_cache_is_computed_without_dropout():
    from promptft.adapters import LoraSettings, apply_lora

    model, tok, backbone, words, prompts = _setup(tiny_llama, "causal")
    model.config.attention_dropout = 0.5
    for layer in model.model.layers:
        layer.self_attn.attention_dropout = 0.5
    apply_lora(model, LoraSettings(r=2, top_layers=1))
    model.train()
    assert backbone.enable_prefix_cache()
    backbone.score(prompts, words)
    cached = dict(backbone.prefix_cache.store)
    backbone.prefix_cache.store.clear()
    model.eval()
    backbone.score(prompts, words)
    for row, hidden in cached.items():
        torch.testing.assert_close(hidden, backbone.prefix_cache.store[row])
    assert model.training is False
