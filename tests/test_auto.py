"""`promptft train --auto` on a tiny Llama: searches, fine-tunes the finalists, chooses on dev, records it."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from promptft import load_classifier
from promptft.cli import app
from promptft.config import load_job
from promptft.errors import ConfigError
from promptft.recipes.auto import AUTO_FILE, auto_train
from tiny import tiny_llama


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("auto")
    model, tok = tiny_llama()
    model.save_pretrained(root / "tiny")
    tok.save_pretrained(root / "tiny")
    rows = [(f"I {v} it {i}", lab) for i in range(3) for v, lab in (("loved", 1), ("hated", 0))]
    for name in ("train", "dev", "test"):
        (root / f"{name}.tsv").write_text("sentence\tlabel\n" + "".join(f"{s}\t{lab}\n" for s, lab in rows))
    return root


def job(env, output, **extra):
    overrides = {
        "data.train": str(env / "train.tsv"),
        "data.dev": str(env / "dev.tsv"),
        "data.test": str(env / "test.tsv"),
        "data.label_map": {"0": "negative", "1": "positive"},
        "prompt.label_words": {"negative": "terrible", "positive": "great"},
        "model.name": str(env / "tiny"),
        "model.finetune": "lora",
        "model.device": "cpu",
        "train.max_steps": 2,
        "train.eval_every": 1,
        "train.batch_size": 4,
        "train.progress": False,
        "output": str(output),
        **extra,
    }
    return load_job(None, overrides)


def test_auto_records_every_decision_and_leaves_a_usable_run(env, tmp_path):
    result = auto_train(
        job(env, tmp_path / "run"), budget_minutes=10, task_type="sentiment", generate=False, ensemble=False
    )
    stages = [d.stage for d in result.decisions]
    assert stages[:3] == ["manual", "label_words", "templates"] and stages.count("templates") == 1
    assert "finetune_manual" in stages and stages[-1] == "choice"
    assert "ensemble" not in stages and "finetune_runner_up" not in stages
    saved = json.loads((tmp_path / "run" / AUTO_FILE).read_text())
    assert saved["finished"] is True and len(saved["decisions"]) == len(stages)
    assert saved["chosen"]["template"] == result.chosen["template"]
    finalists = saved["decisions"][-1]["details"]["finalists"]
    assert finalists[0]["name"] == "manual" and "dev" in finalists[0]
    best = max(f["dev"]["accuracy"] for f in finalists if f.get("dev"))
    assert result.chosen["dev"]["accuracy"] == best  # chosen on dev
    clf = load_classifier(tmp_path / "run" / "best")
    assert clf.template.text == result.chosen["template"]
    assert (tmp_path / "run" / "test_metrics.json").exists()
    assert (tmp_path / "run" / "final_metrics.json").exists()
    assert result.beats_manual in (True, False)


@pytest.mark.parametrize("ensemble_dev", [0.0, 1.01])
def test_auto_ensemble_stage_is_kept_only_when_it_beats_the_best_single_model_on_dev(
    env, tmp_path, monkeypatch, ensemble_dev
):
    from promptft.classifiers import EnsembleClassifier

    # The tiny model's dev scores are whatever they are: the ensemble's dev score is set below or above
    # every single finalist's, so that both outcomes are checked.
    real_evaluate = EnsembleClassifier.evaluate
    monkeypatch.setattr(
        EnsembleClassifier,
        "evaluate",
        lambda self, examples, *a, **k: {**real_evaluate(self, examples, *a, **k), "accuracy": ensemble_dev},
    )
    result = auto_train(job(env, tmp_path / "run"), budget_minutes=10, task_type="sentiment", generate=False)
    stages = [d.stage for d in result.decisions]
    assert "finetune_runner_up" in stages and "ensemble" in stages
    stage = next(d for d in result.decisions if d.stage == "ensemble")
    assert stage.outcome == "done" and len(stage.details["members"]) == 3
    assert sum(stage.details["weights"]) == pytest.approx(1.0)
    best = load_classifier(tmp_path / "run" / "best")
    saved = json.loads((tmp_path / "run" / AUTO_FILE).read_text())
    if ensemble_dev > 1:
        assert result.chosen["name"] == "ensemble" and result.chosen["members"] == stage.details["members"]
        assert isinstance(best, EnsembleClassifier) and best.names == stage.details["members"]
        assert result.beats_manual is True and saved["chosen"]["name"] == "ensemble"
        assert "ensemble taken" in stage.reason
    else:
        assert result.chosen["name"] != "ensemble" and not isinstance(best, EnsembleClassifier)
        assert "single model kept" in stage.reason
    # the chosen model scored the test file, and eval takes the run folder as it is
    assert json.loads((tmp_path / "run" / "test_metrics.json").read_text())["n"] == 6
    assert best.predict(["I loved it"])[0] in ("negative", "positive")


def test_auto_with_refit_skips_the_ensemble_and_keeps_a_refit_finalist(env, tmp_path):
    refit = {"train.refit": True, "train.eval_at_start": False}
    result = auto_train(
        job(env, tmp_path / "run", **refit), budget_minutes=10, task_type="sentiment", generate=False
    )
    stage = next(d for d in result.decisions if d.stage == "ensemble")
    assert stage.outcome == "skipped" and "trained on dev" in stage.reason
    assert result.chosen["name"] != "ensemble"
    card = json.loads((tmp_path / "run" / "best" / "promptft_config.json").read_text())["card"]
    assert card["training"]["refit"]["n_examples"] == 12  # the chosen finalist was refit on train + dev


def test_auto_on_a_tiny_budget_still_ends_with_a_model(env, tmp_path, monkeypatch):
    import promptft.recipes.auto as auto_recipe

    # The budget is spent after the first stage, whatever this machine's speed (0.06 s could be enough here).
    monkeypatch.setattr(auto_recipe._Clock, "left", property(lambda self: -1.0))
    result = auto_train(job(env, tmp_path / "run"), budget_minutes=0.001, generate=False)
    outcomes = {d.stage: d.outcome for d in result.decisions}
    assert outcomes["label_words"] == "skipped" and outcomes["templates"] == "skipped"
    assert result.chosen["name"] == "manual"
    assert load_classifier(tmp_path / "run" / "best").template.text == "{text} It was {mask}."


def test_auto_fine_tunes_stop_when_the_budget_is_spent(env, tmp_path, monkeypatch):
    """No budget left: the first finalist trains anyway, but only for a quarter of the budget (here far less
    than one step), then the best dev step so far is kept; the run's own job.yaml carries no limit."""
    import promptft.recipes.auto as auto_recipe

    monkeypatch.setattr(auto_recipe._Clock, "left", property(lambda self: -1.0))
    result = auto_train(
        job(env, tmp_path / "run", **{"train.max_steps": 20}), budget_minutes=1e-6, generate=False
    )
    fine_tune = next(d for d in result.decisions if d.stage == "finetune_manual")
    assert "the budget stopped it at step 1 of 20" in fine_tune.reason
    candidate = tmp_path / "run" / "candidates" / "manual"
    final = json.loads((candidate / "final_metrics.json").read_text())
    assert final["time_limited"] and final["steps"] == 1
    assert json.loads((candidate / "train_config.json").read_text())["max_minutes"] == 1e-6  # floor: > 0
    assert load_job(tmp_path / "run" / "job.yaml").train.max_minutes is None


def test_auto_skips_a_refit_the_budget_has_no_time_for(env, tmp_path, monkeypatch):
    import promptft.recipes.auto as auto_recipe

    monkeypatch.setattr(auto_recipe._Clock, "left", property(lambda self: -1.0))
    settings = {"train.max_steps": 20, "train.refit": True, "train.eval_at_start": False}
    result = auto_train(job(env, tmp_path / "run", **settings), budget_minutes=1e-6, generate=False)
    fine_tune = next(d for d in result.decisions if d.stage == "finetune_manual")
    assert "step 1 of 20" in fine_tune.reason and "refit on train + dev skipped" in fine_tune.reason
    final = json.loads((tmp_path / "run" / "candidates" / "manual" / "final_metrics.json").read_text())
    assert final["refit"] is None and "max_minutes" in final["refit_skipped"]


def test_auto_errors(env, tmp_path):
    with pytest.raises(ConfigError, match="--dev"):
        auto_train(job(env, tmp_path / "a", **{"data.dev": None}), 5)
    with pytest.raises(ConfigError, match="budget"):
        auto_train(job(env, tmp_path / "b"), 0)


def test_cli_train_auto(env, tmp_path):
    run = tmp_path / "cli"
    result = CliRunner().invoke(
        app,
        [
            "train", "--auto", "--budget-minutes", "10", "--train", str(env / "train.tsv"), "--dev",
            str(env / "dev.tsv"), "--label-map", "0=negative,1=positive", "--model", str(env / "tiny"),
            "--finetune", "none", "--template", "{text} It was {mask}.", "--output", str(run), "--no-progress",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "chosen:" in result.stdout and "auto.json" in result.stdout
    saved = json.loads((run / AUTO_FILE).read_text())
    assert saved["manual"] is None  # no label words given: the search supplies them
    assert saved["chosen"]["name"] == "searched"
    assert "ensemble" not in [d["stage"] for d in saved["decisions"]]  # zero-shot: nothing to ensemble


def test_cli_train_auto_reads_label_names_from_the_file_when_there_is_no_label_map(env, tmp_path):
    named = tmp_path / "named.tsv"  # labels that are already names: nothing to map
    named.write_text(
        (env / "train.tsv").read_text().replace("\t0\n", "\tsad\n").replace("\t1\n", "\thappy\n")
    )
    common = ["train", "--auto", "--budget-minutes", "10", "--model", str(env / "tiny"), "--finetune", "none",
              "--template", "{text} It was {mask}.", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(app, [*common, "--train", str(named), "--dev", str(named), "--output",
                                      str(tmp_path / "run")])  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "run" / AUTO_FILE).read_text())
    assert sorted(saved["chosen"]["label_words"]) == ["happy", "sad"]
    assert saved["decisions"][0]["stage"] == "label_names" and saved["manual"] is None
    one_label = tmp_path / "one.tsv"
    one_label.write_text("sentence\tlabel\nI loved it\tyes\nI liked it\tyes\n")
    result = CliRunner().invoke(app, [*common, "--train", str(one_label), "--dev", str(named), "--output",
                                      str(tmp_path / "one")])  # fmt: skip
    assert (
        result.exit_code == 2
        and "two or more label names" in result.output
        and "--label-map" in result.output
    )
    assert not (tmp_path / "one").exists()


def test_auto_without_label_words_weighs_the_label_names_against_the_searched_words(
    env, tmp_path, monkeypatch
):
    import promptft.recipes.auto as auto_module

    real_search = auto_module.search_label_words

    def search_scoring(accuracy):
        def search(*args, **kwargs):
            found = real_search(*args, **kwargs)
            found.best.screen_accuracy = accuracy
            return found

        return search

    names = {"negative": "negative", "positive": "positive"}
    no_words = {"prompt.label_words": None, "model.finetune": "none"}
    for screen, first, kept in (
        (-1.0, "label names", "the label names kept"),
        (2.0, "label-word search", "taken"),
    ):
        monkeypatch.setattr(auto_module, "search_label_words", search_scoring(screen))
        out = tmp_path / first.replace(" ", "_")
        result = auto_train(job(env, out, **no_words), 10, task_type="sentiment", generate=False)
        assert [d.stage for d in result.decisions][:2] == ["label_names", "label_words"]
        assert result.decisions[1].reason.endswith(kept)
        # neither set was chosen for the job's template: each gets a template search, the word stage's pick first
        searches = [d for d in result.decisions if d.stage == "templates"]
        assert len(searches) == 2 and searches[0].reason.endswith(f"with {first}")
        second_won = searches[1].reason.split("; ")[-1].startswith("taken")
        assert (result.chosen["label_words"] == names) == ((first == "label names") != second_won)


@pytest.mark.parametrize("flag", ["--auto-ensemble", "--no-auto-ensemble"])
def test_cli_train_auto_ensemble_flag(env, tmp_path, monkeypatch, flag):
    from promptft.classifiers import EnsembleClassifier

    real_evaluate = EnsembleClassifier.evaluate
    monkeypatch.setattr(  # the ensemble wins on dev whenever it runs
        EnsembleClassifier,
        "evaluate",
        lambda self, examples, *a, **k: {**real_evaluate(self, examples, *a, **k), "accuracy": 1.01},
    )
    run = tmp_path / "cli"
    result = CliRunner().invoke(
        app,
        [
            "train", "--auto", flag, "--budget-minutes", "10", "--train", str(env / "train.tsv"), "--dev",
            str(env / "dev.tsv"), "--label-map", "0=negative,1=positive", "--label-words",
            "negative=terrible,positive=great", "--model", str(env / "tiny"), "--finetune", "lora", "--steps",
            "2", "--eval-every", "1", "--output", str(run), "--no-progress",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    stages = [d["stage"] for d in json.loads((run / AUTO_FILE).read_text())["decisions"]]
    if flag == "--auto-ensemble":
        assert "ensemble" in stages and "chosen: the ensemble of manual" in result.stdout
    else:
        assert "ensemble" not in stages and "chosen: '" in result.stdout


@pytest.mark.parametrize("demo_wins", [False, True])
def test_auto_demonstrations_finalist_is_the_best_prompt_with_demonstrations_kept_only_if_it_wins_on_dev(
    env, tmp_path, monkeypatch, demo_wins
):
    from promptft.training.trainer import Trainer

    # The tiny model's dev scores are whatever they are: the run with demonstrations is set to lose (0.0)
    # or to win (1.01) on dev, so that both outcomes are checked.
    real_train = Trainer.train

    def train(self, *args, **kwargs):
        result = real_train(self, *args, **kwargs)
        if getattr(self.clf, "demonstrations", None) is not None:
            result.best_dev = {**result.best_dev, "accuracy": 1.01 if demo_wins else 0.0}
        return result

    monkeypatch.setattr(Trainer, "train", train)
    result = auto_train(
        job(env, tmp_path / "run"), 10, task_type="sentiment", generate=False, ensemble=False,
        demonstrations="random",
    )  # fmt: skip
    stages = [d.stage for d in result.decisions]
    assert stages.index("finetune_demonstrations") == len(stages) - 2  # after the plain finalists
    finalists = result.decisions[-1].details["finalists"]
    demo = finalists[-1]
    best_plain = max(finalists[:-1], key=lambda f: f["dev"]["accuracy"])
    assert demo["name"] == "demonstrations" and demo["template"] == best_plain["template"]
    assert demo["label_words"] == best_plain["label_words"]
    assert demo["demonstrations"]["selection"] == "random" and demo["demonstrations"]["n_sets"] == 2
    trained = load_job(tmp_path / "run" / "candidates" / "demonstrations" / "job.yaml")
    assert trained.prompt.demonstrations.selection == "random" and trained.prompt.max_length >= 512
    best = load_classifier(tmp_path / "run" / "best")
    saved_job = load_job(tmp_path / "run" / "job.yaml")
    if demo_wins:
        assert result.chosen["name"] == "demonstrations" and result.chosen["demonstrations"]["n_sets"] == 2
        assert best.demonstrations is not None and best.demonstration_pool is not None
        assert saved_job.prompt.demonstrations is not None  # eval/predict read the run as trained
    else:
        assert result.chosen["name"] == best_plain["name"] and result.chosen["demonstrations"] is None
        assert best.demonstrations is None and saved_job.prompt.demonstrations is None
    assert best.predict(["I loved it"])[0] in ("negative", "positive")


def test_auto_demonstrations_finalist_is_skipped_when_the_budget_cannot_cover_it(env, tmp_path, monkeypatch):
    import promptft.recipes.auto as auto_recipe

    # 1 ms left throughout: the searches run (the budget is not spent), no fine-tune fits after the first
    monkeypatch.setattr(auto_recipe._Clock, "left", property(lambda self: 0.001))
    result = auto_train(
        job(env, tmp_path / "run"), 10, task_type="sentiment", generate=False, ensemble=False,
        demonstrations="random",
    )  # fmt: skip
    templates = next(d for d in result.decisions if d.stage == "templates")
    assert "left unscored: half the budget left was spent" in templates.reason  # 0.5 ms for the search
    skipped = next(d for d in result.decisions if d.stage == "finetune_demonstrations")
    assert skipped.outcome == "skipped" and "with demonstrations a fine-tune takes about" in skipped.reason
    assert result.chosen["name"] != "demonstrations"
    assert not (tmp_path / "run" / "candidates" / "demonstrations").exists()


def test_auto_with_the_jobs_own_demonstrations_zero_shot(env, tmp_path):
    # every finalist reads demonstrations drawn from the training set, and the saved model keeps its pool
    demos = {"prompt.demonstrations": {"selection": "random", "n_sets": 2}, "prompt.max_length": 256}
    result = auto_train(
        job(env, tmp_path / "run", **{"model.finetune": "none"}, **demos), 10, task_type="sentiment",
        generate=False,
    )  # fmt: skip
    assert 0 <= result.manual["zero_shot"]["accuracy"] <= 1
    scored = [d for d in result.decisions if d.stage.startswith("score_")]
    assert scored and all(d.details["label_words"] for d in scored)
    best = load_classifier(tmp_path / "run" / "best")
    assert best.demonstrations is not None and len(best.demonstration_pool.examples) == 6
    assert best.predict(["I loved it"])[0] in ("negative", "positive")
    with pytest.raises(ConfigError, match="already puts demonstrations"):
        auto_train(job(env, tmp_path / "again", **demos), 10, demonstrations="random")
    with pytest.raises(ConfigError, match="n_set"):
        auto_train(job(env, tmp_path / "typo"), 10, demonstrations={"n_set": 2})


def test_cli_train_auto_demonstrations(env, tmp_path):
    run = tmp_path / "cli"
    result = CliRunner().invoke(
        app,
        [
            "train", "--auto", "--auto-demonstrations", "random", "--budget-minutes", "10", "--train",
            str(env / "train.tsv"), "--dev", str(env / "dev.tsv"), "--label-map", "0=negative,1=positive",
            "--label-words", "negative=terrible,positive=great", "--model", str(env / "tiny"), "--finetune",
            "none", "--output", str(run), "--no-progress",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    decisions = json.loads((run / AUTO_FILE).read_text())["decisions"]
    demo = next(d for d in decisions if d["stage"] == "score_demonstrations")
    assert demo["outcome"] == "done" and demo["details"]["demonstrations"]["selection"] == "random"
    bad = CliRunner().invoke(
        app, ["train", "--auto", "--auto-demonstrations", "nearest", "--output", str(run)]
    )
    assert bad.exit_code != 0 and "nearest" in bad.output
