"""The chat fine-tuning loop, with the classifier Trainer's conventions: a batch schedule fixed by the seed,
AdamW with warm-up and linear decay, the dev split's assistant-token loss every `eval_every` steps, the best
step kept (and saved to `best/`), a progress bar or lines, a run folder (train_config.json, metrics.jsonl,
checkpoint/, best/, final_metrics.json) and resume after an interruption (safetensors + JSON checkpoints).

The loss is the mean over every assistant token of the step (token-weighted, as TRL computes it), and the
output head runs only at those tokens (`ChatModel.token_loss`).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from promptft.chat.encoding import Encoded, collate, collate_packed, pack
from promptft.chat.model import ChatModel
from promptft.config.chat import ChatTrainConfig
from promptft.errors import DataError, RunDirError
from promptft.training.checkpoint import (
    CHECKPOINT,
    TrainingState,
    capture_rng,
    checkpoint_dir,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from promptft.training.progress import Progress
from promptft.training.schedule import batch_schedule, micro_batches, optimizer_and_scheduler, set_seed

log = logging.getLogger(__name__)

FINAL = "final_metrics.json"
BEST = "best"
_RUN_FILES = {"train_config.json", "metrics.jsonl", "run.json"}


@dataclass
class ChatTrainResult:
    best_step: int
    best_dev_loss: float | None
    steps: int
    train_time_s: float
    train_tokens: int  # tokens fed to the model (padding excluded)
    tokens_per_s: float
    stopped: str  # "max_steps" | "early_stopping" | "max_minutes"
    history: list[dict[str, Any]] = field(default_factory=list)
    run_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "history"}


def dev_loss(chat: ChatModel, items: Sequence[Encoded], batch_size: int = 8) -> dict[str, float]:
    """Mean assistant-token negative log-likelihood and perplexity of `items`."""
    order = sorted(range(len(items)), key=lambda i: len(items[i]))
    pad = chat.tokenizer.pad_token_id
    total, count = 0.0, 0
    was_training = chat.model.training
    chat.model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                batch = collate([items[i] for i in order[start : start + batch_size]], pad)
                nll, n = chat.token_loss(batch)
                total += float(nll)
                count += n
    finally:
        chat.model.train(was_training)
    loss = total / max(count, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "tokens": count}


class ChatTrainer:
    def __init__(
        self,
        chat: ChatModel,
        config: ChatTrainConfig,
        learning_rate: float,
        run_dir: str | Path | None = None,
        resume: bool = True,
        max_length: int = 1024,
        on_run_dir: Callable[[Path], None] | None = None,
    ) -> None:
        self.chat = chat
        self.config = config
        self.learning_rate = learning_rate
        self.run_dir = Path(run_dir) if run_dir else None
        self.resume = resume
        self.max_length = max_length
        self.on_run_dir = on_run_dir

    def _settings(self) -> dict[str, Any]:
        out = self.config.to_dict()
        out.pop("progress", None)
        out.pop("max_minutes", None)  # a time limit may change between attempts
        out["learning_rate"] = self.learning_rate
        out["max_length"] = self.max_length
        return out

    def _inspect_run_dir(self) -> bool:
        if self.run_dir is None:
            return False
        if (self.run_dir / FINAL).exists():
            raise RunDirError(
                f"{self.run_dir} already holds a finished run ({FINAL}); choose another output folder or "
                "delete that one first: promptft never overwrites a finished run"
            )
        if checkpoint_dir(self.run_dir) is not None:
            if not self.resume:
                raise RunDirError(
                    f"{self.run_dir} holds an unfinished run: resume it, or choose another folder"
                )
            try:
                saved = json.loads((self.run_dir / "train_config.json").read_text())
            except (OSError, ValueError):
                raise RunDirError(
                    f"{self.run_dir} holds a checkpoint but no readable train_config.json: delete "
                    f"{self.run_dir / CHECKPOINT} to restart, or choose another output folder"
                ) from None
            if saved != self._settings():
                raise RunDirError(
                    f"{self.run_dir} holds an unfinished run with different training settings; resume it with "
                    "the same settings, or choose another output folder"
                )
            return True
        if self.run_dir.exists():
            leftovers = {p.name for p in self.run_dir.iterdir()} - _RUN_FILES - {f"{CHECKPOINT}.tmp"}
            if leftovers:
                raise RunDirError(
                    f"{self.run_dir} is not empty and holds no run to resume ({sorted(leftovers)[:3]}...): "
                    "choose an empty or new folder"
                )
        return False

    def _log(self, record: dict[str, Any]) -> None:
        if self.run_dir is not None:
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def train(self, train: Sequence[Encoded], dev: Sequence[Encoded] = ()) -> ChatTrainResult:
        cfg, chat = self.config, self.chat
        if not train:
            raise DataError("the training split is empty")
        params = [p for p in chat.model.parameters() if p.requires_grad]
        if not params:
            raise RunDirError("nothing to train: the model is frozen; use finetune 'full' or 'lora'")
        resuming = self._inspect_run_dir()
        if self.run_dir is not None:
            if not resuming:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(self.run_dir / f"{CHECKPOINT}.tmp", ignore_errors=True)
                (self.run_dir / "train_config.json").write_text(json.dumps(self._settings(), indent=2))
                (self.run_dir / "metrics.jsonl").write_text("")
            if self.on_run_dir is not None:
                self.on_run_dir(self.run_dir)
        state = None
        if resuming:
            log.warning("resuming the run in %s", self.run_dir)
            shapes = {n: tuple(p.shape) for n, p in chat.model.named_parameters() if p.requires_grad}
            state = load_checkpoint(self.run_dir, shapes)  # type: ignore[arg-type]
        set_seed(cfg.seed)

        pad = chat.tokenizer.pad_token_id
        if cfg.packing:
            rows = [[train[i] for i in group] for group in pack(train, self.max_length)]
            units: list[Any] = rows
            lengths = [sum(len(x) for x in row) for row in rows]
        else:
            units = list(train)
            lengths = [len(x) for x in train]
        schedule = batch_schedule(
            lengths, cfg.batch_size * cfg.grad_accum, cfg.max_steps, cfg.seed, cfg.group_by_length
        )

        optimizer, scheduler = optimizer_and_scheduler(params, self.learning_rate, cfg)

        step, best_step, bad = 0, 0, 0
        best_loss: float | None = None
        best_state: dict[str, torch.Tensor] | None = None
        history: list[dict[str, Any]] = []
        elapsed_before, tokens_before = 0.0, 0
        running, count = 0.0, 0.0
        if state is not None:
            chat.load_trainable_state(state.trainable)
            optimizer.load_state_dict(state.optimizer)
            scheduler.load_state_dict(state.scheduler)
            step, best_step, best_loss, bad = state.step, state.best_step, state.best_metric, state.bad_evals
            best_state, history, elapsed_before = state.best_state, state.history, state.elapsed_s
            running, count = state.running_loss
            tokens_before = int((state.best_dev or {}).get("train_tokens", 0))
            restore_rng(state.rng[0])

        start = time.perf_counter()
        eval_time = 0.0
        tokens = tokens_before
        progress = Progress(cfg.progress, cfg.max_steps, "loss")

        def elapsed() -> float:
            return round(elapsed_before + time.perf_counter() - start, 3)

        def evaluate(at: int, train_loss: float | None) -> bool:
            nonlocal best_step, best_loss, best_state, bad, eval_time
            record: dict[str, Any] = {"step": at, "train_loss": train_loss, "elapsed_s": elapsed()}
            if dev:
                t0 = time.perf_counter()
                metrics = dev_loss(chat, dev, cfg.eval_batch_size)
                eval_time += time.perf_counter() - t0
                record.update({"dev_loss": metrics["loss"], "dev_perplexity": metrics["perplexity"]})
                if best_loss is None or metrics["loss"] < best_loss:
                    best_loss, best_step, bad = metrics["loss"], at, 0
                    best_state = chat.trainable_state()
                else:
                    bad += 1
            history.append(record)
            self._log(record)
            progress.update(at, train_loss, record, (best_loss, best_step), elapsed())
            return cfg.early_stopping_patience is not None and bad >= cfg.early_stopping_patience

        stopped = "max_steps"
        chat.model.train()
        try:
            if step == 0 and cfg.eval_at_start and dev and evaluate(0, None):
                stopped = "early_stopping"
            while step < cfg.max_steps and stopped == "max_steps":
                optimizer.zero_grad(set_to_none=True)
                micros = micro_batches(schedule[step], cfg.batch_size)
                batches = [
                    collate_packed([units[i] for i in m], pad)
                    if cfg.packing
                    else collate([units[i] for i in m], pad)
                    for m in micros
                ]
                n_loss = sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches)
                tokens += sum(lengths[i] for m in micros for i in m)
                for batch in batches:
                    nll, n = chat.token_loss(batch)
                    (nll / max(n_loss, 1)).backward()
                    running += float(nll.detach())
                    count += n
                if cfg.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                step += 1
                over_time = cfg.max_minutes is not None and elapsed() >= cfg.max_minutes * 60
                record_due = step % cfg.eval_every == 0 or step == cfg.max_steps or over_time
                if record_due:
                    if evaluate(step, running / max(count, 1)):
                        stopped = "early_stopping"
                    running, count = 0.0, 0.0
                    chat.model.train()
                else:
                    progress.update(step, running / max(count, 1), None, (best_loss, best_step), elapsed())
                if over_time and stopped == "max_steps" and step < cfg.max_steps:
                    stopped = "max_minutes"
                every = cfg.checkpoint_every or cfg.eval_every
                if (
                    self.run_dir is not None
                    and step % every == 0
                    and step < cfg.max_steps
                    and stopped == "max_steps"
                ):
                    save_checkpoint(
                        self.run_dir,
                        TrainingState(
                            step=step,
                            trainable=chat.trainable_state(),
                            optimizer=optimizer.state_dict(),
                            scheduler=scheduler.state_dict(),
                            rng=[capture_rng()],
                            best_step=best_step,
                            best_metric=best_loss,
                            best_state=best_state,
                            best_dev={"train_tokens": tokens},
                            bad_evals=bad,
                            history=history,
                            elapsed_s=elapsed(),
                            running_loss=(running, count),
                        ),
                    )
        finally:
            progress.stop()
            chat.model.eval()

        if best_state is not None:
            chat.load_trainable_state(best_state)
        train_s = max(elapsed() - elapsed_before - eval_time, 1e-9)  # this attempt, evaluations excluded
        result = ChatTrainResult(
            best_step=best_step if dev else step,
            best_dev_loss=best_loss,
            steps=step,
            train_time_s=elapsed(),
            train_tokens=tokens,
            tokens_per_s=round((tokens - tokens_before) / train_s, 2),
            stopped=stopped,
            history=history,
            run_dir=str(self.run_dir) if self.run_dir else None,
        )
        if self.run_dir is not None:
            chat.save_pretrained(self.run_dir / BEST)
            tmp = self.run_dir / (FINAL + ".tmp")
            tmp.write_text(json.dumps(result.to_dict(), indent=2))
            tmp.replace(self.run_dir / FINAL)
            for name in (CHECKPOINT, f"{CHECKPOINT}.tmp", f"{CHECKPOINT}.old"):
                shutil.rmtree(self.run_dir / name, ignore_errors=True)
        return result
