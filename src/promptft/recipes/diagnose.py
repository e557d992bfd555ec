"""The fitting-diagnosis recipe: read a run folder's dev history, say whether it over- or under-fitted and
what to try, and plot its learning curves."""

from __future__ import annotations

from pathlib import Path

from promptft.evaluation.fitting import FitDiagnosis, diagnose_fitting, plot_fitting

PLOT_FILE = "learning_curves.png"


def diagnose_run(run_dir: str | Path, *, plot: str | Path | None = None) -> tuple[FitDiagnosis, Path]:
    """The diagnosis of `run_dir` (its metrics.jsonl) and the learning-curve PNG, written to `plot`
    (default `<run_dir>/learning_curves.png`)."""
    diagnosis = diagnose_fitting(run_dir)  # a clear DataError when the folder holds no history
    path = Path(plot) if plot else Path(run_dir) / PLOT_FILE
    plot_fitting(run_dir, path)
    return diagnosis, path
