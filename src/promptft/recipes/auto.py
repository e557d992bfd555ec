"""The auto recipe (`promptft train --auto --budget-minutes N`): search label words and templates, fine-tune
the finalists, keep the one that does best on dev, and record every decision.

    from promptft.config import load_job
    from promptft.recipes.auto import auto_train

    result = auto_train(load_job("examples/sst2_prompt_lora.yaml", {"output": "runs/auto"}), budget_minutes=20)

Stages (each recorded in `<output>/auto.json` with what was tried, its dev numbers, what was chosen and why):

1. **manual**: the job's own prompt (template + label words), scored zero-shot on dev, when it has words;
   without them, the label names as words (**label_names**), which the searched words must beat on dev.
2. **label_words**: LM-BFF label-word search on the job's template (zero-shot screen on dev).
3. **templates**: template search (library patterns for `task_type`, or every type that fits the fields,
   plus generated templates) with the better-scoring label words, the job's template competing too; it
   scores candidates for at most half the budget left (the job's template first), the rest left unscored.
   Without the job's own words, the losing set gets a template search too, and the better pair goes on.
4. **finetune**: the finalists (the manual prompt, the best searched prompt and, with `ensemble`, the
   search's next-best template) trained with the job's training settings, one run folder each under
   `<output>/candidates/`; the best dev metric wins (a tie keeps the manual prompt). With `finetune: none`
   the zero-shot dev scores decide.
   With `demonstrations` (opt-in; `--auto-demonstrations similar|random`) one more finalist follows: the
   best one's prompt again with LM-BFF demonstrations in context (one training example per label, its label
   word filled in; `n_sets` sets averaged at inference), the context raised to at least 512 tokens. It
   costs more (1.7x a plain LoRA fine-tune on SST-2, 4.2x on TREC in the benchmark), so it is budgeted at
   (labels + 1) / 2 times the last plain fine-tune.
5. **ensemble** (`ensemble=True`, the default; `--no-auto-ensemble` turns it off): with two or more
   fine-tuned finalists, their best models combined as PET does (weighted by dev score; the weights and the
   comparison use the same dev split, as PET's do), kept only if it beats the best single one on dev. Its
   `best/` is then an `EnsembleClassifier` folder (`members/<name>/`), which `eval`, `predict`, `serve` and
   `distill` take; `export` and `prune` want one member (or a distilled model).

Everything is chosen on dev; the test file (if any) scores the winner once, at the end. The budget is checked
before each stage and each fine-tune: a stage that does not fit is skipped (and says so), but the first
finalist always trains, so the run ends with a model. A fine-tune stops when the budget is spent
(`train.max_minutes`, keeping its best dev step so far); the first gets at least a quarter of the budget.
With `train.refit`, a finalist's refit on train + dev runs only if it fits in that time (else it is skipped,
and its decision says so). `<output>` ends up like a `train` run folder (best/, job.yaml with the chosen
prompt (an ensemble's: its best single member's), final_metrics.json, test_metrics.json), so `promptft eval`
and `predict` take it as they are.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from promptft.config import JobConfig, apply_overrides
from promptft.config.base import check_keys
from promptft.data import Example, label_names
from promptft.data.splits import SPLITS, load_split
from promptft.errors import ConfigError
from promptft.prompts.demonstrations import DemonstrationSettings
from promptft.recipes.run_dir import (
    BEST_DIR,
    JOB_FILE,
    TEST_FILE,
    check_writable,
    run_dir_state,
    run_lock,
    write_json,
)
from promptft.recipes.train import build_classifier, check_data, check_job, job_labels
from promptft.search.label_words import search_label_words
from promptft.search.prompt_eval import score_classifier
from promptft.search.templates import search_templates
from promptft.training.trainer import FINAL, Trainer

log = logging.getLogger(__name__)

AUTO_FILE = "auto.json"
CANDIDATES_DIR = "candidates"
DEMO_MAX_LENGTH = 512  # one demonstration per label plus the input: the benchmark's demonstrations context
DEMO_FINALIST = {"selection": "similar", "n_sets": 2}  # the benchmark's `demonstrations` method's settings


@dataclass
class Decision:
    stage: str
    outcome: str  # "done" | "skipped"
    reason: str
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class AutoResult:
    run_dir: str
    chosen: dict[str, Any]  # template, label_words, source, dev
    manual: dict[str, Any] | None  # the job's own prompt and its dev numbers (None without label words)
    beats_manual: bool | None  # the chosen prompt is not the manual one and scored higher on dev
    decisions: list[Decision]
    test: dict[str, float] | None
    budget_minutes: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["decisions"] = [asdict(d) for d in self.decisions]
        return out


class _Clock:
    def __init__(self, minutes: float) -> None:
        self.start = time.perf_counter()
        self.budget = minutes * 60

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def left(self) -> float:
        return self.budget - self.elapsed


def _ensemble_of(trained: Sequence[Mapping[str, Any]], metric: str, device: str | None):
    """The fine-tuned finalists' best models as one classifier, weighted by their dev `metric` (PET)."""
    from promptft.classifiers import EnsembleClassifier, load_classifier

    members = [load_classifier(Path(f["folder"]) / BEST_DIR, device=device) for f in trained]
    return EnsembleClassifier(
        members, [f["dev"][metric] for f in trained], names=[str(f["name"]) for f in trained]
    )


def _prompt_job(job: JobConfig, finalist: Mapping[str, Any], output: str | None) -> JobConfig:
    """The job with a finalist's prompt (and its demonstrations, if it adds them) writing to `output`."""
    overrides: dict[str, Any] = {
        "prompt.template": finalist["template"],
        "prompt.label_words": dict(finalist["label_words"]),
        "output": output,
    }
    if finalist.get("demonstrations"):
        overrides["prompt.demonstrations"] = dict(finalist["demonstrations"])
        overrides["prompt.max_length"] = max(job.prompt.max_length, DEMO_MAX_LENGTH)
    return apply_overrides(job, overrides)


def _untrained(job: JobConfig, labels: Sequence[str], train: Sequence[Example]):
    """The job's classifier without training; with demonstrations, drawn from `train` (a zero-shot pool)."""
    clf = build_classifier(apply_overrides(job, {"model.finetune": "none"}), labels)
    if job.prompt.demonstrations is not None:
        clf.set_demonstration_pool(train)
    return clf


def _demonstration_settings(value: Mapping[str, Any] | str | None, job: JobConfig) -> dict[str, Any] | None:
    """The demonstrations finalist's settings: a selection name ("similar", "random") or a mapping."""
    if value is None:
        return None
    if job.prompt.demonstrations is not None:
        raise ConfigError(
            "the job already puts demonstrations in every finalist: drop --auto-demonstrations, or drop the "
            "job's demonstrations to have --auto try the best prompt with and without them"
        )
    settings = {**DEMO_FINALIST, **({"selection": value} if isinstance(value, str) else dict(value))}
    check_keys(settings, [f.name for f in fields(DemonstrationSettings)], "demonstrations", "option")
    return DemonstrationSettings(**settings).to_dict()


def auto_train(
    job: JobConfig,
    budget_minutes: float,
    *,
    task_type: str | None = None,
    generate: bool = True,
    ensemble: bool = True,
    demonstrations: Mapping[str, Any] | str | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> AutoResult:
    """Search, fine-tune and choose on dev within about `budget_minutes` (see the module's docstring).
    `demonstrations` ("similar", "random" or DemonstrationSettings options) adds the best prompt with
    demonstrations in context as one more finalist."""
    if budget_minutes <= 0:
        raise ConfigError(f"--budget-minutes must be positive, got {budget_minutes}")
    if job.model.method != "prompt" or job.task.type != "single_label":
        raise ConfigError("--auto searches prompts for single-label tasks: use --method prompt (the default)")
    if not job.data.dev or not job.data.train:
        raise ConfigError(
            "--auto chooses everything on dev and searches on train: pass both --train and --dev"
        )
    run_dir = Path(str(job.output))
    check_writable(run_dir, "the run folder")
    if run_dir_state(run_dir) == "resume":
        raise ConfigError(
            f"{run_dir} holds an interrupted run: --auto does not resume; choose a new --output"
        )
    spec = job.reader_options()
    paths = {which: getattr(job.data, which) for which in SPLITS}
    splits = {which: load_split(paths, which, spec) for which in SPLITS}
    manual_words = bool(job.prompt.label_words)
    if not manual_words:  # check_job wants words; the search will find some
        # Without a label map the file's labels are the names ("Sports", "World"): nothing to map.
        labels = list(dict.fromkeys((job.data.label_map or {}).values()))
        labels = labels or label_names(splits["train"] or [])
        if len(labels) < 2:
            raise ConfigError(
                f"--auto without --label-words needs two or more label names; {job.data.train} has "
                f"{labels}: give --label-map RAW=NAME,... (or check --label-column)"
            )
        job = apply_overrides(job, {"prompt.label_words": {label: label for label in labels}})
    check_job(job)
    demos = _demonstration_settings(demonstrations, job)
    check_data(job, splits)
    train, dev = splits["train"] or [], splits["dev"] or []
    with run_lock(run_dir):
        return _run(job, run_dir, train, dev, splits["test"], budget_minutes, task_type, generate,
                    manual_words, on_progress, ensemble=ensemble, demonstrations=demos)  # fmt: skip


def auto_train_examples(
    job: JobConfig,
    train: Sequence[Example],
    dev: Sequence[Example],
    budget_minutes: float,
    *,
    test: Sequence[Example] | None = None,
    task_type: str | None = None,
    generate: bool = True,
    ensemble: bool = True,
    demonstrations: Mapping[str, Any] | str | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> AutoResult:
    """`auto_train` on examples already in memory (the benchmark's splits): the job gives the model, the
    starting prompt (template and label words), the training settings and the run folder (`output`)."""
    if budget_minutes <= 0:
        raise ConfigError(f"--budget-minutes must be positive, got {budget_minutes}")
    if not job.prompt.label_words or job.model.method != "prompt" or job.task.type != "single_label":
        raise ConfigError("auto needs a single-label prompt job with a template and label words")
    if not train or not dev:
        raise ConfigError("auto searches on training examples and chooses on dev examples: give both")
    check_job(job, examples_given=True)
    demos = _demonstration_settings(demonstrations, job)
    run_dir = Path(str(job.output))
    check_writable(run_dir, "the run folder")
    with run_lock(run_dir):
        return _run(job, run_dir, train, dev, test, budget_minutes, task_type, generate, True, on_progress,
                    ensemble=ensemble, demonstrations=demos)  # fmt: skip


def _run(
    job: JobConfig,
    run_dir: Path,
    train: Sequence[Example],
    dev: Sequence[Example],
    test: Sequence[Example] | None,
    budget_minutes: float,
    task_type: str | None,
    generate: bool,
    manual_words: bool,
    on_progress: Callable[[str], None] | None,
    *,
    ensemble: bool,
    demonstrations: dict[str, Any] | None,
) -> AutoResult:
    clock = _Clock(budget_minutes)
    m = job.model
    labels = job_labels(job, [*train, *dev])
    decisions: list[Decision] = []
    run_dir.mkdir(parents=True, exist_ok=True)

    def note(text: str) -> None:
        log.info("auto: %s", text)
        if on_progress:
            on_progress(text)

    def record(decision: Decision) -> None:
        decisions.append(decision)
        write_json(run_dir / AUTO_FILE, {"decisions": [asdict(d) for d in decisions], "finished": False})

    template = job.prompt.template
    words = dict(job.prompt.label_words or {})
    manual = None
    zero_shot_of: dict[tuple, dict[str, Any]] = {}
    # Without words of the job's own, the label names stand in (SST-2's "negative"/"positive" are good
    # ones): scored like the job's words, so the search must beat them on dev to replace them.
    words_name = "the job's words" if manual_words else "the label names"
    start = time.perf_counter()
    note("scoring the job's own prompt zero-shot on dev" if manual_words else
         "scoring the label names as label words zero-shot on dev")  # fmt: skip
    clf = _untrained(job, labels, train)
    baseline, _ = score_classifier(clf, dev)
    del clf
    zero_shot_of[(template, json.dumps(words, sort_keys=True))] = baseline
    if manual_words:
        manual = {"template": template, "label_words": words, "zero_shot": baseline}
        record(
            Decision("manual", "done", "the job's prompt, the baseline", time.perf_counter() - start, manual)
        )
    else:
        reason = f"the label names as words score {baseline['accuracy']:.3f} zero-shot on dev"
        details = {"template": template, "label_words": words, "zero_shot": baseline}
        record(Decision("label_names", "done", reason, time.perf_counter() - start, details))
    best_words, words_source = words, "manual" if manual_words else "label names"

    # 2. label words
    other_words: tuple[dict[str, Any], str] | None = None  # the set that lost, when the job gave no words
    if clock.left > 0:
        start = time.perf_counter()
        note("searching label words")
        found = search_label_words(
            m.name, template, train, dev, labels=labels, k=8, top_n=5, kind=m.kind, device=m.device,
            max_length=job.prompt.max_length, seed=job.train.seed,
        )  # fmt: skip
        best = found.best
        same = dict(found.label_words) == words
        # 1e-9: the search's screen and the baseline's score batch differently (float noise, not a win)
        take = not same and best.screen_accuracy > baseline["accuracy"] + 1e-9
        if take:
            best_words, words_source = found.label_words, "label-word search"
        if not manual_words and not same:
            other_words = (words, "label names") if take else (dict(found.label_words), "label-word search")
        reason = (
            f"searched words {found.label_words} score {best.screen_accuracy:.3f} zero-shot on dev vs "
            f"{baseline['accuracy']:.3f} for {words_name}"
            + ("; taken" if take else f"; they are {words_name}" if same else f"; {words_name} kept")
        )
        record(Decision("label_words", "done", reason, time.perf_counter() - start, found.to_dict()))
    else:
        record(Decision("label_words", "skipped", "no budget left"))

    # 3. templates
    best_template, template_source = template, "manual"
    runner_up: dict[str, Any] | None = None
    # Without the job's own words, neither set was chosen for the job's template (the default one is a
    # sentiment pattern): the set that lost on it gets its own template search too (the label names
    # "Sports"/"World" may win with a topic template). The first set wins ties.
    word_sets = [(best_words, words_source), *([other_words] if other_words else [])]
    best_score = None
    for set_words, set_source in word_sets:
        with_set = f" with {set_source}" if len(word_sets) > 1 else ""
        if clock.left <= 0:
            record(Decision("templates", "skipped", f"no budget left{with_set}"))
            break
        start = time.perf_counter()
        note(f"searching templates{with_set}")
        # at most half the time left: the other half is the fine-tunes'
        found_t = search_templates(
            m.name, train, dev, set_words, task_type=task_type, templates=[template], generate=generate,
            keep_generated=5, max_generated=20, samples=4, kind=m.kind, device=m.device,
            max_length=job.prompt.max_length, seed=job.train.seed, max_seconds=clock.left / 2,
        )  # fmt: skip
        top = found_t.best
        for c in found_t.ranked:
            zero_shot_of[(c.template, json.dumps(set_words, sort_keys=True))] = c.zero_shot or {}
        won = best_score is None or top.zero_shot["accuracy"] > best_score
        reason = (
            f"{top.template!r} ({top.source}) scores {top.zero_shot['accuracy']:.3f} zero-shot on dev, best of "
            f"{len(found_t.ranked)}{with_set}"
        )
        if found_t.settings["unscored"]:
            reason += f" ({len(found_t.settings['unscored'])} left unscored: half the budget left was spent)"
        if best_score is not None:
            reason += f"; {'taken' if won else 'not taken'} (vs {best_score:.3f} with {words_source})"
        if won:
            best_score = top.zero_shot["accuracy"]
            best_template, template_source = top.template, top.source
            best_words, words_source = set_words, set_source
            # the next-best template not already a finalist: a third, different member for the ensemble
            runner_up = next(
                (
                    {"template": c.template, "source": c.source}
                    for c in found_t.ranked[1:]
                    if c.template not in (top.template, template)
                ),
                None,
            )
        record(Decision("templates", "done", reason, time.perf_counter() - start, found_t.to_dict()))

    # 4. finalists
    finalists: list[dict[str, Any]] = []
    if manual is not None:
        finalists.append({"name": "manual", "template": template, "label_words": words, "source": "manual"})
    searched = {
        "name": "searched",
        "template": best_template,
        "label_words": best_words,
        "source": f"template: {template_source}; words: {words_source}",
    }
    if not finalists or (searched["template"], searched["label_words"]) != (template, words):
        finalists.append(searched)
    if ensemble and runner_up is not None:
        finalists.append(
            {
                "name": "runner_up",
                "template": runner_up["template"],
                "label_words": best_words,
                "source": f"template: {runner_up['source']} (the search's next best); words: {words_source}",
            }
        )
    for f in finalists:
        f["zero_shot"] = zero_shot_of.get((f["template"], json.dumps(f["label_words"], sort_keys=True)))

    zero_shot = m.finetune == "none"
    candidates_dir = run_dir / CANDIDATES_DIR
    per_run: float | None = None  # the last plain fine-tune's seconds: the estimate of the next one
    stage = "score" if zero_shot else "finetune"

    def fit(f: dict[str, Any], first: bool = False) -> float:
        """Fine-tune one finalist and keep its best dev numbers (zero-shot: score it on dev); its seconds.
        Training stops when the budget is spent (train.max_minutes, keeping the best step so far); the first
        finalist gets at least a quarter of the budget, so that the run always ends with a fine-tuned model."""
        start = time.perf_counter()
        prompt = {"template": f["template"], "label_words": f["label_words"]}
        if f.get("demonstrations"):
            prompt["demonstrations"] = f["demonstrations"]
        if zero_shot:
            if job.prompt.demonstrations is None and not f.get("demonstrations"):
                f["dev"] = f["zero_shot"]  # the search scored it already
                return 0.0
            note(f"scoring the {f['name']} prompt zero-shot on dev, with demonstrations")
            f["dev"], _ = score_classifier(_untrained(_prompt_job(job, f, None), labels, train), dev)
            seconds = time.perf_counter() - start
            record(Decision(f"score_{f['name']}", "done", f"zero-shot dev {f['dev']}", seconds, prompt))
            return seconds
        note(f"fine-tuning the {f['name']} prompt: {f['template']!r} {f['label_words']}")
        folder = candidates_dir / f["name"]
        cand_job = _prompt_job(job, f, str(folder))
        minutes = max(clock.left, clock.budget / 4 if first else 0.0) / 60
        if job.train.max_minutes is not None:
            minutes = min(minutes, job.train.max_minutes)
        cand_job = apply_overrides(cand_job, {"train.max_minutes": max(minutes, 1e-6)})
        clf = build_classifier(cand_job, labels)
        result = Trainer(clf, cand_job.train, run_dir=folder).train(train, dev)
        cand_job.to_yaml(folder / JOB_FILE)
        seconds = time.perf_counter() - start
        f["dev"] = result.best_dev
        f["best_step"] = result.best_step
        f["folder"] = str(folder)
        cut = f" (the budget stopped it at step {result.steps} of {cand_job.train.max_steps})"
        record(
            Decision(
                f"finetune_{f['name']}",
                "done",
                f"dev {result.best_dev} at step {result.best_step}"
                + (cut if result.time_limited else "")
                + (
                    "; the refit on train + dev skipped: the budget had no time for it"
                    if result.refit_skipped
                    else ""
                ),
                seconds,
                {**prompt, "folder": str(folder)},
            )
        )
        return seconds

    for i, f in enumerate(finalists):
        if not zero_shot and i > 0 and per_run is not None and per_run > clock.left:
            f["skipped"] = f"a fine-tune takes about {per_run:.0f}s and {max(clock.left, 0):.0f}s are left"
            record(Decision(f"finetune_{f['name']}", "skipped", f["skipped"]))
            continue
        seconds = fit(f, first=i == 0)
        per_run = None if zero_shot else seconds

    metric = job.train.metric if job.train.metric in ("accuracy", "macro_f1") else "accuracy"
    scored = [f for f in finalists if f.get("dev")]
    winner = max(scored, key=lambda f: f["dev"][metric])  # max keeps the first (manual) on a tie

    # 4b. opt-in: the best prompt again with demonstrations in context, kept if it beats it on dev
    if demonstrations is not None:
        demo: dict[str, Any] = {
            "name": "demonstrations",
            "template": winner["template"],
            "label_words": winner["label_words"],
            "source": f"the {winner['name']} prompt with {demonstrations['selection']} demonstrations",
            "demonstrations": demonstrations,
        }
        finalists.append(demo)
        # the context grows with one demonstration per label: (labels + 1) / 2 times a plain run, at least
        # 1.5x (the benchmark's ratios: 1.7x on SST-2, 4.2x on TREC's 6 labels)
        estimate = None if per_run is None else per_run * max(1.5, (len(labels) + 1) / 2)
        if clock.left <= 0 or (estimate is not None and estimate > clock.left):
            demo["skipped"] = (
                "no budget left"
                if estimate is None
                else f"with demonstrations a fine-tune takes about {estimate:.0f}s and "
                f"{max(clock.left, 0):.0f}s are left"
            )
            record(Decision(f"{stage}_demonstrations", "skipped", demo["skipped"]))
        else:
            fit(demo)
            if demo["dev"][metric] > winner["dev"][metric]:
                winner = demo

    # 5. an ensemble of the fine-tuned finalists (PET's dev-weighted logits), kept if it beats the best one
    ensembled = None
    trained = [f for f in finalists if f.get("folder")]
    if ensemble and len(trained) >= 2 and job.train.refit:
        # the refit finalists trained on dev: an ensemble scored there would look better than it is
        record(
            Decision(
                "ensemble", "skipped", "train.refit: the finalists trained on dev, which cannot score them"
            )
        )
    elif ensemble and len(trained) >= 2:
        if clock.left > 0:
            start = time.perf_counter()
            note(f"scoring an ensemble of {len(trained)} fine-tuned prompts on dev")
            ensembled = _ensemble_of(trained, metric, m.device)
            ensemble_dev = ensembled.evaluate(dev, job.train.eval_batch_size)
            take = ensemble_dev[metric] > winner["dev"][metric]
            names = ensembled.names
            record(
                Decision(
                    "ensemble",
                    "done",
                    f"dev-weighted ensemble of {', '.join(names)}: dev {metric} {ensemble_dev[metric]:.3f} vs "
                    f"{winner['dev'][metric]:.3f} for the best single one ({winner['name']}); "
                    + ("the ensemble taken" if take else "the single model kept (a tie keeps it too)"),
                    time.perf_counter() - start,
                    {"members": names, "weights": ensembled.weights.tolist(), "dev": ensemble_dev},
                )
            )
            if take:
                winner = {
                    "name": "ensemble",
                    "template": None,
                    "label_words": None,
                    "source": f"ensemble of {', '.join(names)} (weighted by dev {metric})",
                    "dev": ensemble_dev,
                    "members": names,
                    "best_single": winner["name"],
                }
            else:
                ensembled = None
        else:
            record(Decision("ensemble", "skipped", "no budget left"))
    manual_final = next((f for f in scored if f["name"] == "manual"), None)
    beats = None
    if manual_final is not None:
        beats = winner is not manual_final and winner["dev"][metric] > manual_final["dev"][metric]
    record(
        Decision(
            "choice",
            "done",
            f"{winner['name']} prompt: dev {metric} {winner['dev'][metric]:.3f}"
            + (
                f" vs manual {manual_final['dev'][metric]:.3f}"
                if manual_final is not None and winner is not manual_final
                else ""
            ),
            details={"finalists": finalists, "metric": metric},
        )
    )

    # 6. the run folder of the winner (for an ensemble, job.yaml holds its best single member's prompt)
    single = winner if ensembled is None else next(f for f in finalists if f["name"] == winner["best_single"])
    final_job = _prompt_job(job, single, str(run_dir))
    if ensembled is not None:
        shutil.rmtree(run_dir / BEST_DIR, ignore_errors=True)
        ensembled.save_pretrained(run_dir / BEST_DIR)
        clf = ensembled
    elif zero_shot:
        clf = _untrained(final_job, labels, train)
        clf.save_pretrained(run_dir / BEST_DIR, overwrite=True)
    else:
        shutil.rmtree(run_dir / BEST_DIR, ignore_errors=True)
        shutil.copytree(Path(winner["folder"]) / BEST_DIR, run_dir / BEST_DIR)
        from promptft.classifiers import load_classifier

        clf = load_classifier(run_dir / BEST_DIR, device=m.device)
    (run_dir / JOB_FILE).unlink(missing_ok=True)
    final_job.to_yaml(run_dir / JOB_FILE)
    test_metrics = None
    if test:
        note("scoring the chosen model on the test file")
        test_metrics = clf.evaluate(test, job.train.eval_batch_size)
        write_json(run_dir / TEST_FILE, test_metrics)
    chosen = {
        k: winner.get(k)
        for k in ("name", "template", "label_words", "demonstrations", "source", "dev", "members")
    }
    result = AutoResult(
        run_dir=str(run_dir),
        chosen=chosen,
        manual=manual,
        beats_manual=beats,
        decisions=decisions,
        test=test_metrics,
        budget_minutes=budget_minutes,
        seconds=round(clock.elapsed, 2),
    )
    write_json(run_dir / AUTO_FILE, {**result.to_dict(), "finished": True})
    write_json(
        run_dir / FINAL,
        {"auto": True, "best_dev": winner["dev"], "best_step": winner.get("best_step", 0), "chosen": chosen},
    )
    return result
