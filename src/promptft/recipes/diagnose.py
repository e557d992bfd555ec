"""The fitting-diagnosis recipe: read a run folder's dev history, say whether it over- or under-fitted and
what to try, and plot its learning curves."""

from __future__ import annotations

from pathlib import Path

from promptft.classifiers.ensemble import ENSEMBLE_TYPE
from promptft.classifiers.saving import CONFIG_FILE
from promptft.errors import DataError
from promptft.evaluation.fitting import FitDiagnosis, diagnose_fitting, plot_fitting
from promptft.files import read_json_object
from promptft.recipes.ensemble import ENSEMBLE_FILE
from promptft.recipes.run_dir import BEST_DIR, run_of

PLOT_FILE = "learning_curves.png"
HISTORY = "metrics.jsonl"  # written by the Trainer


def diagnose_run(run_dir: str | Path, *, plot: str | Path | None = None) -> tuple[FitDiagnosis, Path]:
    """The diagnosis of `run_dir` (its metrics.jsonl) and the learning-curve PNG, written to `plot`
    (default `<run_dir>/learning_curves.png`). A run's `best/` folder stands for its run."""
    run_dir = history_folder(Path(run_dir))
    diagnosis = diagnose_fitting(run_dir)  # a clear DataError when the folder holds no history
    path = Path(plot) if plot else Path(run_dir) / PLOT_FILE
    plot_fitting(run_dir, path)
    return diagnosis, path


def history_folder(path: Path) -> Path:
    """The folder whose metrics.jsonl describes `path`: the run itself, or the run above its `best/`
    folder. An ensemble was never trained as one: the error names its members' runs instead."""
    if path.name == BEST_DIR and not (path / HISTORY).exists() and (path.parent / HISTORY).exists():
        return path.parent
    config = path / CONFIG_FILE
    if config.is_file() and read_json_object(config).get("type") == ENSEMBLE_TYPE:
        record = path / ENSEMBLE_FILE  # written by `promptft ensemble`: where each member came from
        members = read_json_object(record).get("members", []) if record.is_file() else []
        runs = [run_of(Path(m["source"])) for m in members if m.get("source")]
        how = "; ".join(f"promptft diagnose {r}" for r in runs) or "promptft diagnose RUN, for each"
        raise DataError(
            f"{path} is an ensemble: it was not trained as one, so it has no dev history. Diagnose the "
            f"runs its members were trained in instead: {how}"
        )
    return path
