"""PET / iPET (issue 11): ensemble weights and soft labels, iPET's growing balanced sets, the pool without
the labelled texts, the run loop on a tiny model (soft labels the final classifier learns, resume), the
recipe and `promptft pet` (user errors, eval/predict on the run folder), and the bench's pet/ipet cells."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml
from test_cli import LABEL_MAP, SENTENCES, invoke, ok, user_error, write_tsv

from promptft.classifiers import PromptClassifier
from promptft.classifiers.ensemble import combine_log_probs, ensemble_weights, soft_targets
from promptft.config import PetConfig, TrainConfig
from promptft.data import Example
from promptft.ensemble.pet import (
    MODEL_FILE,
    SCORES_FILE,
    Pattern,
    exclude_examples,
    ipet_quota,
    run_pet,
    sample_pool,
    select_confident,
    text_key,
)
from promptft.errors import ConfigError, DataError
from promptft.models import backbone_from_model
from promptft.objectives import SoftLabel
from promptft.settings import data_dir
from tiny import tiny_llama

WORDS = {"negative": "terrible", "positive": "great"}
PATTERNS = [Pattern("Review: {text}\nSentiment: {mask}", WORDS), Pattern("{text} It was {mask}.", WORDS)]
TRAIN = [Example({"text": t}, "positive" if y else "negative") for t, y in SENTENCES[:4]]
DEV = [Example({"text": t}, "positive" if y else "negative") for t, y in SENTENCES[4:]]
POOL = [
    Example({"text": f"{a} {b}"}) for a in ("good", "bad", "great", "awful", "fine") for b in ("film", "plot")
]
TINY = TrainConfig(max_steps=2, batch_size=4, eval_every=1, learning_rate=1e-3, progress=False)


def build(pattern: Pattern) -> PromptClassifier:
    model, tok = tiny_llama()
    clf = PromptClassifier(
        backbone_from_model(model, tok), pattern.template, dict(pattern.label_words), max_length=64
    )
    clf.set_finetune("lora")
    return clf


# ---------------------------------------------------------------------------------------------------------
# the ensemble's math


def test_weights_are_normalised_scores_and_uniform_without_any():
    assert ensemble_weights([0.5, 1.0, 0.5], 3).tolist() == [0.25, 0.5, 0.25]
    assert ensemble_weights(None, 4).tolist() == [0.25] * 4
    assert ensemble_weights([0.0, 0.0], 2).tolist() == [0.5, 0.5]  # nothing to prefer: equal weights
    with pytest.raises(ConfigError, match="non-negative"):
        ensemble_weights([0.5, -1.0], 2)


def test_soft_labels_are_pets_weighted_mean_of_logits_at_temperature():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 4) * 3  # 3 models, 5 examples, 4 labels
    weights = ensemble_weights([0.9, 0.6, 0.3], 3)
    combined = combine_log_probs(torch.log_softmax(logits, -1), weights, "logits")
    soft = soft_targets(combined, 2.0)
    assert torch.allclose(soft.sum(-1), torch.ones(5))
    # PET: softmax of the weighted mean of the raw logits, divided by T (each model's log_softmax only
    # shifts its logits by a per-example constant, which the softmax cancels)
    pet = torch.softmax((0.5 * logits[0] + (1 / 3) * logits[1] + (1 / 6) * logits[2]) / 2.0, -1)
    assert torch.allclose(soft, pet, atol=1e-6)
    assert torch.equal(soft.argmax(-1), soft_targets(combined).argmax(-1))  # T keeps the ensemble's choice


def test_probability_averaging_is_the_weighted_mixture():
    torch.manual_seed(1)
    log_probs = torch.log_softmax(torch.randn(2, 3, 2), -1)
    weights = ensemble_weights([3.0, 1.0], 2)
    mixture = soft_targets(combine_log_probs(log_probs, weights, "probabilities"))
    assert torch.allclose(mixture, 0.75 * log_probs[0].exp() + 0.25 * log_probs[1].exp(), atol=1e-6)
    with pytest.raises(ConfigError, match="logits, probabilities"):
        combine_log_probs(log_probs, weights, "median")


# ---------------------------------------------------------------------------------------------------------
# iPET's sets, the pool


def test_ipet_sets_grow_by_the_scale_factor_balanced_by_label():
    # 32 labelled, d = 5: generation 1 trains on 160 (128 new), generation 2 on 800 (768 new)
    assert ipet_quota(32, 1, 5.0, 2, 10_000) == [64, 64]
    assert ipet_quota(32, 2, 5.0, 2, 10_000) == [384, 384]
    assert ipet_quota(96, 1, 5.0, 6, 10_000) == [64] * 6
    assert ipet_quota(4, 1, 5.0, 3, 10_000) == [6, 5, 5]  # 16 new: the remainder to the first labels
    assert ipet_quota(32, 2, 5.0, 2, 100) == [50, 50]  # never more than the pool


def test_ipet_takes_the_most_confident_of_each_label_and_says_when_a_label_runs_short():
    pool = [Example({"text": str(i)}) for i in range(6)]
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.3, 0.7], [0.95, 0.05], [0.45, 0.55]])
    chosen, counts = select_confident(pool, probs, ["neg", "pos"], [2, 3])
    assert [(ex.fields["text"], ex.label) for ex in chosen] == [
        ("4", "neg"),
        ("0", "neg"),
        ("3", "pos"),
        ("5", "pos"),
    ]
    assert counts == [2, 2]  # only two pool examples are predicted pos


def test_the_pool_leaves_out_labelled_texts_in_any_tokenisation_and_duplicates():
    pool = [
        Example({"text": "( kim ) is great ."}),
        Example({"text": "writer/director ladles on the flavor ."}),
        Example({"text": "another film ."}),
        Example({"text": "Another  film ."}),
    ]
    labelled = [
        Example({"text": "(kim) is great ."}, "positive"),
        Example({"text": "writer\\/director ladles on the flavour ."}, "positive"),
    ]
    kept = exclude_examples(pool, labelled)
    assert [ex.fields["text"] for ex in kept] == ["another film ."] and kept[0].label is None
    assert text_key("Grey") == text_key("gray")
    assert sample_pool(POOL, 3, 7) == sample_pool(POOL, 3, 7) and len(sample_pool(POOL, 3, 7)) == 3
    assert sample_pool(POOL, None, 7) == POOL


@pytest.mark.skipif(data_dir() is None, reason="shared benchmark data not present")
def test_sst2_pool_holds_none_of_the_few_shot_sentences():
    from promptft.bench import load_tasks
    from promptft.bench.tasks import read_split, split_path

    table = load_tasks()
    task = table.find("sst-2")
    root = table.resolve_data_dir()
    pool = read_split(task, root / task.pool)
    for seed in table.seeds:
        shots = [
            ex for s in ("train", "dev") for ex in read_split(task, split_path(task, s, seed, table.k, root))
        ]
        kept = exclude_examples(pool, shots)
        assert len(pool) - len(kept) >= len(shots)  # each shot found (and removed), plus duplicates
        keys = {text_key(ex.fields["text"]) for ex in kept}
        assert not any(text_key(ex.fields["text"]) in keys for ex in shots)


# ---------------------------------------------------------------------------------------------------------
# the run


def test_pet_run_records_and_its_final_classifier_learns_the_ensembles_soft_labels(tmp_path, monkeypatch):
    import promptft.ensemble.pet as pet_module

    seen = []
    original = pet_module.Trainer

    class Recording(original):
        def train(self, train, dev=None):
            seen.append((self.objective, list(train)))
            return super().train(train, dev)

    monkeypatch.setattr(pet_module, "Trainer", Recording)
    settings = PetConfig(temperature=2.0, final_steps=3)
    out = run_pet(build, PATTERNS, TRAIN, DEV, POOL, labels=["negative", "positive"], train_config=TINY,
                  settings=settings, run_dir=tmp_path / "run")  # fmt: skip
    assert len(out.models) == 2 and out.pool_size == len(POOL) and out.n_train == 4
    assert all(m.dev is not None and m.weight_score == m.dev["accuracy"] for m in out.models)
    assert out.ensemble_dev is not None and out.final["n_soft"] == len(POOL) and out.final["n_labelled"] == 4
    assert set(out.times) >= {"pattern_models_s", "scoring_s", "final_s"}
    # the final classifier trained with the soft-label objective on the weighted ensemble's soft labels
    objective, final_train = seen[-1]
    assert isinstance(objective, SoftLabel) and objective.temperature == 2.0
    from safetensors.torch import load_file

    scores = [
        load_file(str(tmp_path / "run" / "gen0" / f"pattern{i}" / SCORES_FILE))["pool"] for i in range(2)
    ]
    weights = ensemble_weights([m.weight_score for m in out.models], 2)
    expected = soft_targets(combine_log_probs(torch.stack(scores), weights), 2.0)
    rows = torch.tensor([ex.label for ex in final_train[: len(POOL)]])
    assert torch.allclose(rows.sum(-1), torch.ones(len(POOL)), atol=1e-5)
    assert torch.allclose(rows, expected, atol=1e-6)
    assert [ex.fields for ex in final_train[: len(POOL)]] == [ex.fields for ex in POOL]
    assert [ex.label for ex in final_train[len(POOL) :]] == [ex.label for ex in TRAIN]  # + one-hot labelled
    assert isinstance(out.classifier.predict([ex.fields["text"] for ex in DEV])[0], str)


def test_patterns_may_list_the_labels_in_another_order(tmp_path, monkeypatch):
    """A pattern whose label words come in another order scores in that order: its scores are put in
    the run's label order before they are combined (before, they were combined as they came), and the
    final classifier (here the first pattern's, in its order) learns the soft labels in its own order."""
    import promptft.ensemble.pet as pet_module

    seen = []

    class Recording(pet_module.Trainer):
        def train(self, train, dev=None):
            seen.append(list(train))
            return super().train(train, dev)

    monkeypatch.setattr(pet_module, "Trainer", Recording)

    def seeded(pattern: Pattern) -> PromptClassifier:
        torch.manual_seed(0)  # the same LoRA initialisation for both patterns
        return build(pattern)

    reversed_words = {label: WORDS[label] for label in reversed(list(WORDS))}
    patterns = [Pattern(PATTERNS[1].template, reversed_words), Pattern(PATTERNS[1].template, WORDS)]
    out = run_pet(seeded, patterns, TRAIN, DEV, POOL, labels=["negative", "positive"], train_config=TINY,
                  settings=PetConfig(final_steps=1, weighting="uniform"), run_dir=tmp_path / "run")  # fmt: skip
    from safetensors.torch import load_file

    scores = [load_file(str(tmp_path / "run" / "gen0" / f"pattern{i}" / SCORES_FILE)) for i in range(2)]
    for part in ("pool", "dev"):  # the same model, so the same scores once in one order
        assert not torch.allclose(scores[1][part], scores[1][part].flip(-1), atol=1e-4)
        torch.testing.assert_close(scores[0][part], scores[1][part], atol=1e-5, rtol=1e-4)
    assert out.classifier.labels == ["positive", "negative"]
    expected = soft_targets(combine_log_probs(torch.stack([s["pool"] for s in scores])), 2.0).flip(-1)
    rows = torch.tensor([ex.label for ex in seen[-1][: len(POOL)]])  # the final classifier's order
    torch.testing.assert_close(rows, expected, atol=1e-5, rtol=1e-4)


def test_final_classifier_loss_on_the_soft_labels_goes_down(monkeypatch):
    """Without dev the final classifier keeps its last step: its KL to the soft labels must have fallen."""
    import promptft.ensemble.pet as pet_module

    seen = []
    original = pet_module.Trainer

    class Recording(original):
        def train(self, train, dev=None):
            seen.append(list(train))
            return super().train(train, dev)

    monkeypatch.setattr(pet_module, "Trainer", Recording)
    settings = PetConfig(weighting="uniform", final_steps=15, include_labelled=False)
    cfg = TINY.model_copy(update={"learning_rate": 2e-2})
    out = run_pet(build, PATTERNS, TRAIN, [], POOL, labels=["negative", "positive"], train_config=cfg,
                  settings=settings)  # fmt: skip
    targets = torch.tensor([ex.label for ex in seen[-1]])
    objective = SoftLabel(["negative", "positive"], 2.0)

    def kl(clf) -> float:
        return float(objective.loss(clf.logits_encoded(clf.encode(POOL)), targets).mean())

    assert kl(out.classifier) < kl(build(PATTERNS[0])) - 1e-3  # build() starts from the same weights


def test_ipet_grows_each_models_training_set_with_the_other_patterns_labels(tmp_path):
    settings = PetConfig(generations=2, scale_factor=3.0, final_steps=1)
    out = run_pet(build, PATTERNS, TRAIN, DEV, POOL, labels=["negative", "positive"], train_config=TINY,
                  settings=settings)  # fmt: skip
    assert [m.generation for m in out.models] == [0, 0, 1, 1]
    second = out.generations[1]
    for model in out.models[2:]:
        assert len(model.added) == 2 and all(n <= 4 for n in model.added)  # 4 * 3 - 4 = 8 new: 4 per label
        assert model.n_train == 4 + sum(model.added)
    assert second["n_train_per_model"] == [m.n_train for m in out.models[2:]]
    assert out.generations[0]["added_per_label"] == [None, None]


def test_weighting_train_is_each_models_accuracy_before_training(tmp_path):
    settings = PetConfig(weighting="train", final_steps=1)
    out = run_pet(build, PATTERNS, TRAIN, DEV, POOL, labels=["negative", "positive"], train_config=TINY,
                  settings=settings, run_dir=tmp_path / "run")  # fmt: skip
    for m, pattern in zip(out.models, PATTERNS, strict=True):
        untrained = build(pattern).evaluate(TRAIN)["accuracy"]  # build() starts from the same weights
        assert m.weight_score == m.train_accuracy_before == untrained
        saved = json.loads((tmp_path / "run" / "gen0" / f"pattern{m.pattern}.before.json").read_text())
        assert saved["accuracy"] == untrained  # kept for a resumed run


def test_run_errors_are_clear():
    labels = ["negative", "positive"]
    with pytest.raises(ConfigError, match="at least 2 patterns"):
        run_pet(build, PATTERNS[:1], TRAIN, DEV, POOL, labels=labels, train_config=TINY,
                settings=PetConfig(generations=2))  # fmt: skip
    with pytest.raises(DataError, match="pool is empty"):
        run_pet(build, PATTERNS, TRAIN, DEV, [], labels=labels, train_config=TINY)
    with pytest.raises(ConfigError, match="give a dev set"):
        run_pet(build, PATTERNS, TRAIN, [], POOL, labels=labels, train_config=TINY)
    with pytest.raises(ConfigError, match="leave refit off for PET"):
        run_pet(build, PATTERNS, TRAIN, DEV, POOL, labels=labels, train_config=TINY.replace(refit=True))
    with pytest.raises(ConfigError, match="generations must be >= 1"):
        PetConfig.parse({"generations": 0})
    with pytest.raises(ConfigError, match="did you mean 'temperature'"):
        PetConfig.parse({"temprature": 2})


def test_an_interrupted_run_reuses_finished_models(tmp_path):
    from promptft.models import load_backbone

    model, tok = tiny_llama()
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")  # a saved model: a trained run can be reloaded from its folder
    calls = []

    def counting(pattern):
        calls.append(pattern.template)
        clf = PromptClassifier(load_backbone(str(tmp_path / "tiny")), pattern.template,
                               dict(pattern.label_words), max_length=64)  # fmt: skip
        clf.set_finetune("lora")
        return clf

    run_dir = tmp_path / "run"
    settings = PetConfig(final_steps=1)
    kwargs = {
        "labels": ["negative", "positive"],
        "train_config": TINY,
        "settings": settings,
        "run_dir": run_dir,
    }
    first = run_pet(counting, PATTERNS, TRAIN, DEV, POOL, **kwargs)
    assert len(calls) == 3  # two pattern models and the final one
    # as if stopped while scoring the second model and before the final classifier
    (run_dir / "gen0" / "pattern1" / MODEL_FILE).unlink()
    import shutil

    shutil.rmtree(run_dir / "final")
    calls.clear()
    again = run_pet(counting, PATTERNS, TRAIN, DEV, POOL, **kwargs)
    assert calls == [PATTERNS[0].template]  # only the final classifier is built; both models are reused
    assert [m.dev for m in again.models] == [m.dev for m in first.models]
    calls.clear()
    run_pet(counting, PATTERNS, TRAIN, DEV, POOL, **kwargs)
    assert calls == []  # everything done: nothing trains


# ---------------------------------------------------------------------------------------------------------
# the recipe and the command line


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("pet_cli")
    model, tok = tiny_llama()
    model.save_pretrained(root / "tiny")
    tok.save_pretrained(root / "tiny")
    write_tsv(root / "train.tsv", ["sentence", "label"], SENTENCES[:4])
    write_tsv(root / "dev.tsv", ["sentence", "label"], SENTENCES[4:])
    pool = [(ex.fields["text"], 0) for ex in POOL] + SENTENCES  # the labelled sentences must be left out
    write_tsv(root / "pool.tsv", ["sentence", "label"], pool)
    write_tsv(root / "only_labelled.tsv", ["sentence", "label"], SENTENCES)
    return root


def _args(env, output, *more):
    return [
        "pet", "--train", env / "train.tsv", "--dev", env / "dev.tsv", "--label-map", LABEL_MAP,
        "--label-words", "negative=terrible,positive=great", "--template", "Review: {text}\\nSentiment: {mask}",
        "--model", env / "tiny", "--device", "cpu", "--no-progress", "--steps", 2, "--batch-size", 4,
        "--eval-every", 1, "--output", output, *more,
    ]  # fmt: skip


def test_cli_pet_writes_a_run_folder_that_eval_and_predict_take(env, tmp_path):
    run = tmp_path / "pet"
    result = invoke(*_args(env, run, "--pool", env / "pool.tsv", "--template", "{text} It was {mask}.",
                           "--test", env / "dev.tsv", "--final-steps", 2))  # fmt: skip
    ok(result)
    assert "ensemble dev accuracy" in result.stdout
    summary = json.loads((run / "pet.json").read_text())
    assert summary["pool_size"] == len(POOL) and summary["pool_excluded_labelled"] == len(SENTENCES)
    assert [m["template"] for m in summary["models"]] == [p.template for p in PATTERNS]
    assert summary["final"]["n_soft"] == len(POOL) and summary["test_metrics"]["n"] == 4
    assert (run / "best").is_dir() and (run / "job.yaml").is_file() and (run / "final_metrics.json").is_file()
    ok(invoke("eval", run, "--data", env / "dev.tsv"))
    ok(invoke("predict", run, "-i", env / "dev.tsv", "-o", tmp_path / "pred.jsonl"))
    assert len((tmp_path / "pred.jsonl").read_text().splitlines()) == 4
    user_error(invoke(*_args(env, run, "--pool", env / "pool.tsv")), "finished run")


def test_cli_ipet_with_a_patterns_file_and_pool_limit(env, tmp_path):
    patterns = tmp_path / "patterns.yaml"
    patterns.write_text(yaml.safe_dump([{"template": "{text} All in all, it was {mask}.",
                                          "label_words": {"negative": "bad", "positive": "good"}}]))  # fmt: skip
    run = tmp_path / "ipet"
    ok(invoke(*_args(env, run, "--pool", env / "pool.tsv", "--patterns", patterns, "--ipet", "--generations", 2,
                     "--pool-limit", 6, "--final-steps", 1)))  # fmt: skip
    summary = json.loads((run / "pet.json").read_text())
    assert summary["ipet"] and summary["pool_size"] == 6 and len(summary["models"]) == 4
    assert summary["models"][1]["label_words"] == {"negative": "bad", "positive": "good"}
    assert summary["generations"][1]["n_train_per_model"] == [
        4 + sum(m["added"]) for m in summary["models"][2:]
    ]


def test_cli_with_a_config_takes_its_prompt_first_and_each_template_as_another_pattern(env, tmp_path):
    job = {
        "data": {"train": str(env / "train.tsv"), "dev": str(env / "dev.tsv"), "label_map": {"0": "negative", "1": "positive"}},
        "prompt": {"template": "Review: {text}\\nSentiment: {mask}", "label_words": WORDS},
        "model": {"name": str(env / "tiny"), "device": "cpu"},
        "train": {"max_steps": 1, "batch_size": 4, "eval_every": 1, "progress": False},
    }  # fmt: skip
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    run = tmp_path / "run"
    ok(invoke("pet", "--config", tmp_path / "job.yaml", "--template", "{text} It was {mask}.", "--pool",
              env / "pool.tsv", "--final-steps", 1, "--output", run))  # fmt: skip
    summary = json.loads((run / "pet.json").read_text())
    assert [m["template"] for m in summary["models"]] == [p.template for p in PATTERNS]
    assert summary["adapter"] == "lora"  # PET's default when the job names none


def test_cli_final_head_is_a_head_classifier_that_eval_loads(env, tmp_path):
    from tiny import tiny_bert

    bert, tok = tiny_bert()
    bert.save_pretrained(tmp_path / "bert")
    tok.save_pretrained(tmp_path / "bert")
    run = tmp_path / "run"
    ok(invoke(*_args(env, run, "--pool", env / "pool.tsv", "--final", "head", "--final-model", tmp_path / "bert",
                     "--final-lr", 1e-3, "--final-steps", 2)))  # fmt: skip
    config = json.loads((run / "best" / "promptft_config.json").read_text())
    assert config["type"] == "head"
    ok(invoke("eval", run, "--data", env / "dev.tsv"))


def test_cli_user_errors(env, tmp_path):
    user_error(invoke(*_args(env, tmp_path / "a")), "--pool FILE")
    user_error(
        invoke(*_args(env, tmp_path / "b", "--pool", env / "pool.tsv", "--ipet")), "at least 2 patterns"
    )
    user_error(invoke(*_args(env, tmp_path / "c", "--pool", env / "only_labelled.tsv")), "no text besides")
    user_error(invoke(*_args(env, tmp_path / "d", "--pool", env / "nope.tsv")), "pool file not found")
    user_error(
        invoke(*_args(env, tmp_path / "e", "--pool", env / "pool.tsv", "--ipet", "--generations", 1)),
        "--ipet needs --generations 2",
    )


def test_cli_refuses_to_resume_with_other_settings(env, tmp_path):
    run = tmp_path / "pet"
    run.mkdir()
    from promptft.recipes.pet import CONFIG_FILE

    (run / CONFIG_FILE).write_text(json.dumps({"job": {}, "patterns": [], "pet": {}, "pool": "x"}))
    user_error(invoke(*_args(env, run, "--pool", env / "pool.tsv")), "other settings")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    user_error(invoke(*_args(env, other, "--pool", env / "pool.tsv")), "not empty")


# ---------------------------------------------------------------------------------------------------------
# the benchmark


def test_bench_pet_and_ipet_cells_on_a_task_with_a_pool_and_skip_one_without(tmp_path, capsys):
    from test_bench import NEG, POS, _write_csv

    from promptft.bench import run_benchmark
    from promptft.bench.runner import cell_path

    folder = tmp_path / "models" / "tiny-llama"
    model, tok = tiny_llama()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    data = tmp_path / "data"
    for task in ("sent", "nopool"):
        for split in ("train", "dev"):
            rows = [(1, POS[i]) for i in range(2)] + [(0, NEG[i]) for i in range(2)]
            _write_csv(data / task / "k-shot" / "2-1" / f"{split}.csv", rows)
        _write_csv(data / task / "test.csv", [(1, t) for t in POS] + [(0, t) for t in NEG])
    pool_rows = [(0, f"{a} {b}") for a in ("good", "bad", "fine") for b in ("film", "plot")] + [(1, POS[0])]
    _write_csv(data / "sent" / "pool.csv", pool_rows)
    common = {
        "format": "csv", "header": False, "fields": {"text": 1}, "label": 0,
        "labels": {"0": "negative", "1": "positive"}, "label_words": WORDS,
        "prompts": {"causal": {"template": "{text} It was {mask}."}}, "template_type": "sentiment",
    }  # fmt: skip
    tasks = {
        "k": 2, "seeds": [1], "data_dir": "data",
        "tasks": {
            name: {"train": f"{name}/k-shot/{{k}}-{{seed}}/train.csv", "dev": f"{name}/k-shot/{{k}}-{{seed}}/dev.csv",
                   "test": f"{name}/test.csv", **common, **({"pool": "sent/pool.csv"} if name == "sent" else {})}
            for name in ("sent", "nopool")
        },
    }  # fmt: skip
    (tmp_path / "tasks.yaml").write_text(yaml.safe_dump(tasks))
    small = {"max_steps": 1, "batch_size": 4, "eval_every": 1, "max_length": 64, "lora": {"r": 2},
             "n_patterns": 2, "pool_limit": 5, "final_steps": 1}  # fmt: skip
    (tmp_path / "bench.yaml").write_text(
        yaml.safe_dump({"methods": {"pet": small, "ipet": {**small, "generations": 2}}})
    )
    results = tmp_path / "results"
    out = run_benchmark(str(folder), tasks_file=tmp_path / "tasks.yaml", config=tmp_path / "bench.yaml",
                        results_dir=results, device="cpu", methods=["pet", "ipet"], progress=False)  # fmt: skip
    assert len(out.written) == 2  # sent only
    assert "pet on nopool" in " ".join(capsys.readouterr().err.split())
    for name in ("pet", "ipet"):
        cell = json.loads(cell_path(results, "tiny-llama", "sent", name, 1).read_text())
        info = cell["info"]
        assert info["pool_size"] == 5 and info["pool_texts"] == len(pool_rows)
        assert [p["template"] for p in info["patterns"]] == [
            "{text} It was {mask}.",
            "{text} All in all, it was {mask}.",
        ]
        assert len(info["models"]) == (2 if name == "pet" else 4) and "ensemble_dev" in info
        assert cell["dev_score"] == info["final"]["best_dev"]["accuracy"] and math.isfinite(cell["score"])
        assert "command" in cell
    from promptft.bench import build_report

    report = build_report(results, tmp_path / "tasks.yaml")
    table = report.markdown_path.read_text()
    assert "| pet" in table and "| ipet" in table
    (data / "sent" / "pool.csv").unlink()
    with pytest.raises(DataError, match="pool file"):
        run_benchmark(str(folder), tasks_file=tmp_path / "tasks.yaml", config=tmp_path / "bench.yaml",
                      results_dir=results, device="cpu", methods=["pet"], progress=False, force=True)  # fmt: skip


def test_bench_pet_options_are_checked():
    from promptft.bench.pet_methods import split_options
    from promptft.config.bench import load_bench_config

    config = load_bench_config()
    for name in ("pet", "ipet"):
        job, settings, patterns = split_options(config.method(name), name)
        assert settings.pool_limit == 1000 and patterns["n_patterns"] == 4
        assert settings.ipet == (name == "ipet")
    with pytest.raises(ConfigError, match="did you mean 'methods.pet.pool_limit'"):
        split_options({"pool_limt": 3}, "pet")
    with pytest.raises(ConfigError, match="n_patterns"):
        split_options({"n_patterns": 0}, "pet")


def test_recipe_refuses_other_task_types_and_methods(env, tmp_path):
    from promptft.recipes.pet import pet

    base = {"data": {"train": str(env / "train.tsv"), "dev": str(env / "dev.tsv"), "label_map": {"0": "negative", "1": "positive"}},
            "prompt": {"label_words": WORDS}, "model": {"name": str(env / "tiny")}, "output": str(tmp_path / "r")}  # fmt: skip
    with pytest.raises(ConfigError, match="method prompt"):
        pet({**base, "model": {"name": str(env / "tiny"), "method": "head"}}, pool=env / "pool.tsv")
    with pytest.raises(ConfigError, match="single-label"):
        pet({**base, "task": {"type": "multi_label"}}, pool=env / "pool.tsv")
    with pytest.raises(ConfigError, match="final_model"):
        pet(base, pool=env / "pool.tsv", final_model="minilm-l6")
