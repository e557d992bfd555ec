"""Over- and under-fitting from a run's metric history (`metrics.jsonl`), with advice and a plot.

The trainer writes one record per dev evaluation: `step`, `train_loss` (the mean since the previous
evaluation; None at step 0), `dev_<metric>` (accuracy, macro_f1, ...) and, if an objective logs them,
`dev_loss` and `train_<metric>`. The rules are deliberately simple and say which evidence fired:

* over-fitting: the dev metric fell clearly after its best while the train loss kept falling; the dev
  loss rose while the train loss fell; or a measured train metric far above the dev one.
* under-fitting: the best dev metric stays near chance for the number of labels (unless the training set
  was learnt: then it is over-fitting, memorising without generalising); the train loss stays near the
  cross-entropy of a uniform guess, or hardly falls at all.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from promptft.errors import DataError
from promptft.files import read_json_object

OVER, UNDER = "over-fitting", "under-fitting"


@dataclass(frozen=True)
class FitEvidence:
    # dev_falling | dev_loss_rising | train_dev_gap | no_generalisation (over); near_chance |
    # train_near_chance | flat_train_loss (under); memorised (a note)
    code: str
    kind: str  # over-fitting | under-fitting | note
    message: str


@dataclass
class FitDiagnosis:
    verdict: str  # over-fitting | under-fitting | over- and under-fitting | healthy | too short to tell
    evidence: list[FitEvidence]
    suggestions: list[str]
    metric: str
    n_labels: int | None
    chance: float | None
    best_step: int | None
    best_value: float | None
    last_value: float | None
    n_evals: int
    context: dict[str, Any] = field(default_factory=dict)  # learning rate, steps, ... when known

    @property
    def over_fitting(self) -> bool:
        return any(e.kind == OVER for e in self.evidence)

    @property
    def under_fitting(self) -> bool:
        return any(e.kind == UNDER for e in self.evidence)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["over_fitting"], out["under_fitting"] = self.over_fitting, self.under_fitting
        return out

    def render_text(self) -> str:
        best = "-" if self.best_value is None else f"{self.best_value:.3f} at step {self.best_step}"
        lines = [f"Fitting: {self.verdict} (dev {self.metric}: best {best}, {self.n_evals} evaluations)"]
        lines += [f"  [{e.kind}] {e.message}" for e in self.evidence]
        if refit := self.context.get("refit"):
            lines.append(
                f"  (refit: the saved model was trained again on train + dev, {refit['n_examples']} examples, for "
                f"{refit['steps']} steps; these curves are the run that chose that step)"
            )
        if self.suggestions:
            lines.append("What to try:")
            lines += [f"  - {s}" for s in self.suggestions]
        return "\n".join(lines)


def load_history(source: str | Path) -> list[dict[str, Any]]:
    """The records of a run folder's `metrics.jsonl` (or of that file itself)."""
    path = Path(source)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.is_file():
        raise DataError(
            f"no metric history at {path}: point at a run folder written by fit()/promptft train "
            "(it holds metrics.jsonl), or at the metrics.jsonl file itself"
        )
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise DataError(
                f"line {n} of {path} is not JSON ({err.msg}): the run was probably cut off mid-write; "
                "delete that line and diagnose again"
            ) from None
    return records


def run_labels(run_dir: str | Path) -> list[str] | None:
    """The label names a run's saved classifier (`best/promptft_config.json`) declares, if any."""
    config = Path(run_dir) / "best" / "promptft_config.json"
    if not config.is_file():
        return None

    def find(node: Any) -> list[str] | None:
        if isinstance(node, Mapping):
            if isinstance(node.get("labels"), list):
                return [str(x) for x in node["labels"]]
            return next((r for v in node.values() if (r := find(v)) is not None), None)
        return None

    return find(json.loads(config.read_text()))


def diagnose_fitting(
    history: Sequence[Mapping[str, Any]] | str | Path,
    *,
    n_labels: int | None = None,
    metric: str = "accuracy",
    drop: float = 0.03,
    gap: float = 0.15,
    chance_margin: float = 0.05,
    flat: float = 0.1,
    memorised_loss: float = 0.05,
) -> FitDiagnosis:
    """Diagnose a metric history (records, a run folder or a metrics.jsonl path).

    `n_labels` sets chance (1 / n_labels) and the uniform-guess loss (ln n_labels); from a run folder it
    is read from the saved classifier when not given. `drop`: how far (absolute) the dev metric must fall
    below its best to count; `gap`: the train-dev metric gap that counts; `chance_margin`: how close to
    chance counts as chance; `flat`: the relative train-loss fall below which the loss is flat.
    """
    context: dict[str, Any] = {}
    if isinstance(history, str | Path):
        run = Path(history) if Path(history).is_dir() else Path(history).parent
        if n_labels is None and (labels := run_labels(run)):
            n_labels = len(labels)
        cfg = run / "train_config.json"
        if cfg.is_file():
            raw = json.loads(cfg.read_text())
            context = {k: raw[k] for k in ("learning_rate", "max_steps", "eval_every") if k in raw}
        # the saved model trained again on train + dev (an unreadable file: the curves are diagnosed without it)
        if refit := read_json_object(run / "final_metrics.json").get("refit"):
            context["refit"] = refit
        history = load_history(history)
    key = f"dev_{metric}"
    dev = [(int(r["step"]), float(r[key])) for r in history if r.get(key) is not None]
    train = [(int(r["step"]), float(r["train_loss"])) for r in history if r.get("train_loss") is not None]
    dev_loss = [(int(r["step"]), float(r["dev_loss"])) for r in history if r.get("dev_loss") is not None]
    train_metric = [float(r[f"train_{metric}"]) for r in history if r.get(f"train_{metric}") is not None]
    chance = 1.0 / n_labels if n_labels else None
    ev: list[FitEvidence] = []
    best_step = best = last = None
    if dev:
        best_step, best = max(dev, key=lambda p: (p[1], -p[0]))  # the first step reaching the best
        last = dev[-1][1]
    if len(dev) < 3 and len(train) < 3:
        return FitDiagnosis(
            "too short to tell", ev, ["evaluate more often (a smaller eval_every) to see the curves"],
            metric, n_labels, chance, best_step, best, last, len(dev), context,
        )  # fmt: skip

    def loss_at(step: int) -> float | None:
        before = [loss for s, loss in train if s <= step]
        return before[-1] if before else None

    # Over-fitting.
    if dev and best is not None and last is not None and best - last >= drop and best_step != dev[-1][0]:
        at_best, at_end = loss_at(best_step), train[-1][1] if train else None
        # The train loss must really have kept falling, and a "peak" at chance is noise, not a peak.
        falling = at_best is None or at_end is None or at_end < at_best * (1 - flat)
        if falling and (chance is None or best > chance + chance_margin):
            ev.append(FitEvidence(
                "dev_falling", OVER, f"dev {metric} peaked at {best:.3f} (step {best_step}) and fell to "
                f"{last:.3f} by step {dev[-1][0]} while the train loss kept falling"
                + (f" ({at_best:.3g} -> {at_end:.3g})" if at_best is not None and at_end is not None else ""),
            ))  # fmt: skip
    if len(dev_loss) >= 3:
        low_step, low = min(dev_loss, key=lambda p: p[1])
        end_loss = dev_loss[-1][1]
        at_low = loss_at(low_step)
        if (
            end_loss > low * 1.1 + 1e-6
            and low_step != dev_loss[-1][0]
            and (at_low is None or (train and train[-1][1] < at_low))
        ):
            ev.append(FitEvidence(
                "dev_loss_rising", OVER, f"dev loss rose from {low:.3g} (step {low_step}) to {end_loss:.3g} "
                "while the train loss kept falling",
            ))  # fmt: skip
    if train_metric and last is not None and train_metric[-1] - last > gap:
        ev.append(FitEvidence(
            "train_dev_gap", OVER, f"train {metric} {train_metric[-1]:.3f} vs dev {last:.3f}: a gap of "
            f"{train_metric[-1] - last:.3f} (> {gap})",
        ))  # fmt: skip
    elif train and train[-1][1] < memorised_loss and last is not None and 1 - last > gap:
        ev.append(FitEvidence(
            "memorised", "note", f"the train loss is {train[-1][1]:.2g} (the training set is memorised) while "
            f"dev {metric} is {last:.3f}: normal for a few-shot run, but more data would help",
        ))  # fmt: skip

    # Dev at chance: under-fitting, unless the training set was learnt (then it does not generalise).
    if chance is not None and best is not None and best <= chance + chance_margin:
        learnt = bool(train) and n_labels is not None and train[-1][1] < 0.5 * math.log(max(n_labels, 2))
        if learnt:
            ev.append(FitEvidence(
                "no_generalisation", OVER, f"the train loss fell to {train[-1][1]:.3g} but the best dev "
                f"{metric} {best:.3f} stays near chance ({chance:.3f}): the model memorises the training set "
                "without learning the task",
            ))  # fmt: skip
        else:
            ev.append(FitEvidence(
                "near_chance", UNDER, f"the best dev {metric} {best:.3f} is near chance ({chance:.3f} for "
                f"{n_labels} labels)",
            ))  # fmt: skip
    if train:
        first_loss, end = train[0][1], train[-1][1]
        uniform = math.log(n_labels) if n_labels and n_labels > 1 else None
        if uniform is not None and end >= 0.9 * uniform:
            ev.append(FitEvidence(
                "train_near_chance", UNDER, f"the train loss ends at {end:.3g}, about the {uniform:.3g} of a "
                f"uniform guess over {n_labels} labels: the model has not learnt the training set",
            ))  # fmt: skip
        elif len(train) >= 3 and first_loss > 0 and (first_loss - end) / first_loss < flat:
            ev.append(FitEvidence(
                "flat_train_loss", UNDER, f"the train loss hardly moved ({first_loss:.3g} -> {end:.3g}, "
                f"less than {flat:.0%} lower)",
            ))  # fmt: skip
    over = any(e.kind == OVER for e in ev)
    under = any(e.kind == UNDER for e in ev)
    verdict = {(True, True): f"{OVER} and {UNDER}", (True, False): OVER, (False, True): UNDER}.get(
        (over, under), "healthy"
    )
    return FitDiagnosis(
        verdict, ev, _suggest(over, under, best_step, dev, context), metric, n_labels, chance,
        best_step, best, last, len(dev), context,
    )  # fmt: skip


def _suggest(over: bool, under: bool, best_step: int | None, dev: list, context: dict[str, Any]) -> list[str]:
    lr = context.get("learning_rate")
    out = []
    if over:
        if best_step is not None and dev:
            out.append(
                f"fewer steps: the best dev score came at step {best_step} of {dev[-1][0]} (set max_steps "
                "near it, or early_stopping_patience so training stops when dev stops improving)"
            )
        out.append(f"a lower learning rate{f' than {lr:g}' if lr else ''} (e.g. a third of it)")
        out.append("train fewer weights: LoRA or another adapter instead of full fine-tuning")
        out.append("more training data (a larger K per label), or data augmentation")
    if under:
        out.append("more steps, or a higher learning rate" + (f" than {lr:g}" if lr else ""))
        out.append("another prompt or other label words (a template search), which often matters most")
        out.append("more trainable weights (full fine-tuning, a larger LoRA rank) or a larger model")
        out.append("audit the data: conflicting or wrong labels keep the loss up")
    return out


def plot_fitting(
    history: Sequence[Mapping[str, Any]] | str | Path,
    path: str | Path,
    *,
    n_labels: int | None = None,
    metric: str = "accuracy",
    title: str | None = None,
) -> Path:
    """Learning curves of a history (records, a run folder or a metrics.jsonl path) to a PNG, with chance
    and the best step marked and the diagnosis in the title."""
    from promptft.evaluation.plots import plot_learning_curves

    diagnosis = diagnose_fitting(history, n_labels=n_labels, metric=metric)
    records = load_history(history) if isinstance(history, str | Path) else list(history)
    return plot_learning_curves(
        records,
        path,
        chance=diagnosis.chance,
        best_step=diagnosis.best_step,
        title=f"{title + ': ' if title else ''}{diagnosis.verdict}",
    )
