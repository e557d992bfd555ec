"""The report recipe: one self-contained HTML page (plots embedded) and a markdown summary for a run.

    from promptft.recipes.report import build_report
    html_path, md_path = build_report("runs/sst2", data="../shared/data/SST-2/test.tsv")

Gathers what is known about the run: its set-up and final metrics, the evaluation report on `data` (per-class
precision/recall/F1, confusion matrix, reliability diagram with ECE, the most confident mistakes; needs the
model and a labelled file), the fitting diagnosis and learning curves (from metrics.jsonl), the fairness audit
(`<run>/fairness/fairness.json`, written by `promptft fairness`) and a learning curve over K when given.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from promptft.errors import DataError, ModelError
from promptft.evaluation.html import Section, render_page
from promptft.recipes.fairness import FAIRNESS_DIR, RESULT_FILE

REPORT_DIR = "report"
HTML_FILE = "report.html"
MARKDOWN_FILE = "report.md"


def _run_folder(run_dir: str | Path) -> tuple[Path, Path]:
    """(run folder, classifier folder) for a run folder or its best/; an error for any other folder (the
    report would otherwise be an empty page written into it)."""
    from promptft.classifiers import CONFIG_FILE
    from promptft.recipes.run_dir import classifier_dir

    model = classifier_dir(run_dir)
    if not (model / CONFIG_FILE).is_file():
        raise ModelError(
            f"{run_dir} is not a run folder (no {CONFIG_FILE} in it or in its best/): point at a folder "
            "written by `promptft train` or `promptft pet`"
        )
    run = model.parent if model.name == "best" else model
    return run, model


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def overview_section(run: Path, model: Path) -> Section:
    config = _read_json(model / "promptft_config.json") or {}
    lines = ["| setting | value |", "|---|---|", f"| run folder | `{run}` |"]
    for key, name in (("base_model", "model"), ("type", "classifier"), ("template", "template"),
                      ("label_words", "label words"), ("finetune", "fine-tuning")):  # fmt: skip
        if key in config:
            value = config[key]
            text = json.dumps(value) if not isinstance(value, str) else value.replace("\n", "\\n")
            lines.append(f"| {name} | `{text}` |")
    train = _read_json(run / "train_config.json")
    if train:
        keys = ("learning_rate", "batch_size", "max_steps", "eval_every", "seed")
        lines.append("| training | " + ", ".join(f"{k} {train[k]}" for k in keys if k in train) + " |")
    final = _read_json(run / "final_metrics.json")
    if final:
        dev = final.get("best_dev") or {}
        shown = ", ".join(f"{k} {v:.4f}" for k, v in dev.items() if k != "n" and isinstance(v, float))
        lines.append(f"| best dev (step {final.get('best_step')}) | {shown} |")
        lines.append(f"| train time | {final.get('train_time_s')} s, {final.get('steps')} steps |")
    test = _read_json(run / "test_metrics.json")
    if test:
        for name, metrics in (
            test.items() if all(isinstance(v, dict) for v in test.values()) else [("test", test)]
        ):
            shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "n" and isinstance(v, float))
            lines.append(f"| {name} (recorded) | {shown} (n={metrics.get('n')}) |")
    return Section("Overview", "\n".join(lines))


def evaluation_section(
    model: Path,
    data: str | Path | None,
    columns: Mapping[str, Any] | None,
    batch_size: int,
    device: str | None,
    figures: Path,
) -> tuple[Section, dict[str, Any] | None]:
    if data is None:
        return Section("Evaluation", "No labelled data given: run `promptft report RUN --data FILE` for per-class "
                       "metrics, the confusion matrix, calibration and the most confident mistakes."), None  # fmt: skip
    from promptft.data.splits import read_split_rows
    from promptft.evaluation.report import evaluation_report
    from promptft.recipes.evaluate import check_known_labels, load, prepare, require_file

    require_file(data)
    folder, saved, spec = prepare(model, device, **dict(columns or {}))
    if saved.get("task") is not None and saved["task"].type != "single_label":
        return Section("Evaluation", f"The evaluation report covers single-label classifiers; this one is "
                       f"{saved['task'].type}: see `promptft eval`."), None  # fmt: skip
    rows = read_split_rows(data, spec.reader_options())
    if not rows:
        raise DataError(f"{data} holds no rows: check the file and its label column")
    check_known_labels(rows, saved["labels"], data)
    clf = load(folder, device)
    examples = [row.example for row in rows]
    probs = clf.predict_proba(examples, batch_size)
    report = evaluation_report([ex.label for ex in examples], probs, clf.labels, examples=examples)
    plots = report.save_plots(figures)
    images = [("confusion matrix", plots["confusion"])]
    if "reliability" in plots:
        images.append(("reliability diagram", plots["reliability"]))
    text = f"On `{data}` ({len(examples)} rows).\n\n" + report.render_markdown()
    return Section("Evaluation", text, images), report.to_dict()


def fitting_section(run: Path, figures: Path) -> tuple[Section, dict[str, Any] | None]:
    from promptft.evaluation.fitting import diagnose_fitting, plot_fitting

    if not (run / "metrics.jsonl").is_file():
        return Section(
            "Fitting", "No metrics.jsonl in the run: nothing to diagnose (a zero-shot run?)."
        ), None
    try:
        diagnosis = diagnose_fitting(run)
        plot = plot_fitting(run, figures / "learning_curves.png")
    except DataError as err:
        return Section("Fitting", f"Could not diagnose the run: {err}"), None
    level = "ok" if diagnosis.verdict == "healthy" else ("warn" if "short" in diagnosis.verdict else "bad")
    lines = [f"Verdict: **{diagnosis.verdict}** (dev {diagnosis.metric}: best "
             + ("-" if diagnosis.best_value is None else f"{diagnosis.best_value:.4f} at step {diagnosis.best_step}")
             + f", {diagnosis.n_evals} evaluations)", ""]  # fmt: skip
    lines += [f"* [{e.kind}] {e.message}" for e in diagnosis.evidence]
    if diagnosis.suggestions:
        lines += ["", "What to try:", ""] + [f"* {s}" for s in diagnosis.suggestions]
    return Section(
        "Fitting", "\n".join(lines), [("learning curves", plot)], (diagnosis.verdict, level)
    ), diagnosis.to_dict()


def fairness_section(run: Path, fairness_dir: Path | None) -> tuple[Section | None, dict[str, Any] | None]:
    folder = fairness_dir or run / FAIRNESS_DIR
    result = _read_json(folder / RESULT_FILE)
    if result is None:
        return Section("Fairness", f"No fairness audit in `{folder}`: run `promptft fairness {run} --data FILE "
                       "--probe` to add one."), None  # fmt: skip
    from promptft.recipes.fairness import FairnessResult

    summary = FairnessResult.from_dict(result).render_markdown()  # rendered again: the current layout
    summary = summary.split("\n", 1)[1] if summary.startswith("# ") else summary  # the page has its own title
    flagged = result.get("flagged") or []
    badge = (f"flagged: {', '.join(flagged)}", "bad") if flagged else ("nothing flagged", "ok")
    return Section("Fairness", summary, badge=badge), result


def curve_section(curve_dir: Path | None) -> Section | None:
    if curve_dir is None:
        return None
    from promptft.recipes.learning_curve import CURVE_FILE, PLOT_FILE

    curve = _read_json(Path(curve_dir) / CURVE_FILE)
    if curve is None:
        raise DataError(f"no {CURVE_FILE} in {curve_dir}: run `promptft learning-curve` first")
    lines = [f"| K | seeds | mean {curve['metric']} | std | min | max |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['k']} | {r['n']} | {r['mean']:.4f} | {r['std']:.4f} | {r['min']:.4f} | {r['max']:.4f} |"
              for r in curve["summary"]]  # fmt: skip
    return Section(
        "Learning curve over K", "\n".join(lines), [("accuracy against K", Path(curve_dir) / PLOT_FILE)]
    )


def build_report(
    run_dir: str | Path,
    *,
    data: str | Path | None = None,
    columns: Mapping[str, Any] | None = None,
    output: str | Path | None = None,
    fairness_dir: str | Path | None = None,
    learning_curve_dir: str | Path | None = None,
    batch_size: int = 32,
    device: str | None = None,
) -> tuple[Path, Path]:
    """Write `report.html` (self-contained) and `report.md` into `output` (default `<run>/report`)."""
    run, model = _run_folder(run_dir)
    out = Path(output) if output else run / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        figures = Path(tmp)
        sections = [overview_section(run, model)]
        evaluation, _ = evaluation_section(model, data, columns, batch_size, device, figures)
        fitting, _ = fitting_section(run, figures)
        fairness, _ = fairness_section(run, Path(fairness_dir) if fairness_dir else None)
        curve = curve_section(Path(learning_curve_dir) if learning_curve_dir else None)
        sections += [s for s in (evaluation, fitting, fairness, curve) if s is not None]
        page = render_page(f"promptft report: {run.name}", f"{run}", sections)
    html_path, md_path = out / HTML_FILE, out / MARKDOWN_FILE
    html_path.write_text(page, encoding="utf-8")
    md = [f"# promptft report: {run.name}", ""]
    for s in sections:
        badge = f" ({s.badge[0]})" if s.badge else ""
        md += [f"## {s.title}{badge}", "", s.markdown.strip(), ""]
        if s.images:
            md += [f"_Plots ({', '.join(c for c, _ in s.images)}) are embedded in {HTML_FILE}._", ""]
    md_path.write_text("\n".join(md), encoding="utf-8")
    return html_path, md_path
