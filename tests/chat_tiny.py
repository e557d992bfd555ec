"""Tiny chat models for the tests: the small BPE tokenizer with ChatML tokens and template (like
SmolLM2-Instruct's), and a randomly initialised Llama sized to it."""

from __future__ import annotations

import copy
import functools

import torch

from tiny import bpe_tokenizer

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@functools.cache
def _chatml_tokenizer():
    tok = copy.deepcopy(bpe_tokenizer())
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = CHATML
    tok.eos_token = "<|im_end|>"
    return tok


def chatml_tokenizer():
    return copy.deepcopy(_chatml_tokenizer())


def base_tokenizer():
    """No chat template: a base model's tokenizer."""
    tok = copy.deepcopy(bpe_tokenizer())
    tok.chat_template = None
    return tok


def tiny_chat_llama(tok=None, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tok or chatml_tokenizer()
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(cfg).eval(), tok


def save_tiny_chat_model(folder, tok=None, seed: int = 0):
    model, tok = tiny_chat_llama(tok, seed)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
