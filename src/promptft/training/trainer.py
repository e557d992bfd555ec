"""The training loop: AdamW + warm-up/linear decay, dev evaluation keeping the best, early stopping,
a run directory (config, metrics per evaluation, final metrics, best model) and resume after interruption.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from promptft.errors import DataError, RunDirError
from promptft.evaluation.metrics import classification_metrics
from promptft.training.config import TrainConfig

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"
FINAL = "final_metrics.json"


@dataclass
class TrainResult:
    best_step: int
    best_dev: dict[str, float] | None
    steps: int
    train_time_s: float
    stopped_early: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    run_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "history"}


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def batch_schedule(
    lengths: list[int], batch_size: int, steps: int, seed: int, group_by_length: bool
) -> list[list[int]]:
    """Every step's batch, fixed by the seed up front, so a resumed run sees the same batches.

    Each epoch is a fresh permutation. With group_by_length, each window of 4 batches is sorted by
    length before being cut, which removes most padding but keeps batches random across epochs.
    """
    rng = np.random.default_rng(seed)
    n = len(lengths)
    out: list[list[int]] = []
    while len(out) < steps:
        perm = rng.permutation(n).tolist()
        batches: list[list[int]] = []
        window = batch_size * 4 if group_by_length else n
        for start in range(0, n, window):
            chunk = perm[start : start + window]
            if group_by_length:
                chunk.sort(key=lambda i: lengths[i])
            batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
        if group_by_length:
            rng.shuffle(batches)
        out.extend(batches)
    return out[:steps]


class Trainer:
    """Trains any `BaseClassifier` (prompt or head) on labelled examples."""

    def __init__(
        self,
        classifier,
        config: TrainConfig,
        run_dir: str | Path | None = None,
        resume: bool = True,
        on_run_dir: Callable[[Path], None] | None = None,
    ):
        """`on_run_dir(run_dir)` is called once the run folder is ready (fresh or resumed), before training:
        the place to write the caller's own metadata next to the Trainer's files."""
        self.clf = classifier
        self.config = config
        self.run_dir = Path(run_dir) if run_dir else None
        self.resume = resume
        self.on_run_dir = on_run_dir

    # ----- run directory -----
    def _prepare_run_dir(self) -> dict[str, Any] | None:
        """Create the run dir, or return the checkpoint state to resume from."""
        if self.run_dir is None:
            return None
        if (self.run_dir / FINAL).exists():
            raise RunDirError(
                f"{self.run_dir} already holds a finished run ({FINAL}); choose another output folder "
                "or delete that one first: promptft never overwrites a finished run"
            )
        ckpt = self.run_dir / CHECKPOINT / "state.pt"
        if ckpt.exists():
            if not self.resume:
                raise RunDirError(
                    f"{self.run_dir} holds an unfinished run: resume it, or choose another folder"
                )
            saved = json.loads((self.run_dir / "train_config.json").read_text())
            current = self.config.to_dict()
            for display_only in ("progress",):  # showing a bar or not does not change the run
                saved.pop(display_only, None)
                current.pop(display_only, None)
            if saved != current:
                raise RunDirError(
                    f"{self.run_dir} holds an unfinished run with a different training config; resume it with "
                    "the same settings, or choose another output folder"
                )
            log.warning("resuming the run in %s", self.run_dir)
            return torch.load(ckpt, weights_only=False)
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            leftovers = {p.name for p in self.run_dir.iterdir()} - {
                "train_config.json",
                "metrics.jsonl",
                "run.json",
            }
            if leftovers:
                raise RunDirError(
                    f"{self.run_dir} is not empty and holds no promptft run to resume ({sorted(leftovers)[:3]}...): "
                    "choose an empty or new folder"
                )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "train_config.json").write_text(json.dumps(self.config.to_dict(), indent=2))
        (self.run_dir / "metrics.jsonl").write_text("")
        return None

    def _save_checkpoint(self, state: dict[str, Any]) -> None:
        if self.run_dir is None:
            return
        tmp = self.run_dir / (CHECKPOINT + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        torch.save(state, tmp / "state.pt")
        final = self.run_dir / CHECKPOINT
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)

    def _log_metrics(self, record: dict[str, Any]) -> None:
        if self.run_dir is not None:
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    # ----- training -----
    def train(self, train, dev=None) -> TrainResult:
        from transformers import get_linear_schedule_with_warmup

        from promptft.classifier import as_examples

        cfg = self.config
        clf = self.clf
        train = as_examples(train, clf.fields)
        dev = as_examples(dev, clf.fields) if dev else []
        if not train:
            raise DataError("the training split is empty: check the file path and its label column")
        y_train = torch.tensor(clf.label_index(train))
        if dev:
            clf.label_index(dev)
        resume_state = self._prepare_run_dir()
        if self.run_dir is not None and self.on_run_dir is not None:
            self.on_run_dir(self.run_dir)
        set_seed(cfg.seed)

        enc_train = clf.encode(train)
        enc_dev = clf.encode(dev) if dev else []
        lengths = [clf.length_of(e) for e in enc_train]
        schedule = batch_schedule(
            lengths, cfg.batch_size, cfg.max_steps * cfg.grad_accum, cfg.seed, cfg.group_by_length
        )

        params = [p for p in clf.module.parameters() if p.requires_grad]
        if not params:
            raise RunDirError(
                "nothing to train: the classifier is frozen (finetune='none'); use 'full' or 'lora'"
            )
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.learning_rate,
        )
        scheduler = get_linear_schedule_with_warmup(
            optimizer, int(cfg.warmup_ratio * cfg.max_steps), cfg.max_steps
        )

        step, best_step, best_metric, bad_evals = 0, 0, -1.0, 0
        best_state = None
        best_dev: dict[str, float] | None = None
        history: list[dict[str, Any]] = []
        elapsed_before = 0.0
        if resume_state is not None:
            clf.load_trainable_state(resume_state["trainable"])
            optimizer.load_state_dict(resume_state["optimizer"])
            scheduler.load_state_dict(resume_state["scheduler"])
            torch.set_rng_state(resume_state["torch_rng"])
            step, best_step, best_metric = (
                resume_state["step"],
                resume_state["best_step"],
                resume_state["best_metric"],
            )
            bad_evals, best_state, best_dev = (
                resume_state["bad_evals"],
                resume_state["best_state"],
                resume_state["best_dev"],
            )
            history, elapsed_before = resume_state["history"], resume_state["elapsed_s"]

        def evaluate(at_step: int, train_loss: float | None) -> bool:
            """Evaluate on dev, keep the best; returns True when early stopping triggers."""
            nonlocal best_step, best_metric, best_state, best_dev, bad_evals
            record: dict[str, Any] = {
                "step": at_step,
                "train_loss": train_loss,
                "elapsed_s": round(elapsed_before + time.perf_counter() - start, 3),
            }
            if enc_dev:
                probs = clf.predict_proba_encoded(enc_dev, cfg.eval_batch_size)
                metrics = classification_metrics(
                    [e.label for e in dev], [clf.labels[i] for i in probs.argmax(1)], clf.labels
                )
                record.update({f"dev_{k}": v for k, v in metrics.items() if k != "n"})
                if metrics[cfg.metric] > best_metric:
                    best_metric, best_step, best_dev, bad_evals = metrics[cfg.metric], at_step, metrics, 0
                    best_state = clf.trainable_state()
                else:
                    bad_evals += 1
            history.append(record)
            self._log_metrics(record)
            progress_note(record)
            return cfg.early_stopping_patience is not None and bad_evals >= cfg.early_stopping_patience

        progress, task = _progress(cfg.progress, cfg.max_steps)

        def progress_note(record: dict[str, Any]) -> None:
            if progress is not None:
                note = f"loss {record['train_loss']:.3f}" if record["train_loss"] is not None else ""
                if "dev_accuracy" in record:
                    note += f" dev acc {record['dev_accuracy']:.3f} (best {best_metric:.3f}@{best_step})"
                progress.update(task, completed=record["step"], note=note)

        start = time.perf_counter()
        stopped_early = False
        clf.module.train()
        clf.enable_training_cache()
        try:
            if step == 0 and cfg.eval_at_start and enc_dev:
                stopped_early = evaluate(0, None)
            running, count = 0.0, 0
            while step < cfg.max_steps and not stopped_early:
                optimizer.zero_grad(set_to_none=True)
                for micro in range(cfg.grad_accum):
                    batch = schedule[step * cfg.grad_accum + micro]
                    logits = clf.label_logits([enc_train[i] for i in batch])
                    loss = torch.nn.functional.cross_entropy(logits.float(), y_train[batch].to(logits.device))
                    (loss / cfg.grad_accum).backward()
                    running += loss.item()
                    count += 1
                if cfg.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                step += 1
                if progress is not None:
                    progress.update(task, completed=step)
                if step % cfg.eval_every == 0 or step == cfg.max_steps:
                    stopped_early = evaluate(step, running / max(count, 1))
                    running, count = 0.0, 0
                    clf.module.train()
                every = cfg.checkpoint_every or cfg.eval_every
                if (
                    self.run_dir is not None
                    and (step % every == 0)
                    and step < cfg.max_steps
                    and not stopped_early
                ):
                    self._save_checkpoint(
                        {
                            "trainable": clf.trainable_state(),
                            "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(),
                            "torch_rng": torch.get_rng_state(),
                            "step": step,
                            "best_step": best_step,
                            "best_metric": best_metric,
                            "bad_evals": bad_evals,
                            "best_state": best_state,
                            "best_dev": best_dev,
                            "history": history,
                            "elapsed_s": elapsed_before + time.perf_counter() - start,
                        }
                    )
        finally:
            if progress is not None:
                progress.stop()
            clf.disable_training_cache()
            clf.module.eval()

        if best_state is not None:
            clf.load_trainable_state(best_state)  # the model selected on dev, not the last one
        result = TrainResult(
            best_step=best_step if enc_dev else step,
            best_dev=best_dev,
            steps=step,
            train_time_s=round(elapsed_before + time.perf_counter() - start, 3),
            stopped_early=stopped_early,
            history=history,
            run_dir=str(self.run_dir) if self.run_dir else None,
        )
        if self.run_dir is not None:
            clf.save_pretrained(self.run_dir / "best")
            (self.run_dir / FINAL).write_text(json.dumps(result.to_dict(), indent=2))
            shutil.rmtree(self.run_dir / CHECKPOINT, ignore_errors=True)
        return result


def _progress(enabled: bool, total: int):
    if not enabled:
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
        transient=False,
    )
    task = progress.add_task("train", total=total, note="")
    progress.start()
    return progress, task
