"""Training progress: a rich bar on a terminal, plain lines in a log, so a background run shows signs of life."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger("promptft.training")


class Progress:
    """Shown by the main process only. With `bar` (the config's `progress`) on a terminal or in a notebook,
    a rich bar; otherwise, when stdout is not a terminal, a line at every evaluation and at least every
    10% of the steps (a bar in a log file would only appear at the end)."""

    def __init__(self, bar: bool, total: int, metric: str, enabled: bool = True) -> None:
        import rich

        console = rich.get_console()  # the CLI points it at stderr
        bar = bar and (console.is_terminal or console.is_jupyter)
        self.total = total
        self.metric = metric
        self.bar = None
        self.lines = enabled and not bar and not _isatty(sys.stdout)
        self.every = max(1, total // 10)
        self.dev_note = ""  # the last evaluation, kept beside the running loss
        self.started = time.perf_counter()
        if enabled and bar:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(
                TextColumn("training"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[note]}"),
                transient=False,
            )
            self.task = self.bar.add_task("train", total=total, note="")
            self.bar.start()

    def update(
        self,
        step: int,
        loss: float | None,
        record: dict[str, Any] | None,
        best: tuple[float | None, int],
        elapsed_s: float,
    ) -> None:
        """After each optimizer step (and at step 0's evaluation); `record` is that step's evaluation."""
        dev = record.get(f"dev_{self.metric}") if record else None
        if dev is not None:
            best_value, best_step = best
            self.dev_note = f"dev {self.metric} {dev:.4f} (best {best_value:.4f} @ {best_step})"
        note = " ".join(x for x in ("" if loss is None else f"loss {loss:.4f}", self.dev_note) if x)
        if self.bar is not None:
            self.bar.update(self.task, completed=step, note=note)
        elif self.lines and (record is not None or step % self.every == 0 or step == self.total):
            percent = 100 * step / max(self.total, 1)
            _emit(
                " ".join(
                    x for x in (f"step {step}/{self.total} ({percent:.0f}%)", note, f"{elapsed_s:.1f} s") if x
                )
            )

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _emit(line: str) -> None:
    # Through logging where someone listens (the CLI's handler); else straight to stderr, flushed, so a
    # plain `python train.py > log 2>&1 &` shows it too.
    if log.isEnabledFor(logging.INFO) and log.hasHandlers():
        log.info(line)
    else:
        print(line, file=sys.stderr, flush=True)
