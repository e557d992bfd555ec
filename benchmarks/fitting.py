"""Fitting diagnostics on the few-shot benchmark's real training histories.

    PYTHONPATH=src python benchmarks/fitting.py   # -> benchmarks/results/fitting/{fewshot.json,README.md,*.png}

Every cell in benchmarks/results/fewshot/<model>/<task>/<method>/seed<N>.json that trained (its
`info.history` has dev evaluations) is diagnosed with `promptft.evaluation.diagnose_fitting`, chance
from the task's number of labels and the learning rate from the cell's config. The summary counts the
verdicts per model, task and method, with the mean test accuracy of each verdict (a sanity check: an
over-fit cell that stopped on its best dev step need not score worse). One learning-curve plot per verdict
is written beside it.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from promptft.bench.tasks import load_tasks
from promptft.evaluation import diagnose_fitting, plot_fitting

RESULTS = Path(__file__).resolve().parent / "results"
OUT = RESULTS / "fitting"


def main() -> None:
    table = load_tasks()
    cells: list[dict[str, Any]] = []
    examples: dict[str, tuple[list[dict[str, Any]], int, str]] = {}
    for path in sorted((RESULTS / "fewshot").glob("*/*/*/seed*.json")):
        cell = json.loads(path.read_text())
        history = (cell.get("info") or {}).get("history") or []
        if sum(r.get("dev_accuracy") is not None for r in history) < 3:
            continue  # zero-shot and setfit cells have no training curve
        n_labels = len(table.find(cell["task"]).label_names)
        d = diagnose_fitting(history, n_labels=n_labels)
        lr = (cell.get("config") or {}).get("learning_rate")
        d.context = {"learning_rate": lr, "max_steps": (cell.get("config") or {}).get("max_steps")}
        name = f"{cell['model']}/{cell['task']}/{cell['method']}/seed{cell['seed']}"
        cells.append(
            {
                "cell": name,
                "verdict": d.verdict,
                "evidence": [e.code for e in d.evidence],
                "best_step": d.best_step,
                "steps": cell.get("steps"),
                "best_dev": d.best_value,
                "last_dev": d.last_value,
                "test_accuracy": cell.get("accuracy"),
                "learning_rate": lr,
            }
        )
        examples.setdefault(d.verdict, (history, n_labels, name))
    groups: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for c in cells:
        model, task, method, _ = c["cell"].split("/")
        groups[f"{model}/{task}/{method}"][c["verdict"]].append(c["test_accuracy"])
    summary = {
        key: {
            v: {"cells": len(a), "mean_test_accuracy": round(statistics.mean(a), 4)}
            for v, a in sorted(g.items())
        }
        for key, g in sorted(groups.items())
    }
    totals: dict[str, int] = defaultdict(int)
    for c in cells:
        totals[c["verdict"]] += 1
    OUT.mkdir(parents=True, exist_ok=True)
    plots = {}
    for verdict, (history, n_labels, name) in sorted(examples.items()):
        file = OUT / f"{verdict.replace(' ', '_')}.png"
        plot_fitting(history, file, n_labels=n_labels, title=name)
        plots[verdict] = {"cell": name, "png": file.name}
    result = {
        "command": "PYTHONPATH=src python " + " ".join(["benchmarks/fitting.py", *sys.argv[1:]]),
        "cells": len(cells),
        "verdicts": dict(sorted(totals.items())),
        "by_model_task_method": summary,
        "example_plots": plots,
        "per_cell": cells,
    }
    (OUT / "fewshot.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        "# Fitting diagnostics of the few-shot benchmark's training runs",
        "",
        f"`{result['command']}` diagnosed {len(cells)} trained cells: "
        + ", ".join(f"{v}: {n}" for v, n in result["verdicts"].items())
        + ".",
        "",
        "| model/task/method | verdict | cells | mean test accuracy |",
        "|---|---|---|---|",
    ]
    for key, g in summary.items():
        for verdict, s in g.items():
            lines.append(f"| {key} | {verdict} | {s['cells']} | {s['mean_test_accuracy']:.3f} |")
    lines += [
        "",
        "Example curves: " + ", ".join(f"[{v}]({p['png']}) ({p['cell']})" for v, p in plots.items()),
    ]
    (OUT / "README.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(result["verdicts"]))


if __name__ == "__main__":
    main()
