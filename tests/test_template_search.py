import json

import pytest
from planted import PlantedBackbone

from promptft import Example
from promptft.errors import ConfigError
from promptft.models import backbone_from_model
from promptft.prompts.template import Template
from promptft.search.templates import (
    SEARCH_FILE,
    generate_templates,
    library_templates,
    load_template_library,
    phrases_from,
    rename_fields,
    search_templates,
    usable_by,
)
from tiny import tiny_llama

WORDS = {"negative": "terrible", "positive": "great"}


def data(n: int, offset: int = 0, field: str = "sentence"):
    return [
        Example({field: f"I {verb} it {i}"}, label)
        for i in range(offset, offset + n)
        for verb, label in (("loved", "positive"), ("hated", "negative"))
    ]


def test_library_loads_and_every_template_has_a_slot_and_a_field():
    library = load_template_library()
    assert {"sentiment", "topic", "question_type", "subjectivity", "nli", "paraphrase"} <= set(library)
    for patterns in library.values():
        assert len(patterns.templates) >= 5
        for text in patterns.templates:
            template = Template(text)
            assert sum(s.kind == "slot" for s in template.segments) == 1
            assert set(template.fields) in ({"text"}, {"text_a", "text_b"})


def test_library_templates_are_renamed_and_filtered_for_causal_models():
    causal = library_templates("question_type", ["question"], "causal")
    masked = library_templates("question_type", ["question"], "masked")
    assert "{mask}: {question}" in masked and "{mask}: {question}" not in causal
    assert all(usable_by(t, "causal") for t in causal)
    pair = library_templates("nli", ["premise", "hypothesis"], "causal")
    assert all(Template(t).fields == ("premise", "hypothesis") for t in pair)
    assert all(not any(s.kind == "field" for s in Template(t).after_slot) for t in pair)
    every = library_templates(None, ["text"], "masked")  # all one-text types
    assert len(every) > len(masked)
    with pytest.raises(ConfigError, match="task type"):
        library_templates("poetry", ["text"], "causal")
    with pytest.raises(ConfigError, match="field"):
        library_templates("nli", ["text"], "causal")


def test_rename_keeps_literal_braces():
    assert rename_fields("{text} {{sic}} It was {mask}.", {"text": "s"}) == "{s} {{sic}} It was {mask}."


def test_phrases_are_word_prefixes_of_the_first_clause():
    assert phrases_from(" I think it was. Then more", 5) == ["I", "I think", "I think it", "I think it was"]
    assert phrases_from(" ... !", 5) == []
    assert phrases_from(" a {b} c", 2) == ["a", "a b"]


def test_generation_with_a_tiny_random_causal_lm_returns_valid_templates():
    model, tok = tiny_llama()
    templates = generate_templates(model, tok, data(3), ["sentence"], n_contexts=2, samples=4, seed=1)
    assert templates, "sampling 16 continuations gave no phrase at all"
    assert len(templates) == len(set(templates))
    for t in templates:
        template = Template(t)
        assert template.fields == ("sentence",)
        assert t.endswith(" {mask}") and t.startswith("{sentence}")
        assert usable_by(t, "causal")


def test_generation_stops_when_out_of_time_keeping_what_it_generated(monkeypatch):
    model, tok = tiny_llama(seed=0)
    calls = []
    real_generate = type(model).generate

    def counting(self, *args, **kwargs):
        calls.append(1)
        return real_generate(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "generate", counting)
    kept = generate_templates(model, tok, data(3), ["sentence"], n_contexts=2, samples=4, seed=1)
    n_contexts = len(calls)
    assert n_contexts > 1
    calls.clear()
    first_only = generate_templates(
        model, tok, data(3), ["sentence"], n_contexts=2, samples=4, seed=1, out_of_time=lambda: True
    )
    assert len(calls) == 1  # the first context always runs; the clock stops the rest
    assert set(first_only) <= set(kept)


def test_search_ranks_the_template_the_model_understands_first(tmp_path):
    # The planted model only sees the evidence through "It was": that library template must win.
    backbone = lambda: PlantedBackbone(  # noqa: E731
        bias={"great": 1.0},
        cues={("loved", "It was"): {"great": 3.0}, ("hated", "It was"): {"terrible": 5.0}},
    )
    result = search_templates(
        backbone,
        data(4),
        data(4, 10),
        WORDS,
        task_type="sentiment",
        generate=False,
        templates=["{sentence} Verdict: {mask}"],
    )
    assert result.best.template == "{sentence} It was {mask}."
    assert result.best.zero_shot["accuracy"] == 1.0
    assert result.ranked[-1].zero_shot["accuracy"] == 0.5
    assert {c.source for c in result.ranked} == {"given", "library"}
    path = result.write(tmp_path / "out")
    saved = json.loads(path.read_text())
    assert path.name == SEARCH_FILE
    assert saved["template"] == "{sentence} It was {mask}."
    assert len(saved["ranked"]) == len(result.ranked)
    assert saved["settings"]["counts"]["given"] == 1


def test_a_given_template_that_is_also_in_the_library_is_scored_once():
    backbone = lambda: PlantedBackbone(bias={"great": 1.0}, cues={})  # noqa: E731
    library = "{sentence} It was {mask}."
    result = search_templates(
        backbone, data(4), data(4, 10), WORDS, task_type="sentiment", generate=False,
        templates=[library, library],
    )  # fmt: skip
    templates = [c.template for c in result.ranked]
    assert templates.count(library) == 1 and len(templates) == len(set(templates))
    assert next(c.source for c in result.ranked if c.template == library) == "given"


def test_a_time_limit_scores_the_given_template_first_and_records_the_rest_as_unscored():
    backbone = lambda: PlantedBackbone(bias={"great": 1.0}, cues={})  # noqa: E731
    given = "Review: {sentence} Verdict: {mask}"
    kwargs = dict(task_type="sentiment", generate=False, templates=[given])
    full = search_templates(backbone, data(4), data(4, 10), WORDS, **kwargs)
    assert len(full.ranked) > 2 and full.settings["unscored"] == []
    cut = search_templates(backbone, data(4), data(4, 10), WORDS, max_seconds=0.0, **kwargs)
    assert [c.template for c in cut.ranked] == [given]  # at least one, the given one
    assert sorted(cut.settings["unscored"]) == sorted(c.template for c in full.ranked if c.template != given)
    assert cut.settings["max_seconds"] == 0.0


def test_search_with_generation_and_fine_tunes_on_a_tiny_model(tmp_path):
    factory = lambda: backbone_from_model(*tiny_llama(), "causal")  # noqa: E731
    result = search_templates(
        factory,
        data(3),
        data(2, 10),
        WORDS,
        task_type="sentiment",
        n_contexts=2,
        samples=3,
        keep_generated=2,
        finetune_top=1,
        finetune_steps=2,
    )
    sources = [c.source for c in result.ranked]
    assert sources.count("generated") <= 2 and "library" in sources
    assert result.ranked[0].finetuned is not None
    assert all(c.zero_shot is not None for c in result.ranked)
    for c in [*result.ranked, *result.generated_dropped]:
        if c.source == "generated":
            assert c.train_screen is not None
