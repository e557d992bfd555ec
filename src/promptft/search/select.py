"""Model selection (`promptft select`): compare candidate models on the user's own data (zero-shot
accuracy, a short LoRA fine-tune sized to a time budget, latency, peak memory) under latency and memory
limits, and recommend one. Returns dataclasses; the CLI prints them.
"""

from __future__ import annotations

import gc
import json
import math
import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from promptft.data import Example
from promptft.errors import ConfigError, DataError, PromptFTError
from promptft.search.models import GB, ModelInfo, describe_folder


@dataclass
class Candidate:
    model: str
    kind: str | None = None
    zero_shot_accuracy: float | None = None  # on the dev split, before training
    tuned_accuracy: float | None = None  # on the dev split, after the short LoRA fine-tune
    steps: int = 0
    train_time_s: float = 0.0
    latency_ms: float | None = None  # median per example, batch size 1
    peak_memory_gb: float | None = None  # measured during the run (RSS growth on CPU, allocator peak on GPU)
    memory_measured_by: str | None = None
    estimated_lora_gb: float | None = None
    total_time_s: float = 0.0
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    # CrowS-Pairs on the pretrained model (only when asked): % preferring the more stereotyping sentence
    crows_pairs_score: float | None = None
    crows_pairs: dict[str, Any] | None = None  # the full result: per bias type

    @property
    def accuracy(self) -> float | None:
        """What the ranking uses: the tuned accuracy, else the zero-shot one."""
        return self.tuned_accuracy if self.tuned_accuracy is not None else self.zero_shot_accuracy

    @property
    def ok(self) -> bool:
        return self.error is None and not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "accuracy": self.accuracy, "ok": self.ok}


@dataclass
class Selection:
    candidates: list[Candidate]  # ranked: those meeting the constraints first, by accuracy
    recommended: Candidate | None
    reason: str
    n_train: int
    n_dev: int
    budget_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidates": [c.to_dict() for c in self.candidates],
            "recommended": self.recommended.model if self.recommended else None,
            "reason": self.reason,
            "n_train": self.n_train,
            "n_dev": self.n_dev,
            "budget_s": self.budget_s,
        }


def check_constraints(
    candidate: Candidate, max_latency_ms: float | None = None, max_memory_gb: float | None = None
) -> list[str]:
    """The constraints a candidate breaks (measured memory, else the estimate)."""
    out = []
    if (
        max_latency_ms is not None
        and candidate.latency_ms is not None
        and candidate.latency_ms > max_latency_ms
    ):
        out.append(f"latency {candidate.latency_ms:.1f} ms > {max_latency_ms:g} ms")
    memory = candidate.peak_memory_gb if candidate.peak_memory_gb is not None else candidate.estimated_lora_gb
    if max_memory_gb is not None and memory is not None and memory > max_memory_gb:
        out.append(f"memory {memory:.2f} GB > {max_memory_gb:g} GB")
    return out


def rank_candidates(candidates: Sequence[Candidate]) -> tuple[list[Candidate], Candidate | None, str]:
    """Order: no error, constraints met, higher accuracy, lower latency. Returns (ranked, pick, reason)."""

    def key(c: Candidate):
        return (
            c.error is not None,
            not c.ok,
            -(c.accuracy if c.accuracy is not None else -1.0),
            c.latency_ms if c.latency_ms is not None else math.inf,
        )

    ranked = sorted(candidates, key=key)
    pick = next((c for c in ranked if c.ok and c.accuracy is not None), None)
    if pick is not None:
        acc = f"{100 * pick.accuracy:.1f}%" if pick.accuracy is not None else "?"
        which = (
            "after the short fine-tune"
            if pick.tuned_accuracy is not None
            else "zero-shot; fine-tuning was skipped, 0 steps: raise --budget-s to tune"
        )
        reason = (
            f"{pick.model}: best dev accuracy ({acc}, {which}) among the candidates that meet the constraints"
        )
    elif any(c.error is None for c in ranked):
        best = next(c for c in ranked if c.error is None)
        reason = (
            f"no candidate meets the constraints ({'; '.join(best.violations)} for the most accurate, "
            f"{best.model}): relax --max-latency-ms / --max-memory-gb, or try smaller models"
        )
    else:
        reason = "every candidate failed to load or run: see the errors, and check the model names"
    return ranked, pick, reason


class PeakMemory:
    """Peak memory growth while the block runs: CUDA allocator peak on a GPU, else process RSS sampled by
    a thread (RSS growth under-counts memory the allocator reuses from earlier candidates)."""

    def __init__(self, device: Any = None, interval_s: float = 0.02) -> None:
        import torch

        self.cuda = (device is None and torch.cuda.is_available()) or str(device).startswith("cuda")
        self.interval_s = interval_s
        self.peak_bytes = 0
        self.method = "cuda max_memory_allocated" if self.cuda else "process RSS growth"
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            return self
        import psutil

        self._proc = psutil.Process()
        self._base = self._proc.memory_info().rss
        self._peak = self._base
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self._proc.memory_info().rss)
            self._stop.wait(self.interval_s)

    def __exit__(self, *exc) -> bool:
        if self.cuda:
            import torch

            self.peak_bytes = max(0, torch.cuda.max_memory_allocated() - self._base)
        else:
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, self._proc.memory_info().rss)
            self.peak_bytes = max(0, self._peak - self._base)
        return False


def measure_latency_ms(classifier, examples: Sequence[Example], n: int = 8) -> float | None:
    """Median milliseconds per example at batch size 1 (after one warm-up call)."""
    sample = list(examples[: max(1, n)])
    if not sample:
        return None
    classifier.predict_proba(sample[:1], batch_size=1)
    times = []
    for ex in sample:
        t0 = time.perf_counter()
        classifier.predict_proba([ex], batch_size=1)
        times.append(1000 * (time.perf_counter() - t0))
    return round(statistics.median(times), 2)


def evaluate_candidate(
    model: str,
    train: Sequence[Example],
    dev: Sequence[Example],
    template: str,
    label_words: Mapping[str, str | Sequence[str]],
    *,
    budget_s: float = 120.0,
    max_steps: int = 100,
    learning_rate: float = 3e-4,
    batch_size: int = 8,
    lora_r: int = 8,
    max_length: int = 256,
    seed: int = 42,
    device: str | None = None,
    on_phase: Callable[[str], None] | None = None,
    crows_pairs: Sequence[Any] | None = None,
) -> Candidate:
    """Zero-shot dev accuracy, latency, then a LoRA fine-tune sized to fit the budget, then dev accuracy.

    The number of steps is planned from the measured inference speed (a training step costs about three
    forward passes), so the budget is a target, not a hard limit. The fine-tune does no selection on dev
    (it keeps the last step), so the dev accuracy after it is not optimistic. With `crows_pairs` (pairs
    from `promptft.evaluation.crows_pairs.read_crows_pairs`) the pretrained model is also scored on them,
    outside the budget, and shown beside accuracy (not ranked on).
    """
    from promptft.adapters import LoraSettings
    from promptft.classifiers import PromptClassifier
    from promptft.models.loading import load_backbone
    from promptft.training import TrainConfig, Trainer, set_seed

    phase = on_phase or (lambda _text: None)
    cand = Candidate(model)
    start = time.perf_counter()
    gold = [ex.label for ex in dev]
    try:
        info = _describe_for_estimate(model)
        if info is not None:
            cand.kind, cand.estimated_lora_gb = info.kind, info.lora_gb
        with PeakMemory(device) as memory:
            phase("loading")
            backbone = load_backbone(model, device=device)
            cand.kind = backbone.kind
            clf = PromptClassifier(backbone, template, label_words, max_length=max_length, base_model=model)
            clf.set_finetune("none")
            phase("zero-shot on dev")
            t0 = time.perf_counter()
            probs = clf.predict_proba(dev, batch_size=32)
            per_example_s = (time.perf_counter() - t0) / max(len(dev), 1)
            cand.zero_shot_accuracy = _accuracy(gold, [clf.labels[i] for i in probs.argmax(1)])
            phase("latency")
            cand.latency_ms = measure_latency_ms(clf, dev)
            bias_s = 0.0  # CrowS-Pairs time: not part of the fine-tuning budget
            if crows_pairs:
                from promptft.evaluation.crows_pairs import score_crows_pairs

                phase(f"CrowS-Pairs, {len(crows_pairs)} pairs")
                t_bias = time.perf_counter()
                try:
                    bias = score_crows_pairs(
                        backbone.model, backbone.tokenizer, crows_pairs, kind=backbone.kind, name=model
                    )
                    cand.crows_pairs_score, cand.crows_pairs = bias.overall["bias_score"], bias.to_dict()
                except PromptFTError as exc:  # e.g. a seq2seq model: no CrowS-Pairs score, still a candidate
                    cand.notes.append(f"no CrowS-Pairs score: {exc}")
                bias_s = time.perf_counter() - t_bias
            step_s = 3 * batch_size * per_example_s
            rescore_s = per_example_s * len(dev)
            remaining = budget_s - (time.perf_counter() - start - bias_s) - rescore_s
            steps = min(max_steps, int(remaining / step_s)) if step_s > 0 else max_steps
            if steps < 1:
                cand.notes.append(f"no time left in the {budget_s:g}s budget for fine-tuning: zero-shot only")
            else:
                phase(f"LoRA fine-tune, {steps} steps")
                set_seed(seed)
                clf.set_finetune("lora", LoraSettings(r=lora_r))
                config = TrainConfig(
                    learning_rate=learning_rate,
                    batch_size=batch_size,
                    max_steps=steps,
                    eval_every=steps,
                    eval_at_start=False,
                    early_stopping_patience=None,
                    seed=seed,
                    progress=False,
                    warmup_ratio=0.0 if steps < 10 else 0.06,
                )
                result = Trainer(clf, config).train(train, None)
                cand.steps, cand.train_time_s = result.steps, round(result.train_time_s, 2)
                phase("scoring dev")
                predicted = clf.predict(dev, batch_size=32)
                cand.tuned_accuracy = _accuracy(gold, predicted)
        cand.peak_memory_gb = round(memory.peak_bytes / GB, 3)
        cand.memory_measured_by = memory.method
    except PromptFTError as exc:
        cand.error = str(exc)
    except (RuntimeError, OSError, ValueError) as exc:  # e.g. out of memory, a broken checkpoint
        cand.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        gc.collect()
    cand.total_time_s = round(time.perf_counter() - start, 2)
    return cand


def _describe_for_estimate(model: str) -> ModelInfo | None:
    try:
        from promptft.models.registry import resolve_model

        path = Path(resolve_model(model))
        return describe_folder(path, name=model) if path.exists() else None
    except PromptFTError:
        return None


def _accuracy(gold: Sequence[str | None], predicted: Sequence[str]) -> float:
    return sum(g == p for g, p in zip(gold, predicted, strict=True)) / max(len(gold), 1)


def select_models(
    models: Sequence[str],
    train: Sequence[Example],
    template: str,
    label_words: Mapping[str, str | Sequence[str]],
    *,
    dev: Sequence[Example] | None = None,
    dev_fraction: float = 0.3,
    max_dev: int = 200,
    budget_s: float = 120.0,
    max_latency_ms: float | None = None,
    max_memory_gb: float | None = None,
    seed: int = 42,
    device: str | None = None,
    on_phase: Callable[[str, str], None] | None = None,
    **finetune: Any,
) -> Selection:
    """Compare candidate models on the user's data and recommend one that meets the constraints.

    `train` is the labelled data (without `dev`, a stratified `dev_fraction` of it is held out); dev is
    capped at `max_dev` examples to keep the comparison quick. `budget_s` is per candidate.
    """
    from promptft.data import train_dev_split

    if not models:
        raise ConfigError(
            "no candidate models: pass --models a,b,c (aliases or local folders; see `promptft models`)"
        )
    if budget_s <= 0:
        raise ConfigError(f"--budget-s must be positive (seconds per candidate), got {budget_s}")
    train = list(train)
    if dev is None:
        train, dev = train_dev_split(train, dev_fraction, seed)
    dev = list(dev)[:max_dev]
    if not train or not dev:
        raise DataError("model selection needs labelled training and dev examples: check --data / --dev")
    missing = sorted({ex.label for ex in [*train, *dev]} - set(map(str, label_words)))  # type: ignore[arg-type]
    if missing:
        raise DataError(f"labels {missing} have no label words: add them to --label-words")
    candidates = []
    for name in models:
        cand = evaluate_candidate(
            name,
            train,
            dev,
            template,
            label_words,
            budget_s=budget_s,
            seed=seed,
            device=device,
            on_phase=(lambda text, _n=name: on_phase(_n, text)) if on_phase else None,
            **finetune,
        )
        cand.violations = check_constraints(cand, max_latency_ms, max_memory_gb)
        candidates.append(cand)
    ranked, pick, reason = rank_candidates(candidates)
    return Selection(ranked, pick, reason, len(train), len(dev), budget_s)


def parse_label_words(text: str) -> dict[str, list[str]]:
    """`"negative=terrible,positive=great|good"` -> {"negative": ["terrible"], "positive": ["great", "good"]};
    a JSON object is accepted too."""
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--label-words is not valid JSON: {exc.msg}") from None
        return {str(k): [v] if isinstance(v, str) else list(v) for k, v in data.items()}
    out: dict[str, list[str]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        label, sep, words = part.partition("=")
        if not sep or not label.strip() or not words.strip():
            raise ConfigError(
                f"--label-words expects LABEL=WORD pairs, e.g. 'negative=terrible,positive=great|good'; got {part!r}"
            )
        out[label.strip()] = [w.strip() for w in words.split("|") if w.strip()]
    if not out:
        raise ConfigError(
            "--label-words is empty: give LABEL=WORD pairs, e.g. 'negative=terrible,positive=great'"
        )
    return out
