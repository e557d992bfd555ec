import pytest

from promptft.errors import TemplateError, VerbalizerError
from promptft.prompts import PromptEncoder, Template, Verbalizer
from tiny import bpe_tokenizer, minilm_tokenizer


def test_template_fields_and_slot():
    t = Template("{premise} ? {mask} , {hypothesis}")
    assert t.fields == ("premise", "hypothesis")
    assert t.space_before_slot and t.has_text_after_slot
    assert Template("Review: {text}\nSentiment: {mask}").space_before_slot
    assert not Template("{text}\n{mask}").space_before_slot


def test_template_literal_braces():
    t = Template("{{json}} {text} -> {mask}")
    assert t.render({"text": "x"}) == "{json} x -> {mask}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{text} It was great.", "no \\{mask\\} slot"),
        ("{text} {mask} {mask}", "2 \\{mask\\} slots"),
        ("It was {mask}.", "no input field"),
        ("{text} {mask", "unmatched brace"),
        ("{te xt} {mask}", "bad placeholder"),
        ("", "empty"),
    ],
)
def test_template_errors(text, message):
    with pytest.raises(TemplateError, match=message):
        Template(text)


def test_unknown_field_error_names_the_fix():
    with pytest.raises(TemplateError, match="map a column"):
        Template("{sentence} It was {mask}.").check_fields({"text"})


def test_verbalizer_errors():
    with pytest.raises(VerbalizerError, match="no label word"):
        Verbalizer({"pos": "great", "neg": []})
    with pytest.raises(VerbalizerError, match="used by both"):
        Verbalizer({"pos": "great", "neg": ["bad", "Great"]})
    with pytest.raises(VerbalizerError, match="no label words given"):
        Verbalizer({})
    with pytest.raises(VerbalizerError, match="token_reduction"):
        Verbalizer({"a": "x", "b": "y"}, token_reduction="max")


def test_verbalizer_labels_check():
    v = Verbalizer({"pos": "great", "neg": "terrible"})
    v.check_labels(["pos", "neg"])
    with pytest.raises(VerbalizerError, match="'neutral'"):
        v.check_labels(["pos", "neutral"])


def test_word_tokens_carry_the_leading_space():
    tok = bpe_tokenizer()
    v = Verbalizer({"pos": "great", "neg": "terrible"})
    spaced = v.tokenize(tok, leading_space=True)
    bare = v.tokenize(tok, leading_space=False)
    assert tok.convert_ids_to_tokens(list(spaced.word_ids[0]))[0].startswith("Ġ")
    assert spaced.word_ids != bare.word_ids


def test_multi_token_word_is_kept_whole():
    tok = bpe_tokenizer()
    words = Verbalizer({"pos": "wonderful fantastic", "neg": "bad"}).tokenize(tok, True)
    assert len(words.word_ids[0]) >= 2
    assert tok.decode(list(words.word_ids[0])).strip() == "wonderful fantastic"


def test_unrepresentable_word_is_rejected():
    tok = minilm_tokenizer()  # WordPiece: characters outside its vocab become [UNK]
    with pytest.raises(VerbalizerError, match="cannot be represented"):
        Verbalizer({"pos": "great", "neg": "\u2603\u2604"}).tokenize(tok, True)


def test_truncation_cuts_the_text_not_the_template():
    tok = bpe_tokenizer()
    t = Template("Review: {text} It was {mask}.")
    enc = PromptEncoder(tok, t, slot_text=None, max_length=12)
    long_text = "the movie was good and the acting was bad " * 10
    out = enc.encode({"text": long_text})
    assert out.truncated and len(out.input_ids) <= 12
    decoded = tok.decode(list(out.input_ids))
    assert decoded.startswith("Review: the movie") and decoded.endswith(" It was")


def test_truncation_keeps_the_mask_for_masked_models():
    tok = bpe_tokenizer()
    enc = PromptEncoder(tok, Template("{text} It was {mask}."), slot_text="<mask>", max_length=10, reserve=1)
    out = enc.encode({"text": "the movie was good and the acting was bad " * 5})
    assert len(out.input_ids) <= 9
    assert out.input_ids[out.slot_index] == tok.mask_token_id
    assert tok.decode(list(out.input_ids[out.slot_index + 1 :])) == "."


def test_truncation_shortens_the_longest_field():
    tok = bpe_tokenizer()
    enc = PromptEncoder(tok, Template("{premise} ? {mask} , {hypothesis}"), slot_text="<mask>", max_length=16)
    out = enc.encode(
        {"premise": "the movie was good and the acting was bad " * 5, "hypothesis": "it was good"}
    )
    assert len(out.input_ids) <= 16
    assert tok.decode(list(out.input_ids)).endswith(", it was good")


def test_truncation_of_characters_split_into_several_tokens():
    """Stacked combining marks (GoEmotions has such "zalgo" comments): each mark is two byte-level tokens
    sharing one character offset. Every budget must be met; cutting at the last kept token's end looped
    without shortening the text once a cut fell between the two tokens of a mark."""
    tok = bpe_tokenizer()
    zalgo = "Bold of you to " + "".join("ase"[i % 3] + "\u0322\u0318\u031c\u0339" for i in range(12))
    offsets = tok(zalgo, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    assert len(set(offsets)) < len(offsets)  # several tokens share one character's offsets
    template = Template("{text}\nDoes this comment express {label}? {mask}")
    for max_length in range(30, 90):
        enc = PromptEncoder(tok, template, slot_text=None, max_length=max_length)
        out = enc.encode({"text": zalgo, "label": "annoyance"})
        assert out.truncated and len(out.input_ids) <= max_length
        assert tok.decode(list(out.input_ids)).endswith("\nDoes this comment express annoyance?")


def test_template_longer_than_max_length_errors():
    tok = bpe_tokenizer()
    enc = PromptEncoder(
        tok,
        Template("Review of the movie and the acting: {text} It was {mask}."),
        slot_text=None,
        max_length=3,
    )
    with pytest.raises(TemplateError, match="raise max_length"):
        enc.encode({"text": "good"})


def test_causal_prompt_drops_text_after_slot_and_trailing_space():
    tok = bpe_tokenizer()
    enc = PromptEncoder(tok, Template("{text} It was {mask}."), slot_text=None, max_length=64)
    out = enc.encode({"text": "I loved it"})
    assert tok.decode(list(out.input_ids)) == "I loved it It was"
    assert out.slot_index == len(out.input_ids)


# issue 16


def test_text_templates_read_backslash_n_and_t_and_round_trip():
    from promptft.prompts.template import escape_template, unescape_template

    assert unescape_template(r"{text}\nTopic:\t{mask}") == "{text}\nTopic:\t{mask}"
    assert unescape_template(r"a\\n {text} {mask} \d") == "a\\n {text} {mask} \\d"  # \\ is a backslash
    for text in ["{text}\nTopic: {mask}", "a\\n\\\\ {text}\t{mask}", "{text} \\d {mask}"]:
        assert unescape_template(escape_template(text)) == text


def test_stray_brace_hint_shows_doubled_braces():
    for bad in ("{text} It was {mask} {", "{te xt} {mask}"):
        with pytest.raises(TemplateError, match=r"\{\{ for \{, \}\} for \}"):
            Template(bad)


def test_overlong_label_word_is_blamed_not_the_template():
    tok = bpe_tokenizer()
    enc = PromptEncoder(tok, Template("{text} It was {mask}."), slot_text=None, max_length=16, reserve=40)
    with pytest.raises(TemplateError, match="longest label word takes 41 tokens") as err:
        enc.encode({"text": "a fine film"})
    assert "template alone" not in str(err.value)
