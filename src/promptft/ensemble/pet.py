"""PET and iPET (Schick & Schütze 2021): one prompt model per pattern–verbalizer pair, ensembled; the
ensemble labels an unlabelled pool with soft labels and a final classifier learns them.

PET, one generation:

1. For every pattern (template + label words) a fresh classifier (`build(pattern)`) is fine-tuned on the
   labelled examples, the best step chosen on dev as in any fit.
2. Each model gets a weight (`PetConfig.weighting`): its dev score after training (the default here:
   the benchmark has a dev split and every model is already selected on it, so its dev score is the best
   estimate of its quality we have), or PET's accuracy on the training examples *before* training (PET
   had no dev set, and after training every model fits its 32 examples), or equal weights.
3. The weighted ensemble (`promptft.classifiers.ensemble`) scores the pool; its softmax at temperature T
   (PET: 2) is each pool example's soft label.
4. The final classifier (default: a fresh prompt classifier with the first pattern; `build_final`) trains
   with the `SoftLabel` objective, `T² · KL(soft label ‖ softmax(z / T))`, on the pool (plus the labelled
   examples as one-hot rows), the best step chosen on dev.

iPET: generations g = 1, 2, ... retrain every pattern model from the pretrained model on the labelled
examples plus pool examples labelled (argmax, one-hot) by the ensemble of the *other* patterns' models of
generation g - 1. The training set grows by `scale_factor` (PET's d = 5): generation g trains on
`n_train * d**g` examples, the new ones split equally between the labels and taken most confident first
(PET samples them in proportion to the confidence instead, and may use a random subset of the other
models, its lambda; here all of them). The last generation's ensemble then labels the pool for step 4.

With `run_dir`, every model trains in its own Trainer run folder (`gen<g>/pattern<i>/`) and keeps its
pool and dev log-probabilities beside it (`pet_scores.safetensors`, `pet_model.json`); the final
classifier trains in `final/`. A rerun skips finished models and resumes an interrupted one from its
checkpoint, so an interrupted PET run loses at most part of one model's training.

Building block for `promptft.recipes.pet` (files, run folder, CLI) and the benchmark's `pet` and `ipet`.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from promptft.classifiers import BaseClassifier
from promptft.classifiers.ensemble import combine_log_probs, ensemble_weights, label_order, soft_targets
from promptft.config.pet import PetConfig
from promptft.config.train import TrainConfig
from promptft.data import Example
from promptft.errors import ConfigError, DataError, RunDirError
from promptft.objectives import SingleLabel, SoftLabel
from promptft.objectives.single_label import classification_metrics
from promptft.training.trainer import BEST, FINAL, Trainer

log = logging.getLogger(__name__)

SCORES_FILE = "pet_scores.safetensors"
MODEL_FILE = "pet_model.json"
BEFORE_SUFFIX = ".before.json"  # weighting "train": the untrained model's accuracy, for a resumed run
FINAL_DIR = "final"


@dataclass(frozen=True)
class Pattern:
    """A pattern–verbalizer pair: the template and each label's word(s)."""

    template: str
    label_words: Mapping[str, str | Sequence[str]]

    def to_dict(self) -> dict[str, Any]:
        words = {k: v if isinstance(v, str) else list(v) for k, v in self.label_words.items()}
        return {"template": self.template, "label_words": words}


def as_patterns(
    items: Iterable[Pattern | str | tuple | Mapping[str, Any]],
    default_words: Mapping[str, str | Sequence[str]] | None = None,
) -> list[Pattern]:
    """Patterns from `Pattern`s, `(template, label_words)` pairs, `{"template": ..., "label_words": ...}`
    mappings, or template strings (which take `default_words`)."""
    out = []
    for item in items:
        if isinstance(item, Pattern):
            out.append(item)
            continue
        if isinstance(item, str):
            template, words = item, None
        elif isinstance(item, Mapping):
            template, words = item.get("template"), item.get("label_words")
            extra = sorted(set(item) - {"template", "label_words"})
            if extra or not isinstance(template, str):
                raise ConfigError(
                    f"a pattern is {{template: ..., label_words: {{label: word}}}}, got {dict(item)!r}"
                )
        elif isinstance(item, tuple) and len(item) == 2:
            template, words = item
        else:
            raise ConfigError(f"a pattern is a template or (template, label_words), got {item!r}")
        words = words or default_words
        if not words:
            raise ConfigError(
                f"pattern {template!r} has no label words: give them with it, or give the job's label words"
            )
        out.append(Pattern(str(template), dict(words)))
    return out


# ---------------------------------------------------------------------------------------------------------
# the pool


_NOT_ALNUM = re.compile(r"[\W_]+")
_VOWELS = re.compile(r"[aeiouy]+")


def text_key(text: str) -> str:
    """What two copies of one sentence share: lower case, letters and digits only, vowels dropped. The
    LM-BFF few-shot files and the GLUE-derived pools tokenise and spell differently (`( kim )` vs
    `(kim)`, `writer\\/director`, flavour vs flavor, grey vs gray); on SST-2 this key finds every one of
    the 5 seeds' 320 train/dev sentences in train.tsv or dev.tsv, where exact matching misses 15. Two
    different texts that share a key are rare, and merely drop one more pool text."""
    return _VOWELS.sub("", _NOT_ALNUM.sub("", text.lower()))


def _key(example: Example) -> tuple:
    return tuple(sorted((k, text_key(str(v))) for k, v in example.fields.items()))


def exclude_examples(pool: Sequence[Example], *labelled: Iterable[Example]) -> list[Example]:
    """The pool without any text of the labelled sets and without duplicates (compared field by field by
    `text_key`): a few-shot, dev or test example never gets a pseudo-label."""
    seen = {_key(ex) for examples in labelled for ex in examples}
    out = []
    for ex in pool:
        key = _key(ex)
        if key not in seen:
            seen.add(key)
            out.append(Example(dict(ex.fields)))
    return out


def sample_pool(pool: Sequence[Example], limit: int | None, seed: int) -> list[Example]:
    """A seeded random sample of `limit` pool examples (the whole pool when it is not larger)."""
    import random

    if limit is None or limit >= len(pool):
        return list(pool)
    return random.Random(seed).sample(list(pool), limit)


# ---------------------------------------------------------------------------------------------------------
# iPET: how many examples each generation adds, and which


def ipet_quota(
    n_train: int, generation: int, scale_factor: float, n_labels: int, pool_size: int
) -> list[int]:
    """New examples per label for `generation` (>= 1): the training set grows to `n_train * d**g`, the new
    ones split equally between the labels (the first labels take the remainder), at most the pool."""
    total = int(round(n_train * scale_factor**generation)) - n_train
    total = max(0, min(total, pool_size))
    base, extra = divmod(total, n_labels)
    return [base + (1 if j < extra else 0) for j in range(n_labels)]


def select_confident(
    pool: Sequence[Example], probs: torch.Tensor, labels: Sequence[str], quota: Sequence[int]
) -> tuple[list[Example], list[int]]:
    """For each label, the pool examples the ensemble assigns to it (argmax), most confident first, up to
    its quota; returns them with that label, and how many each label got (fewer than its quota when the
    ensemble assigns fewer pool examples to it)."""
    predicted = probs.argmax(-1)
    chosen, counts = [], []
    for j, label in enumerate(labels):
        idx = torch.nonzero(predicted == j).flatten().tolist()
        idx.sort(key=lambda i: (-float(probs[i, j]), i))
        take = idx[: quota[j]]
        chosen.extend(Example(dict(pool[i].fields), label) for i in take)
        counts.append(len(take))
    return chosen, counts


# ---------------------------------------------------------------------------------------------------------
# the run


@dataclass
class ModelRecord:
    """One pattern model of one generation."""

    generation: int
    pattern: int
    template: str
    label_words: dict[str, Any]
    n_train: int
    added: list[int] | None  # iPET: pool examples added per label (None in generation 0)
    dev: dict[str, float] | None
    train_accuracy_before: float | None  # weighting "train": accuracy on the labelled examples, untrained
    weight_score: float  # what the weight is made of (before normalisation)
    steps: int
    best_step: int
    train_time_s: float
    scoring_time_s: float  # pool + dev log-probabilities
    folder: str | None = None


@dataclass
class PetOutcome:
    """What `run_pet` did; `classifier` is the trained final classifier (in memory)."""

    classifier: BaseClassifier
    models: list[ModelRecord]
    generations: list[dict[str, Any]]
    ensemble_dev: dict[str, float] | None
    final: dict[str, Any]
    pool_size: int
    n_train: int
    settings: dict[str, Any]
    patterns: list[dict[str, Any]]
    seconds: float
    times: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "patterns": self.patterns,
            "settings": self.settings,
            "n_train": self.n_train,
            "pool_size": self.pool_size,
            "models": [asdict(m) for m in self.models],
            "generations": self.generations,
            "ensemble_dev": self.ensemble_dev,
            "final": self.final,
            "times_s": self.times,
            "seconds": self.seconds,
        }


def check_pet(patterns: Sequence[Pattern], settings: PetConfig, has_dev: bool) -> None:
    """Configuration mistakes, before any data is labelled or a model loads."""
    if not patterns:
        raise ConfigError("PET needs at least one pattern (template + label words)")
    if settings.ipet and len(patterns) < 2:
        raise ConfigError(
            f"iPET ({settings.generations} generations) labels each pattern model's new examples with the "
            "ensemble of the OTHER patterns: give at least 2 patterns (--template twice or more), or run "
            "PET with --generations 1"
        )
    if settings.weighting == "dev" and not has_dev:
        raise ConfigError(
            "the ensemble weights are the models' dev scores (weighting: dev): give a dev set (--dev), or "
            "use --weighting train (PET's accuracy before training) or uniform"
        )


def run_pet(
    build: Callable[[Pattern], BaseClassifier],
    patterns: Sequence[Pattern],
    train: Sequence[Example],
    dev: Sequence[Example],
    pool: Sequence[Example],
    *,
    labels: Sequence[str],
    train_config: TrainConfig,
    settings: PetConfig | None = None,
    build_final: Callable[[], BaseClassifier] | None = None,
    run_dir: str | Path | None = None,
    batch_size: int = 32,
    on_progress: Callable[[str], None] | None = None,
) -> PetOutcome:
    """PET (or iPET with `settings.generations >= 2`), see the module docstring. `build(pattern)` gives a
    fresh trainable single-label classifier for a pattern; `build_final()` the final classifier (default
    `build(patterns[0])`). `pool`: unlabelled examples, already without the labelled ones
    (`exclude_examples`) and sampled (`sample_pool`)."""
    settings = settings or PetConfig()
    patterns = list(patterns)
    labels = list(labels)
    check_pet(patterns, settings, bool(dev))
    if train_config.refit:
        raise ConfigError(
            "refit trains each pattern model on dev too, and PET weighs and scores them on dev: leave refit "
            "off for PET and iPET"
        )
    if not pool:
        raise DataError(
            "the unlabelled pool is empty (after removing the labelled train/dev/test texts): give a pool "
            "file with other texts of the task"
        )
    if not train:
        raise DataError("PET trains each pattern model on labelled examples: the training set is empty")
    run_dir = Path(run_dir) if run_dir is not None else None
    metric = SingleLabel(labels).check_metric(train_config.metric)
    started = time.perf_counter()
    times = {"pattern_models_s": 0.0, "scoring_s": 0.0}

    def note(text: str) -> None:
        log.info("pet: %s", text)
        if on_progress is not None:
            on_progress(text)

    records: list[ModelRecord] = []
    generations: list[dict[str, Any]] = []
    previous: list[tuple[ModelRecord, torch.Tensor]] = []  # (record, pool log-probs) of the last generation
    dev_gold = [str(ex.label) for ex in dev]
    for g in range(settings.generations):
        current: list[tuple[ModelRecord, torch.Tensor, torch.Tensor]] = []
        for i, pattern in enumerate(patterns):
            added, counts = [], None
            if g > 0:
                others = [(r, p) for k, (r, p) in enumerate(previous) if k != i]
                combined = _combine([p for _, p in others], [r.weight_score for r, _ in others], settings)
                quota = ipet_quota(len(train), g, settings.scale_factor, len(labels), len(pool))
                added, counts = select_confident(pool, soft_targets(combined), labels, quota)
            folder = run_dir / f"gen{g}" / f"pattern{i}" if run_dir is not None else None
            note(
                f"generation {g}: training pattern {i + 1}/{len(patterns)} {pattern.template!r} on "
                f"{len(train) + len(added)} examples"
            )
            record, pool_lp, dev_lp = _pattern_model(
                build, pattern, g, i, [*train, *added], counts, dev, pool, train_config, settings, metric,
                folder, batch_size, labels,
            )  # fmt: skip
            times["pattern_models_s"] += record.train_time_s
            times["scoring_s"] += record.scoring_time_s
            records.append(record)
            current.append((record, pool_lp, dev_lp))
        weights = ensemble_weights([r.weight_score for r, _, _ in current], len(current))
        ensemble_dev = None
        if dev:
            combined_dev = combine_log_probs(
                torch.stack([d for _, _, d in current]), weights, settings.combine
            )
            predicted = [labels[j] for j in combined_dev.argmax(-1).tolist()]
            ensemble_dev = classification_metrics(dev_gold, predicted, labels)
        generations.append(
            {
                "generation": g,
                "n_train_per_model": [r.n_train for r, _, _ in current],
                "added_per_label": [r.added for r, _, _ in current],
                "weights": [round(float(w), 6) for w in weights],
                "ensemble_dev": ensemble_dev,
            }
        )
        if ensemble_dev is not None:
            note(f"generation {g}: ensemble dev {metric} {ensemble_dev[metric]:.3f}")
        previous = [(r, p) for r, p, _ in current]

    # the final classifier on the last generation's soft labels
    last = generations[-1]
    combined = _combine([p for _, p in previous], [r.weight_score for r, _ in previous], settings)
    soft = soft_targets(combined, settings.temperature)
    soft_set = [Example(dict(ex.fields), tuple(row)) for ex, row in zip(pool, soft.tolist(), strict=True)]
    final_train = [*soft_set, *(train if settings.include_labelled else [])]
    final_cfg = final_train_config(train_config, settings)
    note(f"training the final classifier on {len(soft_set)} soft-labelled pool examples")
    final_dir = run_dir / FINAL_DIR if run_dir is not None else None
    t0 = time.perf_counter()
    clf, final_result = _final_model(
        build_final or (lambda: build(patterns[0])), final_train, dev, final_cfg, labels, settings, final_dir
    )
    times["final_s"] = round(time.perf_counter() - t0, 3)
    final = {
        **final_result,
        "n_soft": len(soft_set),
        "n_labelled": len(train) if settings.include_labelled else 0,
        "soft_label_mean_max": round(float(soft.max(-1).values.mean()), 6),
        "pool_label_counts": {label: int((combined.argmax(-1) == j).sum()) for j, label in enumerate(labels)},
    }
    times = {k: round(v, 3) for k, v in times.items()}
    return PetOutcome(
        classifier=clf,
        models=records,
        generations=generations,
        ensemble_dev=last["ensemble_dev"],
        final=final,
        pool_size=len(pool),
        n_train=len(train),
        settings=settings.to_dict(),
        patterns=[p.to_dict() for p in patterns],
        seconds=round(time.perf_counter() - started, 3),
        times=times,
    )


def final_train_config(train_config: TrainConfig, settings: PetConfig) -> TrainConfig:
    """The final classifier's training settings: the pattern models', with `final_steps` and
    `final_learning_rate` when given."""
    changes: dict[str, Any] = {}
    if settings.final_steps is not None:
        changes["max_steps"] = settings.final_steps
    if settings.final_learning_rate is not None:
        changes["learning_rate"] = settings.final_learning_rate
    return train_config.replace(**changes) if changes else train_config


def _combine(log_probs: Sequence[torch.Tensor], scores: Sequence[float], settings: PetConfig) -> torch.Tensor:
    weights = None if settings.weighting == "uniform" else ensemble_weights(list(scores), len(scores))
    return combine_log_probs(torch.stack(list(log_probs)), weights, settings.combine)


def _log_probs(
    clf: BaseClassifier, examples: Sequence[Example], batch_size: int, labels: Sequence[str]
) -> torch.Tensor:
    """`[n, n_labels]` in the run's `labels` order: a pattern's label words may list them in another."""
    order = label_order(labels, clf.labels, "a pattern model and the run")
    if not examples:
        return torch.zeros((0, len(labels)))
    log_probs = torch.log_softmax(clf.logits_encoded(clf.encode(list(examples)), batch_size).float(), dim=-1)
    return log_probs if order is None else log_probs[:, order]


def _pattern_model(
    build: Callable[[Pattern], BaseClassifier],
    pattern: Pattern,
    generation: int,
    index: int,
    train: Sequence[Example],
    added: list[int] | None,
    dev: Sequence[Example],
    pool: Sequence[Example],
    cfg: TrainConfig,
    settings: PetConfig,
    metric: str,
    folder: Path | None,
    batch_size: int,
    labels: Sequence[str],
) -> tuple[ModelRecord, torch.Tensor, torch.Tensor]:
    """Train (or, in a run folder, pick up) one pattern model; its record and log-probabilities on the
    pool and dev."""
    if folder is not None and (folder / MODEL_FILE).exists() and (folder / SCORES_FILE).exists():
        from safetensors.torch import load_file

        record = ModelRecord(**json.loads((folder / MODEL_FILE).read_text()))
        scores = load_file(str(folder / SCORES_FILE))
        if scores["pool"].shape[0] != len(pool) or scores["dev"].shape[0] != len(dev):
            raise RunDirError(
                f"{folder} scored another pool or dev set ({scores['pool'].shape[0]} / {scores['dev'].shape[0]} "
                f"examples, now {len(pool)} / {len(dev)}): choose another --output"
            )
        log.info("pet: %s is done, reusing it", folder)
        return record, scores["pool"], scores["dev"]
    before = None
    # beside the Trainer's folder, which must hold nothing else before its first checkpoint
    before_file = folder.with_name(folder.name + BEFORE_SUFFIX) if folder is not None else None
    if folder is not None and (folder / FINAL).exists():  # trained, but stopped before scoring
        from promptft.classifiers import load_classifier

        clf = load_classifier(folder / BEST)
        result = json.loads((folder / FINAL).read_text())
        steps, best_step, train_time, best_dev = (
            result["steps"], result["best_step"], result["train_time_s"], result["best_dev"]
        )  # fmt: skip
        if settings.weighting == "train":
            before = json.loads(before_file.read_text())["accuracy"]  # type: ignore[union-attr]
    else:
        clf = build(pattern)
        if settings.weighting == "train":
            if before_file is not None and before_file.exists():  # an interrupted training's
                before = json.loads(before_file.read_text())["accuracy"]
            else:
                before = clf.evaluate(list(train[: _n_labelled(train, added)]), batch_size)["accuracy"]
            if before_file is not None:
                before_file.parent.mkdir(parents=True, exist_ok=True)
                before_file.write_text(json.dumps({"accuracy": before}))
        result = Trainer(clf, cfg, run_dir=folder).train(list(train), list(dev))
        steps, best_step, train_time, best_dev = (
            result.steps, result.best_step, result.train_time_s, result.best_dev
        )  # fmt: skip
    t0 = time.perf_counter()
    pool_lp = _log_probs(clf, pool, batch_size, labels)
    dev_lp = _log_probs(clf, dev, batch_size, labels)
    scoring = round(time.perf_counter() - t0, 3)
    if settings.weighting == "dev":
        weight = float(best_dev[metric]) if best_dev else 0.0
    elif settings.weighting == "train":
        weight = float(before or 0.0)
    else:
        weight = 1.0
    record = ModelRecord(
        generation=generation,
        pattern=index,
        template=pattern.template,
        label_words=pattern.to_dict()["label_words"],
        n_train=len(train),
        added=added,
        dev=best_dev,
        train_accuracy_before=before,
        weight_score=weight,
        steps=steps,
        best_step=best_step,
        train_time_s=train_time,
        scoring_time_s=scoring,
        folder=str(folder) if folder is not None else None,
    )
    if folder is not None:
        from safetensors.torch import save_file

        save_file({"pool": pool_lp.contiguous(), "dev": dev_lp.contiguous()}, str(folder / SCORES_FILE))
        tmp = folder / (MODEL_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(record), indent=2))
        tmp.replace(folder / MODEL_FILE)  # written last: its presence means the model is done
    del clf
    gc.collect()
    return record, pool_lp, dev_lp


def _n_labelled(train: Sequence[Example], added: list[int] | None) -> int:
    """The labelled examples come first in a generation's training set; iPET's added ones follow."""
    return len(train) - (sum(added) if added else 0)


def _final_model(
    build_final: Callable[[], BaseClassifier],
    train: Sequence[Example],
    dev: Sequence[Example],
    cfg: TrainConfig,
    labels: Sequence[str],
    settings: PetConfig,
    folder: Path | None,
) -> tuple[BaseClassifier, dict[str, Any]]:
    keys = ("best_step", "best_dev", "steps", "train_time_s", "stopped_early")
    if folder is not None and (folder / FINAL).exists():
        from promptft.classifiers import load_classifier

        log.info("pet: the final classifier in %s is done, reusing it", folder)
        result = json.loads((folder / FINAL).read_text())
        return load_classifier(folder / BEST), {k: result.get(k) for k in keys}
    clf = build_final()
    # the soft labels' rows are in the run's label order; the final classifier may list the labels in another
    order = label_order(clf.labels, labels, "the final classifier and the patterns")
    if order is not None:
        train = [
            Example(ex.fields, tuple(ex.label[j] for j in order)) if isinstance(ex.label, tuple) else ex
            for ex in train
        ]
    objective = SoftLabel(clf.labels, settings.temperature)
    result = Trainer(clf, cfg, run_dir=folder, objective=objective).train(list(train), list(dev))
    return clf, {k: getattr(result, k) for k in keys}
