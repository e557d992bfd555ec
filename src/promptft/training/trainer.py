"""The training loop: AdamW + warm-up/linear decay, dev evaluation keeping the best, early stopping,
a run directory (config, metrics per evaluation, final metrics, best model) and resume after interruption.

Accelerate runs inside, so `accelerate launch -m promptft train ...` (or torchrun) trains data-parallel
with no code change; the loss, decoding and dev metric come from the classifier's objective.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from promptft.errors import ConfigError, DataError, RunDirError
from promptft.objectives import Objective, SingleLabel
from promptft.training.checkpoint import (
    CHECKPOINT,
    STATE_FILE,
    TrainingState,
    capture_rng,
    checkpoint_dir,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from promptft.training.config import TrainConfig
from promptft.training.distributed import all_gather, all_sum, broadcast, local_share, make_accelerator
from promptft.training.progress import Progress
from promptft.training.schedule import batch_schedule, micro_batches, optimizer_and_scheduler, set_seed

log = logging.getLogger(__name__)

__all__ = ["FINAL", "TrainResult", "Trainer", "batch_schedule", "set_seed"]

FINAL = "final_metrics.json"
BEST = "best"
# What a run folder may hold before its first checkpoint, and the temporary names of atomic writes.
_RUN_FILES = {"train_config.json", "metrics.jsonl", "run.json"}
_TEMPORARY = {f"{name}.{suffix}" for name in (CHECKPOINT, BEST) for suffix in ("tmp", "old")}


@dataclass
class TrainResult:
    best_step: int
    best_dev: dict[str, float] | None
    steps: int
    train_time_s: float
    stopped_early: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    run_dir: str | None = None
    refit: dict[str, Any] | None = None  # refit=True: the second run on train + dev (examples, steps, time)
    time_limited: bool = False  # stopped by max_minutes before max_steps
    refit_skipped: str | None = None  # refit=True, but max_minutes left no time for it: why

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "history"}


def _wins_tie(new: dict[str, float], best: dict[str, float] | None, metric: str, tie_break: str) -> bool:
    """tie_break="dev_loss": the same dev score as the best so far, and a lower loss on dev."""
    if tie_break != "dev_loss" or not best or "loss" not in best:
        return False
    return new[metric] == best[metric] and new["loss"] < best["loss"]


def _warn_untrained_kept(n_dev: int, metric: str, score: float | None, tie_break: str) -> None:
    """Say so when no fine-tuned checkpoint beat the untrained model on dev (by default ties go to it):
    the run keeps the model it started from. On a small dev split that is often noise (the benchmark saw it
    cost MR and CR seeds their fine-tuning), so name the switch that keeps the best fine-tuned checkpoint."""
    log.warning(
        "no fine-tuned checkpoint beat the untrained model on dev (%s %s on %d examples): the run keeps the "
        "model it started from. With a small dev split this is often noise; to keep the best fine-tuned "
        "checkpoint instead (LM-BFF's selection), set eval_at_start=False "
        "(command line: --set train.eval_at_start=false)%s; or give a larger dev split",
        metric,
        f"{score:.4f}" if score is not None else "n/a",
        n_dev,
        "" if tie_break == "dev_loss" else "; to decide ties by the dev loss, --set train.tie_break=dev_loss",
    )


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


class Trainer:
    """Trains any `BaseClassifier` (prompt or head) on labelled examples."""

    def __init__(
        self,
        classifier,
        config: TrainConfig,
        run_dir: str | Path | None = None,
        resume: bool = True,
        on_run_dir: Callable[[Path], None] | None = None,
        objective: Objective | None = None,
        schedule_steps: int | None = None,
    ):
        """`on_run_dir(run_dir)` is called once the run folder is ready (fresh or resumed), before training:
        the place to write the caller's own metadata next to the Trainer's files. `objective` defaults to
        the classifier's own (`classifier.objective`), else single-label classification. `schedule_steps`:
        the steps the learning-rate schedule spans when training stops before them (a refit's)."""
        self.clf = classifier
        self.config = config
        self.run_dir = Path(run_dir) if run_dir else None
        self.resume = resume
        self.on_run_dir = on_run_dir
        self.objective = objective or getattr(classifier, "objective", None) or SingleLabel(classifier.labels)
        self.schedule_steps = schedule_steps

    # ----- run directory -----
    def _inspect_run_dir(self) -> bool:
        """Read-only (every process runs it): True when the folder holds a checkpoint to resume."""
        if self.run_dir is None:
            return False
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise RunDirError(
                f"run_dir {self.run_dir} is a file: give a folder for the run (a new or empty one)"
            )
        if (self.run_dir / FINAL).exists():
            raise RunDirError(
                f"{self.run_dir} already holds a finished run ({FINAL}); choose another output folder "
                "or delete that one first: promptft never overwrites a finished run"
            )
        ckpt = checkpoint_dir(self.run_dir)
        if ckpt is not None:
            if (ckpt / "state.pt").exists() and not (ckpt / STATE_FILE).exists():
                raise RunDirError(
                    f"{ckpt} was written by an older promptft (a pickled state.pt, which is never loaded): "
                    f"delete the folder {ckpt} to restart this run from step 0, or choose another output folder"
                )
            if not self.resume:
                raise RunDirError(
                    f"{self.run_dir} holds an unfinished run: resume it, or choose another folder"
                )
            try:
                saved = json.loads((self.run_dir / "train_config.json").read_text())
            except (OSError, ValueError):
                raise RunDirError(
                    f"{self.run_dir} holds a checkpoint but no readable train_config.json: delete the folder "
                    f"{self.run_dir / CHECKPOINT} to restart the run, or choose another output folder"
                ) from None
            current = self.config.to_dict()
            # settings added since the run started read as their defaults (an older run resumes)
            saved = {**TrainConfig().to_dict(), **saved}
            # showing a bar, or how long to go on, changes none of the steps already taken
            for free in ("progress", "max_minutes"):
                saved.pop(free, None)
                current.pop(free, None)
            if saved != current:
                raise RunDirError(
                    f"{self.run_dir} holds an unfinished run with a different training config; resume it with "
                    "the same settings, or choose another output folder"
                )
            return True
        if self.run_dir.exists():
            leftovers = {p.name for p in self.run_dir.iterdir()} - _RUN_FILES - _TEMPORARY
            if leftovers:
                raise RunDirError(
                    f"{self.run_dir} is not empty and holds no promptft run to resume ({sorted(leftovers)[:3]}...): "
                    "choose an empty or new folder"
                )
        return False

    def _start_run_dir(self) -> None:
        """Main process only: a fresh run's folder and files."""
        assert self.run_dir is not None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name in _TEMPORARY:  # from a crash during an earlier attempt's first atomic write
            shutil.rmtree(self.run_dir / name, ignore_errors=True)
        (self.run_dir / "train_config.json").write_text(json.dumps(self.config.to_dict(), indent=2))
        (self.run_dir / "metrics.jsonl").write_text("")

    def _save_checkpoint(self, state: TrainingState) -> None:
        if self.run_dir is not None:
            save_checkpoint(self.run_dir, state)

    def _log_metrics(self, record: dict[str, Any]) -> None:
        if self.run_dir is not None:
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    # ----- evaluation -----
    def _dev_metrics(
        self, module, encoded: Sequence[Any], dev: Sequence[Any], targets: torch.Tensor | None = None
    ) -> dict[str, float]:
        """The objective's metrics of the current weights on dev (the plain module, no DDP: no collectives);
        with `targets`, also `loss`: the objective's training loss on dev, averaged (tie_break="dev_loss")."""
        order = sorted(range(len(encoded)), key=lambda i: self.clf.length_of(encoded[i]))
        size = self.config.eval_batch_size
        rows: list[torch.Tensor | None] = [None] * len(encoded)
        was_training = module.training
        module.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(order), size):
                    batch = order[start : start + size]
                    logits = module([encoded[i] for i in batch]).float().cpu()
                    for i, row in zip(batch, logits, strict=True):
                        rows[i] = row
        finally:
            module.train(was_training)
        logits = torch.stack(rows)  # type: ignore[arg-type]
        if self.objective.tunes_on_dev:  # e.g. multi-label thresholds, fitted to these weights
            self.objective.tune(logits, dev)
        metrics = self.objective.evaluate(dev, self.objective.decode(logits))
        if targets is not None:
            metrics["loss"] = float(self.objective.loss(logits, targets).mean())
        return metrics

    # ----- refit on train + dev -----
    def _check_refit(self, dev) -> None:
        """refit=True needs a dev split to choose the step on, and nothing left to fit on dev afterwards."""
        if not dev:
            raise ConfigError(
                "refit=True chooses the step on the dev split, then trains on train + dev: give a dev split, "
                "or leave refit off"
            )
        if self.objective.tunes_on_dev:
            raise ConfigError(
                f"refit=True trains on the dev split, which the {self.objective.name} objective also tunes its "
                "decoding on (thresholds or a temperature): leave refit off for it"
            )

    def _refit(self, initial: dict[str, torch.Tensor], train, dev, steps: int) -> dict[str, Any]:
        """Train the starting weights again on train + dev for the `steps` chosen on dev, on the selection
        run's learning-rate schedule and seed (same warm-up, same rate at every step), and keep them:
        twice the labelled examples for the model that is saved. refit_scale="epochs" stretches the steps
        and the schedule by (train + dev) / train: the same passes over the data."""
        cfg = self.config
        examples = [*train, *dev]
        steps, schedule = (
            self._refit_steps(len(train), len(dev), steps),
            self._refit_steps(len(train), len(dev), cfg.max_steps),
        )
        log.info("refit: training the starting model again on train + dev (%d examples) for %d steps "
                 "(chosen on dev, counted in %s)", len(examples), steps, cfg.refit_scale)  # fmt: skip
        self.clf.load_trainable_state(initial)
        again = cfg.replace(  # the steps chosen on dev, all of them: no time limit cuts the refit short
            refit=False, max_steps=steps, eval_at_start=False, early_stopping_patience=None, max_minutes=None
        )
        result = Trainer(self.clf, again, objective=self.objective, schedule_steps=schedule).train(examples)
        return {
            "n_examples": len(examples),
            "steps": result.steps,
            "scale": cfg.refit_scale,
            "train_time_s": result.train_time_s,
        }

    def _refit_steps(self, n_train: int, n_dev: int, steps: int) -> int:
        scale = (n_train + n_dev) / n_train if self.config.refit_scale == "epochs" else 1.0
        return max(1, round(steps * scale))

    def _refit_skip_reason(
        self, n_train: int, n_dev: int, steps: int, elapsed_s: float, step_s: float
    ) -> str | None:
        """With max_minutes, a refit that would not end within the limit is not started (a refit cut short
        would save a model trained for fewer steps than dev chose): the reason, or None when it fits.
        `step_s`: seconds per optimisation step of the selection run (dev evaluations excluded)."""
        if self.config.max_minutes is None:
            return None
        left = self.config.max_minutes * 60 - elapsed_s
        need = step_s * self._refit_steps(n_train, n_dev, steps)
        if need <= left:
            return None
        return (
            f"max_minutes={self.config.max_minutes:g}: the refit on train + dev would take about {need:.0f} s "
            f"and {max(left, 0):.0f} s are left, so the model chosen on dev (trained on train only) is kept"
        )

    # ----- training -----
    def train(self, train, dev=None) -> TrainResult:
        from promptft.data.inputs import as_examples

        cfg, clf, objective = self.config, self.clf, self.objective
        metric = objective.check_metric(cfg.metric)
        train = as_examples(train, clf.fields)
        dev = as_examples(dev, clf.fields) if dev else []
        if not train:
            raise DataError("the training split is empty: check the file path and its label column")
        targets = objective.targets(train)
        dev_targets = objective.targets(dev) if dev else None  # also fails early on unknown labels
        loss_targets = dev_targets if cfg.tie_break == "dev_loss" else None
        params = [p for p in clf.module.parameters() if p.requires_grad]
        if not params:
            raise RunDirError(
                "nothing to train: the classifier is frozen (finetune='none'); use 'full' or 'lora'"
            )
        if cfg.refit:
            self._check_refit(dev)

        accelerator = make_accelerator(clf.device, cfg.mixed_precision)
        rank, world, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
        if world > 1 and main:
            log.info("training data-parallel on %d processes (%s)", world, accelerator.device)
        if cfg.refit and world > 1:  # untested with DDP: the second run would wrap the module again
            raise ConfigError("refit=True runs on one process: leave it off for data-parallel training")
        resuming = self._inspect_run_dir()
        accelerator.wait_for_everyone()  # every process has looked before the main one writes anything
        if main and self.run_dir is not None:
            if not resuming:
                self._start_run_dir()
            if self.on_run_dir is not None:
                self.on_run_dir(self.run_dir)
        accelerator.wait_for_everyone()
        resume_state = None
        if resuming:
            if main:
                log.warning("resuming the run in %s", self.run_dir)
            shapes = {n: tuple(p.shape) for n, p in clf.module.named_parameters() if p.requires_grad}
            resume_state = load_checkpoint(self.run_dir, shapes)  # type: ignore[arg-type]
        set_seed(cfg.seed)

        enc_train = getattr(clf, "encode_for_training", clf.encode)(train)  # e.g. demonstrations' pool
        enc_dev = clf.encode(dev) if dev else []
        if hasattr(clf, "prepare_training"):  # data-dependent init of task parameters (before resume loads)
            clf.prepare_training(enc_train, targets)
        initial = clf.trainable_state() if cfg.refit else None  # where the refit starts again
        lengths = [clf.length_of(e) for e in enc_train]
        # One entry per optimizer step: a global batch of batch_size * grad_accum examples.
        schedule = batch_schedule(
            lengths, cfg.batch_size * cfg.grad_accum, cfg.max_steps, cfg.seed, cfg.group_by_length
        )

        optimizer, scheduler = optimizer_and_scheduler(params, cfg.learning_rate, cfg, self.schedule_steps)
        # One process: the model stays where the user put it (e.g. cuda:1); several: one device each.
        placement = None if world > 1 else [False] * 3
        model, optimizer, scheduler = accelerator.prepare(
            clf.module, optimizer, scheduler, device_placement=placement
        )
        module = accelerator.unwrap_model(model)  # == clf.module: evaluation and the best state read it

        step, best_step, bad_evals = 0, 0, 0
        best_metric: float | None = None
        best_state: dict[str, torch.Tensor] | None = None
        best_dev: dict[str, float] | None = None
        history: list[dict[str, Any]] = []
        elapsed_before = 0.0
        running, count = 0.0, 0.0  # loss sum and examples since the last evaluation (this process)
        if resume_state is not None:
            clf.load_trainable_state(resume_state.trainable)
            optimizer.load_state_dict(resume_state.optimizer)
            scheduler.load_state_dict(resume_state.scheduler)
            if resume_state.scaler is not None and accelerator.scaler is not None:
                accelerator.scaler.load_state_dict(resume_state.scaler)
            step, best_step, best_metric = resume_state.step, resume_state.best_step, resume_state.best_metric
            bad_evals, best_state, best_dev = (
                resume_state.bad_evals,
                resume_state.best_state,
                resume_state.best_dev,
            )
            history, elapsed_before = resume_state.history, resume_state.elapsed_s
            if resume_state.num_processes != world:
                log.warning(
                    "the run was checkpointed with %d process(es) and resumes with %d: the batches are the "
                    "same, but dropout draws differ from an uninterrupted run",
                    resume_state.num_processes,
                    world,
                )
            if main:  # the loss since the last evaluation, summed over processes, counted once
                running, count = resume_state.running_loss
            restore_rng(resume_state.rng[rank] if rank < len(resume_state.rng) else resume_state.rng[0])

        start = time.perf_counter()
        step_at_start, step_seconds = step, 0.0  # optimisation time of this session (for a refit's estimate)
        progress = Progress(cfg.progress, cfg.max_steps, metric, enabled=main)

        def elapsed() -> float:
            return round(elapsed_before + time.perf_counter() - start, 3)

        def evaluate(at_step: int, train_loss: float | None) -> tuple[bool, dict[str, Any]]:
            """Evaluate on dev, keep the best; returns (early stop?, the record)."""
            nonlocal best_step, best_metric, best_state, best_dev, bad_evals
            record: dict[str, Any] = {"step": at_step, "train_loss": train_loss, "elapsed_s": elapsed()}
            if enc_dev:
                # The main process evaluates and tells the others, so all keep the same best and stop together.
                metrics = broadcast(
                    self._dev_metrics(module, enc_dev, dev, loss_targets) if main else None, world
                )
                record.update({f"dev_{k}": v for k, v in metrics.items() if k != "n"})
                if objective.is_better(metric, metrics[metric], best_metric) or _wins_tie(
                    metrics, best_dev, metric, cfg.tie_break
                ):
                    best_metric, best_step, best_dev, bad_evals = metrics[metric], at_step, metrics, 0
                    best_state = clf.trainable_state()
                else:
                    bad_evals += 1
            history.append(record)
            if main:
                self._log_metrics(record)
            stop = cfg.early_stopping_patience is not None and bad_evals >= cfg.early_stopping_patience
            return stop, record

        stopped_early = time_limited = False
        model.train()
        clf.enable_training_cache()
        try:
            if step == 0 and cfg.eval_at_start and enc_dev:
                stopped_early, record = evaluate(0, None)
                progress.update(0, None, record, (best_metric, best_step), elapsed())
            while step < cfg.max_steps and not stopped_early:
                step_start = time.perf_counter()
                optimizer.zero_grad(set_to_none=True)
                micros = micro_batches(schedule[step], cfg.batch_size)
                n_step = sum(len(m) for m in micros)
                for j, micro in enumerate(micros):
                    share, weight = local_share(micro, rank, world)
                    # Gradients are averaged across processes once, after the step's last micro-batch.
                    sync = j == len(micros) - 1
                    with nullcontext() if sync else accelerator.no_sync(model):
                        logits = model([enc_train[i] for i in share])
                        per_example = objective.loss(logits, targets[share])
                        # Sum over this share / all examples of the step, x world (DDP divides by it):
                        # the step's gradient is the mean over its whole global batch, whatever the split.
                        accelerator.backward(per_example.sum() * (weight * world / n_step))
                    running += per_example.detach().sum().item() * weight
                    count += len(share) * weight
                if cfg.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                step += 1
                step_seconds += time.perf_counter() - step_start
                record = None
                if step % cfg.eval_every == 0 or step == cfg.max_steps:
                    total, n = all_sum([running, count], world, accelerator.device)
                    stopped_early, record = evaluate(step, total / max(n, 1))
                    running, count = 0.0, 0.0
                    model.train()
                # every process stops together: the main one's clock decides
                if cfg.max_minutes is not None and step < cfg.max_steps and not stopped_early:
                    time_limited = bool(broadcast(elapsed() >= cfg.max_minutes * 60 if main else None, world))
                    if time_limited and record is None:  # the steps since the last evaluation count too
                        total, n = all_sum([running, count], world, accelerator.device)
                        _, record = evaluate(step, total / max(n, 1))
                        running, count = 0.0, 0.0
                    if time_limited and main:
                        log.warning(
                            "time limit reached (max_minutes=%s): training stopped at step %d of %d",
                            cfg.max_minutes, step, cfg.max_steps,
                        )  # fmt: skip
                loss_now = record["train_loss"] if record else running / count if count else None
                progress.update(step, loss_now, record, (best_metric, best_step), elapsed())
                if time_limited:
                    break
                every = cfg.checkpoint_every or cfg.eval_every
                if (
                    self.run_dir is not None
                    and step % every == 0
                    and step < cfg.max_steps
                    and not stopped_early
                ):
                    # Collectives first (every process): the generators of each, the loss so far of all.
                    rng = all_gather(capture_rng(), world)
                    running_all = all_sum([running, count], world, accelerator.device)
                    if main:
                        self._save_checkpoint(
                            TrainingState(
                                step=step,
                                trainable=clf.trainable_state(),
                                optimizer=optimizer.state_dict(),
                                scheduler=scheduler.state_dict(),
                                rng=rng,
                                best_step=best_step,
                                best_metric=best_metric,
                                best_state=best_state,
                                best_dev=best_dev,
                                bad_evals=bad_evals,
                                history=history,
                                elapsed_s=elapsed(),
                                running_loss=(running_all[0], running_all[1]),
                                scaler=accelerator.scaler.state_dict() if accelerator.scaler else None,
                                num_processes=world,
                            )
                        )
        finally:
            progress.stop()
            clf.disable_training_cache()
            # The module outlives this run: drop accelerate's autocast wrapper from its forward.
            accelerator.unwrap_model(model, keep_fp32_wrapper=False)
            clf.module.eval()

        if best_state is not None:
            clf.load_trainable_state(best_state)  # the model selected on dev, not the last one
        if main and enc_dev and best_step == 0 and step > 0:
            _warn_untrained_kept(len(enc_dev), metric, best_metric, cfg.tie_break)
        refit, refit_skipped = None, None
        if initial is not None and best_step > 0:
            ran = step - step_at_start
            # no step ran in this session (resumed at its end): the whole run's pace, an upper bound
            step_s = step_seconds / ran if ran else elapsed() / max(step, 1)
            refit_skipped = self._refit_skip_reason(len(train), len(dev), best_step, elapsed(), step_s)
            if refit_skipped is None:
                refit = self._refit(initial, train, dev, best_step)
            elif main:
                log.warning("refit skipped: %s", refit_skipped)
        if enc_dev and objective.tunes_on_dev:
            self._dev_metrics(module, enc_dev, dev)  # decoding tuned for the kept weights, on every process
        result = TrainResult(
            best_step=best_step if enc_dev else step,
            best_dev=best_dev,
            steps=step,
            train_time_s=elapsed(),
            stopped_early=stopped_early,
            history=history,
            run_dir=str(self.run_dir) if self.run_dir else None,
            refit=refit,
            time_limited=time_limited,
            refit_skipped=refit_skipped,
        )
        clf.note_for_card(training=_card_training(train, dev, cfg, result), dev=result.best_dev)
        if self.run_dir is not None and main:
            clf.save_pretrained(self.run_dir / BEST, overwrite=True)  # atomic: best.tmp, then renamed
            _write_json(self.run_dir / FINAL, result.to_dict())
            for name in (CHECKPOINT, *_TEMPORARY):
                shutil.rmtree(self.run_dir / name, ignore_errors=True)
        accelerator.wait_for_everyone()  # no process returns before the run folder is complete
        return result


def _card_training(
    train: Sequence[Any], dev: Sequence[Any] | None, cfg: TrainConfig, result: TrainResult
) -> dict:
    """What the model card says about a training run (`promptft.classifiers.card`)."""
    labels = [ex.label for ex in train]
    counts = dict(sorted(Counter(labels).items())) if all(isinstance(x, str) for x in labels) else None
    return {
        "n_train": len(train),
        "n_dev": len(dev) if dev else 0,
        "label_counts": counts,
        "steps": result.steps,
        "best_step": result.best_step,
        "learning_rate": cfg.learning_rate,
        "batch_size": cfg.batch_size * cfg.grad_accum,
        "seed": cfg.seed,
        "refit": result.refit,
        "refit_skipped": result.refit_skipped,
    }
