"""Tiny randomly initialised models and a real byte-level BPE tokenizer, built offline in seconds."""

from __future__ import annotations

import functools

import torch

CORPUS = [
    "It was great. It was terrible. The movie was good and the acting was bad.",
    "A wonderful, moving film. A boring, awful mess. I loved it. I hated it.",
    "Review: the plot was fine. Sentiment: positive. Sentiment: negative.",
    "Question: who wrote it? Answer: a person. Topic: sports, world, business, science.",
    "yes no maybe great terrible good bad okay wonderful awful fantastic horrible",
] * 20


@functools.cache
def bpe_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>", "<mask>", "<extra_id_0>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        mask_token="<mask>",
        additional_special_tokens=["<extra_id_0>"],
    )


def tiny_llama(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = bpe_tokenizer()
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
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(cfg).eval(), tok


def tiny_gemma(seed: int = 0):
    """Gemma-2 style: final logit soft-capping, which the backbone must apply too."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    tok = bpe_tokenizer()
    torch.manual_seed(seed)
    cfg = Gemma2Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=256,
        pad_token_id=tok.pad_token_id,
        final_logit_softcapping=5.0,
    )
    return Gemma2ForCausalLM(cfg).eval(), tok


def tiny_roberta(seed: int = 0):
    from transformers import RobertaConfig, RobertaForMaskedLM

    tok = bpe_tokenizer()
    torch.manual_seed(seed)
    cfg = RobertaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=260,
        pad_token_id=tok.pad_token_id,
    )
    return RobertaForMaskedLM(cfg).eval(), tok


def minilm_tokenizer():
    """A real WordPiece (BERT) tokenizer, shipped with the offline MiniLM package."""
    from transformers import AutoTokenizer

    from promptft.models.registry import REGISTRY, package_dir

    entry = REGISTRY["minilm-l6"]
    return AutoTokenizer.from_pretrained(package_dir(entry) / entry.subdir)


def tiny_bert(seed: int = 0):
    from transformers import BertConfig, BertForMaskedLM

    tok = minilm_tokenizer()
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=256,
        pad_token_id=tok.pad_token_id,
    )
    return BertForMaskedLM(cfg).eval(), tok


def tiny_t5(seed: int = 0):
    from transformers import T5Config, T5ForConditionalGeneration

    tok = bpe_tokenizer()
    torch.manual_seed(seed)
    cfg = T5Config(
        vocab_size=len(tok),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.pad_token_id,
    )
    return T5ForConditionalGeneration(cfg).eval(), tok


def tiny_gemma3(seed: int = 0):
    """Gemma 3 (text): sliding-window and global layers, a hybrid cache; its own trap for prefix tuning."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tok = bpe_tokenizer()
    torch.manual_seed(seed)
    cfg = Gemma3TextConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=256,
        sliding_window=4,
        pad_token_id=tok.pad_token_id,
    )
    return Gemma3ForCausalLM(cfg).eval(), tok
