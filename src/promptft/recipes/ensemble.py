"""The ensemble recipe: several trained single-label classifiers (run folders or saved ones) voting as one.

Each member is scored on a labelled dev file and weighted by its dev score (PET's weighting) or equally;
the members' label log-probabilities are averaged (`combine="logits"`) or their probabilities
(`"probabilities"`), and the combination is scored on the same file. The folder written is a saved
`EnsembleClassifier` that eval, predict, serve and distill take, with `ensemble.json` beside it.

The benchmark's `method_ensemble` measured this: on SST-2 (SmolLM2, 5 seeds) the LoRA, (IA)3 and
demonstrations models of each split voting scored 86.4 against 86.0 for the best of them alone. The dev
score of the vote is not chosen on dev while each member's checkpoint was, so the recipe says when the best
member alone scores higher on dev, and leaves the choice to the user.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptft.config import TaskConfig
from promptft.data.splits import check_empty, read_split_rows
from promptft.errors import ConfigError, ModelError
from promptft.recipes.evaluate import check_known_labels, prepare, require_file
from promptft.recipes.run_dir import check_writable, run_of

log = logging.getLogger(__name__)

ENSEMBLE_FILE = "ensemble.json"
WEIGHTINGS = ("dev", "uniform")
DATA_KEYS = ("fields", "label", "label_map", "header")  # how eval and predict read data for the ensemble
COMBINATIONS = ("logits", "probabilities")


@dataclass
class EnsembleResult:
    """What `build_ensemble` measured and wrote."""

    folder: Path
    metric: str
    members: list[dict[str, Any]] = field(default_factory=list)  # name, source, dev metrics, weight
    dev: dict[str, float] = field(default_factory=dict)  # the ensemble's dev metrics
    best_member: str = ""

    @property
    def beats_best_member(self) -> bool:
        best = next(m for m in self.members if m["name"] == self.best_member)
        return self.dev[self.metric] > best["dev"][self.metric]

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "metric": self.metric,
            "members": self.members,
            "dev": self.dev,
            "best_member": self.best_member,
            "beats_best_member": self.beats_best_member,
        }


def member_names(sources: Sequence[str | Path], names: Sequence[str] | None = None) -> list[str]:
    """One folder-safe name per member: the given ones, else each run's folder name (a `best/` folder is
    named after its run), made distinct with -2, -3, ..."""
    if names is not None:
        names = [str(n).strip() for n in names]
        if len(names) != len(sources):
            raise ConfigError(
                f"--names gives {len(names)} names for {len(sources)} members: give one per member"
            )
        bad = [n for n in names if not n or "/" in n or n.startswith(".")]
        if bad or len(set(names)) != len(names):
            raise ConfigError(
                f"--names {','.join(names)}: give distinct names usable as folder names (no '/', no leading "
                "'.')"
            )
        return names
    out: list[str] = []
    for source in sources:
        path = Path(source).resolve()
        base = run_of(path).name
        base = base.replace("/", "_").lstrip(".") or "member"
        name, i = base, 2
        while name in out:
            name, i = f"{base}-{i}", i + 1
        out.append(name)
    return out


def check_not_refit_on(saved: Mapping[str, Any], dev: str | Path, source: str | Path) -> None:
    """A member refit on train + dev (`train.refit`) has seen its dev split: scored on that file, its weight
    and the ensemble's dev score would be optimistic. The same file is refused; an unknown one (trained
    from Python) is warned about."""
    card = saved.get("card") or {}
    if not (card.get("training") or {}).get("refit"):
        return
    trained_dev = (card.get("data") or {}).get("dev")
    if trained_dev is None:
        log.warning(
            "%s was refit on train + dev: if %s is (or overlaps) its dev split, its dev score is optimistic",
            source,
            dev,
        )
    elif Path(trained_dev).resolve() == Path(dev).resolve():
        raise ConfigError(
            f"{source} was refit on train + dev, and {dev} is its dev split: scored there its weight would be "
            "optimistic; give --dev a labelled file none of the members trained on, or members trained "
            "without refit"
        )


def build_ensemble(
    sources: Sequence[str | Path],
    dev: str | Path,
    output: str | Path,
    *,
    names: Sequence[str] | None = None,
    weighting: str = "dev",
    combine: str = "logits",
    columns: Mapping[str, Any] | None = None,
    batch_size: int = 32,
    device: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
    on_progress=None,
) -> EnsembleResult:
    """Score each trained classifier in `sources` (run folders or saved classifiers, at least two, one label
    set) on the labelled `dev` file, combine them, score the combination and save it to `output`.

    `weighting`: "dev" (each member's dev score, in the task's metric) or "uniform". `columns`: changes to
    the column spec, which defaults to that of the job that trained the first member. Everything that can
    be checked without the models (folders, labels, the dev file, the output) is checked first."""
    from promptft.classifiers import EnsembleClassifier
    from promptft.classifiers.ensemble import label_order
    from promptft.classifiers.saving import check_save_target
    from promptft.deploy.onnx_runtime import is_onnx
    from promptft.recipes.evaluate import load

    note = on_progress or (lambda message: None)
    sources = list(sources)
    if len(sources) < 2:
        raise ConfigError("an ensemble needs at least two trained classifiers: give two or more run folders")
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"weighting is one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
    if combine not in COMBINATIONS:
        raise ConfigError(f"combine is one of {', '.join(COMBINATIONS)}, got {combine!r}")
    output = Path(output)
    check_save_target(output, overwrite, "pass --overwrite")
    check_writable(output, "the ensemble folder")
    require_file(dev)
    names = member_names(sources, names)
    for source in sources:
        if is_onnx(source):
            raise ModelError(f"{source} is an ONNX export: give the trained classifier it was exported from")
    prepared = [prepare(source, device, **dict(columns or {})) for source in sources]
    _, first, spec = prepared[0]
    for (_, saved, _), source in zip(prepared, sources, strict=True):
        if saved.get("type") == "ensemble":
            raise ModelError(f"{source} is an ensemble already: give its members' folders instead")
        if saved["task"].type != "single_label":
            raise ConfigError(
                f"{source} is a {saved['task'].type} classifier: an ensemble combines single-label ones"
            )
        check_not_refit_on(saved, dev, source)
        # one label set, in any order: EnsembleClassifier aligns each member's scores to the first's
        label_order(first["labels"], saved["labels"], f"ensemble members ({sources[0]}, {source})")
    task: TaskConfig = first["task"]
    rows = read_split_rows(dev, {**spec.reader_options(), "task": task.reader_task()})
    check_known_labels(rows, first["labels"], dev)
    check_empty(rows, dev, "keep", "scored like the others")
    examples = [row.example for row in rows]
    metric = "accuracy"

    members, scores, loaded = [], [], []
    for i, ((folder, _, _), name) in enumerate(zip(prepared, names, strict=True), start=1):
        note(f"member {i}/{len(prepared)} ({name}): scoring {len(examples)} dev examples")
        start = time.perf_counter()
        clf = load(folder, device)
        metrics = clf.evaluate(examples, batch_size, progress)
        loaded.append(clf)
        scores.append(float(metrics[metric]))
        members.append(
            {
                "name": name,
                "source": str(folder),
                "dev": metrics,
                "seconds": round(time.perf_counter() - start, 2),
            }
        )
    ensemble = EnsembleClassifier(
        loaded, scores if weighting == "dev" else None, combine=combine, names=names
    )
    for member, weight in zip(members, ensemble.weights.tolist(), strict=True):
        member["weight"] = round(weight, 6)
    note(f"the ensemble of {len(loaded)}: scoring {len(examples)} dev examples")
    dev_metrics = ensemble.evaluate(examples, batch_size, progress)
    best = max(members, key=lambda m: m["dev"][metric])
    result = EnsembleResult(output, metric, members, dev_metrics, best["name"])
    ensemble.data_spec = {k: v for k, v in spec.to_dict().items() if k in DATA_KEYS and v is not None}
    ensemble.note_for_card(
        data={"dev": str(dev)},
        dev=dev_metrics,
        ensemble={m["name"]: {"weight": m["weight"], "dev": m["dev"]} for m in members},
    )
    note(f"saving the ensemble to {output}")
    ensemble.save_pretrained(output, overwrite=overwrite)
    (output / ENSEMBLE_FILE).write_text(
        json.dumps(
            {**result.to_dict(), "dev_file": str(dev), "weighting": weighting, "combine": combine}, indent=2
        )
    )
    return result
