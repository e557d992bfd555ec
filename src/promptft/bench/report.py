"""Summarise the benchmark's cell files: `fewshot_summary.json`, `fewshot.md` and `fewshot.png`.

The summary JSON has exactly this shape (accuracy in percent, std the sample std over seeds, ddof=1;
null when there is one seed):

    {model: {task: {method: {"mean": float, "std": float | null, "n_seeds": int, "test": "<file or dev>"}}}}

Tasks scored by another metric (multi-label macro-F1, regression Pearson, x100) add `"metric": name` and
their second metric (`"micro_f1"` / `"spearman"`: {mean, std}).

Size (~460 lines, over the ~400 guide, on purpose): the three outputs are one report. They share the cell
grouping, the task and method orders, the dev marks and the per-task option notes, and the markdown's
tables (results, targets, the paper's numbers) are each a dozen lines of formatting; split apart they would
need a module of shared helpers that only this one uses.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptft.bench.cells import FEWSHOT_DIR, cell_score, read_cell, write_json_atomic
from promptft.bench.runner import DEFAULT_RESULTS_DIR
from promptft.bench.tasks import DEV, TaskTable, load_tasks

SUMMARY_FILE = "fewshot_summary.json"
MARKDOWN_FILE = "fewshot.md"
PLOT_FILE = "fewshot.png"

DEV_MARK = "†"
SUBSET_MARK = "‡"
PARTIAL_MARK = "*"
MIXED_MARK = "§"
BEST_ON_DEV = "best on dev"


@dataclass
class Report:
    summary: dict[str, Any]
    summary_path: Path
    markdown_path: Path
    plot_path: Path
    n_cells: int


def load_cells(results_dir: str | Path) -> list[dict[str, Any]]:
    root = Path(results_dir) / FEWSHOT_DIR
    cells = []
    for path in sorted(root.glob("*/*/*/seed*.json")):
        cell = read_cell(path)
        if cell is not None:
            cell["_path"] = str(path)
            cells.append(cell)
    return cells


def _choose(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cells of one (model, task, method) that the summary uses: full test sets before --max-test
    subsets, then the most common test set (a file before dev on ties)."""
    full = [c for c in cells if not c.get("test_subset")]
    pool = full or cells
    counts = Counter(c["test"] for c in pool)
    best = max(counts, key=lambda t: (counts[t], t != DEV))
    return sorted((c for c in pool if c["test"] == best), key=lambda c: c["seed"])


def group_cells(cells: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, list[dict[str, Any]]]]]:
    grouped: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for cell in cells:
        grouped[cell["model"]][cell["task"]][cell["method"]].append(cell)
    return {
        model: {task: {m: _choose(cs) for m, cs in methods.items()} for task, methods in tasks.items()}
        for model, tasks in grouped.items()
    }


def _stats(cells: list[dict[str, Any]]) -> dict[str, Any]:
    values = [100 * cell_score(c) for c in cells]
    out = {
        "mean": round(statistics.fmean(values), 2),
        "std": round(statistics.stdev(values), 2) if len(values) > 1 else None,  # sample std, ddof=1
        "n_seeds": len(values),
        "test": cells[0]["test"],
    }
    metric = cells[0].get("metric", "accuracy")
    if metric != "accuracy":  # other task types name their metric, and summarise the second one too
        out["metric"] = metric
        for other in ("spearman", "micro_f1"):
            if all(other in c for c in cells):
                values = [100 * c[other] for c in cells]
                out[other] = {
                    "mean": round(statistics.fmean(values), 2),
                    "std": round(statistics.stdev(values), 2) if len(values) > 1 else None,
                }
    return out


def cell_dev_score(cell: dict[str, Any]) -> float | None:
    """A cell's score on its seed's dev split (the one that selected its checkpoint), in its task's metric."""
    value = cell.get(f"dev_{cell.get('metric', 'accuracy')}")
    return None if value is None else float(value)


def best_on_dev(methods: dict[str, list[dict[str, Any]]], n_seeds: int) -> str | None:
    """The method a user would pick for a task without looking at test: the highest mean dev score over
    the seeds, among methods with every seed on the full test file (ties: the first in the table's order)."""
    eligible = {}
    for method in _method_order(set(methods)):
        cells = methods[method]
        dev = [cell_dev_score(c) for c in cells]
        if len(cells) < n_seeds or any(c.get("test_subset") for c in cells) or None in dev:
            continue
        eligible[method] = statistics.fmean(dev)  # type: ignore[arg-type]
    return max(eligible, key=eligible.__getitem__) if eligible else None


def summarize(grouped: dict[str, dict[str, dict[str, list[dict[str, Any]]]]]) -> dict[str, Any]:
    return {
        model: {task: {m: _stats(cs) for m, cs in methods.items()} for task, methods in tasks.items()}
        for model, tasks in grouped.items()
    }


def build_report(
    results_dir: str | Path = DEFAULT_RESULTS_DIR, tasks_file: TaskTable | str | Path | None = None
) -> Report:
    """Regenerate the summary JSON, the markdown table and the plot from the cell files."""
    from promptft.errors import DataError

    results_dir = Path(results_dir)
    table = tasks_file if isinstance(tasks_file, TaskTable) else load_tasks(tasks_file)
    cells = load_cells(results_dir)
    if not cells:
        raise DataError(
            f"no benchmark cells under {results_dir / FEWSHOT_DIR}: run `promptft bench run` first, "
            "or point --results-dir at the folder that holds fewshot/"
        )
    grouped = group_cells(cells)
    summary = summarize(grouped)
    summary_path = results_dir / SUMMARY_FILE
    write_json_atomic(summary_path, summary)
    markdown_path = results_dir / MARKDOWN_FILE
    text = render_markdown(grouped, summary, cells, table)
    tmp = markdown_path.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(markdown_path)
    plot_path = results_dir / PLOT_FILE
    render_plot(grouped, summary, table, plot_path)
    return Report(summary, summary_path, markdown_path, plot_path, len(cells))


# ---------------------------------------------------------------------------------------------------------
# markdown


def _other_metrics(cells: list[dict[str, Any]]) -> str:
    """A sentence naming the tasks scored by another metric than accuracy (issue 10's task types)."""
    other = sorted({(c["task"], c["metric"]) for c in cells if c.get("metric", "accuracy") != "accuracy"})
    if not other:
        return ""
    named = ", ".join(f"{task}: {metric} x 100" for task, metric in other)
    return f" Tasks of other types report their own metric instead of accuracy ({named})."


def _task_order(table: TaskTable, present: set[str]) -> list[str]:
    order = [k for k in table.tasks if k in present]
    return order + sorted(present - set(order))


def _method_order(present: set[str]) -> list[str]:
    from promptft.bench.methods import METHODS

    order = [m for m in METHODS if m in present]
    return order + sorted(present - set(order))


def _plan(cell: dict[str, Any]) -> tuple[str, ...]:
    """What a cell was configured to train: every grid point tried (or its one config), as sorted JSON."""
    tried = [g["config"] for g in cell["grid"]] if cell.get("grid") else [cell.get("config") or {}]
    return tuple(sorted(json.dumps(c, sort_keys=True) for c in tried))


def _flat(options: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _per_task_options(
    table: TaskTable, tasks: list[str], grouped: dict[str, Any], methods: list[str]
) -> list[str]:
    """Where a method ran with other options on some tasks (per-task budgets), say which and how."""
    notes = []
    for method in methods:
        plans = {key: Counter(_plan(c) for c in grouped[key].get(method, [])) for key in tasks}
        plans = {key: counts.most_common(1)[0][0] for key, counts in plans.items() if counts}
        if len(set(plans.values())) < 2:
            continue
        usual = Counter(plans.values()).most_common(1)[0][0]
        base = _flat(json.loads(usual[0]))
        for key, plan in plans.items():
            if plan == usual:
                continue
            tried = _flat(json.loads(plan[0]))
            changed = ", ".join(
                f"{k}={tried.get(k, '(unset)')}"
                for k in sorted(set(base) | set(tried))
                if base.get(k) != tried.get(k)
            )
            name = table.tasks[key].name if key in table.tasks else key
            notes.append(f"{method} on {name}: {changed or 'another grid'}")
    if not notes:
        return []
    return [
        "Options that differ by task (`tasks:` in the bench config; the rest as in `methods:`): "
        + "; ".join(notes)
        + "."
    ]


def _fmt(mean: float, std: float | None) -> str:
    return f"{mean:.1f}" if std is None else f"{mean:.1f} ({std:.1f})"


def render_markdown(
    grouped: dict[str, Any], summary: dict[str, Any], cells: list[dict[str, Any]], table: TaskTable
) -> str:
    n_seeds_full = len(table.seeds)
    used = [c for model in grouped.values() for task in model.values() for cs in task.values() for c in cs]
    wall_h = sum(c.get("wall_time_s") or 0 for c in cells) / 3600
    cpu_h = sum(c.get("cpu_time_s") or 0 for c in cells) / 3600
    devices = sorted({c.get("device", "?") for c in cells})
    seeds = ", ".join(str(s) for s in table.seeds)
    lines = [
        "# Few-shot benchmark (LM-BFF protocol)",
        "",
        f"Generated by `promptft bench report` from {len(cells)} cell files under `{FEWSHOT_DIR}/` "
        f"({len(used)} used in the tables); do not edit by hand.",
        "",
        f"Protocol: K={table.k} training examples per class and {table.k} dev examples per class (LM-BFF's "
        f"splits, seeds {seeds}); every method uses the same splits and model; model selection (checkpoint "
        "and grid point) on the seed's dev split only; accuracy (%) on the task's full test file; "
        "**mean (std) over seeds, std = sample standard deviation (ddof=1)**." + _other_metrics(used),
        "",
        f"Compute: {wall_h:.2f} wall-clock hours and {cpu_h:.2f} CPU hours (process CPU time) summed over all "
        f"{len(cells)} cells; device(s): {', '.join(devices)}.",
        "",
        f"Marks: {DEV_MARK} = the test set is hidden, so the task is scored on the seed's own dev split, which "
        f"also selected the model (optimistic); {SUBSET_MARK} = scored on a `--max-test` subset of the test "
        f"file (smoke run, not a benchmark number); [n=k] = only k of {n_seeds_full} seeds; "
        f"{PARTIAL_MARK} = average over the tasks this method has; {MIXED_MARK} = its seeds were trained with "
        "different hyperparameters (cells from runs with different configs).",
    ]
    for model in sorted(grouped):
        tasks = _task_order(table, set(grouped[model]))
        # The average is over accuracy tasks only: a Pearson or a macro-F1 is not an accuracy to average with.
        accuracy_tasks = [
            key
            for key in tasks
            if all(st.get("metric", "accuracy") == "accuracy" for st in summary[model][key].values())
        ]
        methods = _method_order({m for t in grouped[model].values() for m in t})
        kind = next((c.get("model_kind") for c in used if c["model"] == model), "?")
        lines += ["", f"## {model} ({kind})", ""]
        header = ["Method"]
        for key in tasks:
            name = table.tasks[key].name if key in table.tasks else key
            cells_t = [c for cs in grouped[model][key].values() for c in cs]
            mark = ""
            if any(c["test"] == DEV for c in cells_t):
                mark += DEV_MARK
            if any(c.get("test_subset") for c in cells_t):
                mark += SUBSET_MARK
            header.append(name + mark)
        header += [
            "Average" if len(accuracy_tasks) == len(tasks) else "Average (accuracy tasks)",
            "Trainable params",
            "Train s/cell",
            "Test s/cell",
        ]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for method in methods:
            row = [method]
            means = []
            for key in tasks:
                stats = summary[model][key].get(method)
                if stats is None:
                    row.append("–")
                    continue
                if key in accuracy_tasks:
                    means.append(stats["mean"])
                text = _fmt(stats["mean"], stats["std"])
                if stats["n_seeds"] < n_seeds_full:
                    text += f" [n={stats['n_seeds']}]"
                if len({_plan(c) for c in grouped[model][key][method]}) > 1:
                    text += MIXED_MARK
                row.append(text)
            avg = f"{sum(means) / len(means):.1f}" if means else "–"
            if means and len(means) < len(accuracy_tasks):
                avg += PARTIAL_MARK
            mcells = [c for key in tasks for c in grouped[model][key].get(method, [])]
            train = sum(c.get("train_time_s") or 0 for c in mcells) / max(len(mcells), 1)
            test = sum(c.get("eval_time_s") or 0 for c in mcells) / max(len(mcells), 1)
            row += [avg, _trainable(mcells), f"{train:.0f}", f"{test:.0f}"]
            lines.append("| " + " | ".join(row) + " |")
        lines.append(_best_on_dev_row(grouped[model], summary[model], tasks, accuracy_tasks, n_seeds_full))
        lines += [
            "",
            "Scored on: " + "; ".join(_scored_on(grouped[model][key], key, table) for key in tasks) + ".",
        ]
        reused = [
            c for cs in grouped[model].values() for m in cs.values() for c in m if c.get("reused_test_from")
        ]
        if reused:
            lines.append(
                f"zero-shot test predictions do not depend on the seed: computed once per task and reused by "
                f"{len(reused)} seed cell(s) (recorded as `reused_test_from`)."
            )
        lines.append(
            "Train s/cell includes every grid point tried and the dev evaluations during training; "
            "Test s/cell is test-set inference."
        )
        lines.append(
            f"*{BEST_ON_DEV}*: per task, the method with the highest mean dev score over the seeds (among "
            f"methods with all {n_seeds_full} seeds on the full test file), and its test mean (std): a choice "
            "made without the test set. Where the task is scored on dev (†) the same numbers chose it."
        )
        lines += _per_task_options(table, tasks, grouped[model], methods)
        lines += _targets_table(table, tasks, grouped[model], summary[model])
        lines += _paper_table(table, tasks)
    commands = sorted({c.get("command", "") for c in cells if c.get("command")})
    if commands:
        lines += ["", "## Commands that produced these cells", ""]
        lines += [f"- `{cmd}`" for cmd in commands[:20]]
        if len(commands) > 20:
            lines.append(f"- ... and {len(commands) - 20} more (see each cell's `command`)")
    lines += [
        "",
        f"Files: `{SUMMARY_FILE}` (numbers), `{PLOT_FILE}` (plot), `{FEWSHOT_DIR}/<model>/<task>/<method>/seed<seed>.json` (cells).",
        "",
    ]
    return "\n".join(lines)


def _best_on_dev_row(
    grouped: dict[str, Any],
    summary: dict[str, Any],
    tasks: list[str],
    accuracy_tasks: list[str],
    n_seeds: int,
) -> str:
    row, means = [f"*{BEST_ON_DEV}*"], []
    for key in tasks:
        method = best_on_dev(grouped[key], n_seeds)
        if method is None:
            row.append("–")
            continue
        stats = summary[key][method]
        row.append(f"{_fmt(stats['mean'], stats['std'])} {method}")
        if key in accuracy_tasks:
            means.append(stats["mean"])
    complete = means and len(means) == len(accuracy_tasks)
    avg = f"{sum(means) / len(means):.1f}" + ("" if complete else PARTIAL_MARK) if means else "–"
    return "| " + " | ".join(row + [avg, "", "", ""]) + " |"


def _trainable(cells: list[dict[str, Any]]) -> str:
    """Trainable parameters as cells recorded them (cells from before that was recorded: –)."""
    counts = {(c.get("info") or {}).get("trainable_parameters") for c in cells} - {None}
    if not counts:
        return "–"
    return " / ".join(_short_count(n) for n in sorted(counts))


def _short_count(n: int) -> str:
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def _scored_on(methods: dict[str, list[dict[str, Any]]], key: str, table: TaskTable) -> str:
    name = table.tasks[key].name if key in table.tasks else key
    tests = sorted({(c["test"], c["n_test"]) for cs in methods.values() for c in cs})
    parts = []
    for test, n in tests:
        parts.append(f"seed's dev split (n={n}){DEV_MARK}" if test == DEV else f"`{test}` (n={n})")
    return f"{name}: " + ", ".join(parts)


def _median_train_seconds(cells: list[dict[str, Any]]) -> float:
    # The median, so that one seed slowed by another job on the machine does not decide the target.
    return statistics.median(c.get("train_time_s") or 0 for c in cells) if cells else 0.0


OTHER_TESTS_MARK = "≠"  # a margin between methods scored on different test examples: no ✓/✗


def _test_sets(cells: list[dict[str, Any]]) -> set[tuple[Any, Any]]:
    return {(c.get("test"), c.get("n_test")) for c in cells}


def _check_target(target: dict[str, Any], method: str, task_cells: dict, task_stats: dict) -> str | None:
    """One table cell: the measured value and ✓/✗, or None when a method it needs has no cells."""
    mine, over = task_stats.get(method), task_stats.get(target.get("over"))
    if mine is None or (target.get("over") and over is None):
        return None
    if "min_margin" in target:
        diff = mine["mean"] - over["mean"]
        if _test_sets(task_cells[method]) != _test_sets(task_cells[target["over"]]):
            return f"{diff:+.1f} {OTHER_TESTS_MARK}"  # e.g. a --max-test subset against the full file
        return f"{diff:+.1f} {'✓' if diff >= target['min_margin'] else '✗'}"
    if "min_mean" in target:
        std = mine["std"] if mine["std"] is not None else 0.0
        ok = mine["mean"] >= target["min_mean"] and std <= target.get("max_std", float("inf"))
        return f"{_fmt(mine['mean'], mine['std'])} {'✓' if ok else '✗'}"
    base = _median_train_seconds(task_cells[target["over"]])
    ratio = _median_train_seconds(task_cells[method]) / base if base else float("inf")
    return f"{ratio:.1f}x {'✓' if ratio <= target['max_time_ratio'] else '✗'}"


def _describe_target(target: dict[str, Any]) -> str:
    if "min_margin" in target:
        return f"≥ {target['min_margin']:+g} points over {target['over']}"
    if "min_mean" in target:
        std = f", std ≤ {target['max_std']:g}" if "max_std" in target else ""
        return f"mean ≥ {target['min_mean']:g}{std}"
    return f"train time ≤ {target['max_time_ratio']:g}x {target['over']}'s"


def _targets_table(table: TaskTable, tasks: list[str], grouped: dict, summary: dict) -> list[str]:
    """The project's targets (tasks.yaml `targets:`) checked against this model's numbers: ✓ met, ✗ missed,
    – not measured yet (a method or task without cells)."""
    if not table.targets:
        return []
    columns = [k for k in tasks if any(k in t["tasks"] for t in table.targets)]
    names = [table.tasks[k].name if k in table.tasks else k for k in columns]
    lines = [
        "",
        "Targets (`targets:` in the task table): ✓ met, ✗ missed, – not measured yet, ≠ not decided (the two "
        "methods were scored on different test examples, e.g. one on a `--max-test` subset). Margins are "
        "differences of mean accuracy; time is the ratio of median train seconds per cell (dev evaluations "
        "included).",
        "",
        "| Target | Method | " + " | ".join(names) + " |",
        "|" + "---|" * (len(columns) + 2),
    ]
    for target in table.targets:
        if not any(key in target["tasks"] for key in columns):
            continue  # a target about tasks this model has no cells for
        for method in target["methods"]:
            row = [_describe_target(target), method]
            for key in columns:
                if key not in target["tasks"]:
                    row.append("")
                elif key not in grouped:
                    row.append("–")
                else:
                    row.append(_check_target(target, method, grouped[key], summary[key]) or "–")
            lines.append("| " + " | ".join(row) + " |")
    return lines


def _paper_table(table: TaskTable, tasks: list[str]) -> list[str]:
    paper = table.paper or {}
    names = paper.get("methods") or {}
    known = [k for k in tasks if k in table.tasks and table.tasks[k].paper]
    if not names or not known:
        return []
    lines = [
        "",
        f"**LM-BFF paper numbers, for reference only: {paper.get('model', 'RoBERTa-large')}, a different and "
        "larger model, as reported by the paper (not measured here).** "
        f"Source: {' '.join(str(paper.get('source', '')).split())}.",
        "",
    ]
    header = ["Method (paper)"] + [table.tasks[k].name for k in tasks] + ["Average"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for method, label in names.items():
        row = [f"{label} (≈ {method})"]
        means = []
        for key in tasks:
            value = table.tasks[key].paper.get(method) if key in table.tasks else None
            if value is None:
                row.append("–")
                continue
            means.append(value[0])
            row.append(_fmt(value[0], value[1]))
        avg = f"{sum(means) / len(means):.1f}" if means else "–"
        if means and len(means) < len(tasks):
            avg += PARTIAL_MARK
        lines.append("| " + " | ".join(row + [avg]) + " |")
    return lines


# ---------------------------------------------------------------------------------------------------------
# plot


def render_plot(grouped: dict[str, Any], summary: dict[str, Any], table: TaskTable, path: Path) -> None:
    """Accuracy per task and method (bars: mean over seeds; dots: each seed), one panel per model."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    models = sorted(grouped)
    n_tasks = max(len(grouped[m]) for m in models)
    fig = Figure(figsize=(max(6.0, 1.6 * n_tasks + 2.5), 3.6 * len(models)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(models), 1, squeeze=False)[:, 0]
    colors = [
        "#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C",
    ]  # fmt: skip
    for ax, model in zip(axes, models, strict=True):
        tasks = _task_order(table, set(grouped[model]))
        methods = _method_order({m for t in grouped[model].values() for m in t})
        width = 0.8 / max(len(methods), 1)
        for j, method in enumerate(methods):
            color = colors[j % len(colors)]
            xs, ys = [], []
            for i, key in enumerate(tasks):
                stats = summary[model][key].get(method)
                if stats is None:
                    continue
                x = i - 0.4 + width * (j + 0.5)
                xs.append(x)
                ys.append(stats["mean"])
                seeds = [100 * cell_score(c) for c in grouped[model][key][method]]
                ax.scatter([x] * len(seeds), seeds, s=10, color="black", zorder=3, linewidths=0)
            ax.bar(xs, ys, width=width * 0.95, color=color, label=method, alpha=0.85)
        labels = []
        for key in tasks:
            name = table.tasks[key].name if key in table.tasks else key
            tests = {c["test"] for cs in grouped[model][key].values() for c in cs}
            labels.append(name + (f"\n(dev{DEV_MARK})" if DEV in tests else ""))
        ax.set_xticks(range(len(tasks)), labels)
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{model}: mean over seeds (bars), each seed (dots)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(
            fontsize="small", ncols=min(len(methods), 6), loc="upper center", bbox_to_anchor=(0.5, -0.22)
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)


def load_summary(results_dir: str | Path = DEFAULT_RESULTS_DIR) -> dict[str, Any]:
    return json.loads((Path(results_dir) / SUMMARY_FILE).read_text())
