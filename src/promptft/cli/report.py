"""`promptft report` and `promptft learning-curve`: flags -> `promptft.recipes.report` / `.learning_curve`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from promptft.cli.app import DeviceOpt, LabelColumnOpt, LabelMapOpt, TextFieldOpt, app, columns


def _ints(text: str, flag: str) -> list[int]:
    from promptft.errors import ConfigError

    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"{flag} takes comma-separated whole numbers, e.g. 4,8,16,32; got {text!r}"
        ) from None


@app.command("report")
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (or its best/) written by `promptft train`.")],
    data: Annotated[
        str | None,
        typer.Option("--data", help="Labelled file for the evaluation section (e.g. the test set)."),
    ] = None,
    text_field: TextFieldOpt = None,
    label_column: LabelColumnOpt = None,
    label_map: LabelMapOpt = None,
    fairness: Annotated[
        Path | None, typer.Option("--fairness", help="A fairness folder (default: RUN/fairness, if present).")
    ] = None,
    learning_curve: Annotated[
        Path | None, typer.Option("--learning-curve", help="A `promptft learning-curve` output folder.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Folder for report.html and report.md (default: RUN/report)."),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    device: DeviceOpt = None,
) -> None:
    """One self-contained HTML page (plots embedded) plus a markdown summary for a run: set-up and metrics,
    the evaluation report on --data (per-class P/R/F1, confusion matrix, reliability diagram, confident
    mistakes), the fitting diagnosis and learning curves, and the fairness audit when one was run.

    Example: promptft report runs/sst2 --data ../shared/data/SST-2/test.tsv --label-map 0=negative,1=positive
    """
    from promptft.recipes.report import build_report

    html_path, md_path = build_report(
        run_dir,
        data=data,
        columns=columns(None, text_field, label_column, label_map),
        output=output,
        fairness_dir=fairness,
        learning_curve_dir=learning_curve,
        batch_size=batch_size,
        device=device,
    )
    typer.echo(f"report: {html_path}\nsummary: {md_path}")


@app.command("learning-curve")
def learning_curve_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the cells, json and png.")],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="A job YAML file (as for train).")
    ] = None,
    pool: Annotated[
        str | None,
        typer.Option("--pool", help="File to sample K per class from (default: the job's train file)."),
    ] = None,
    eval_file: Annotated[
        str | None,
        typer.Option("--eval", help="Held-out labelled file to score (default: the job's test file)."),
    ] = None,
    k: Annotated[str, typer.Option("--k", help="Examples per class, comma-separated.")] = "4,8,16,32",
    seeds: Annotated[
        str, typer.Option("--seeds", help="Seeds, comma-separated (one sample per seed).")
    ] = "13,21,42",
    dev_k: Annotated[
        int | None, typer.Option("--dev-k", min=0, help="Dev examples per class for selection (default: K).")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model alias or folder.")] = None,
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Training steps per cell.")] = None,
    text_field: TextFieldOpt = None,
    label_column: LabelColumnOpt = None,
    label_map: LabelMapOpt = None,
    template: Annotated[str | None, typer.Option("--template")] = None,
    label_words: Annotated[str | None, typer.Option("--label-words", metavar="LABEL=WORD,...")] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", metavar="KEY=VALUE", help="Any job field, as for train."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Train a job at K = 4, 8, 16, 32 examples per class for several seeds and plot the metric against K,
    with the spread over seeds. Each cell is saved when it finishes: run the same command again to resume.

    Example: promptft learning-curve --config examples/sst2_prompt_lora.yaml --pool ../shared/data/SST-2/train.tsv --k 4,8,16,32 --seeds 13,21,42 --output runs/sst2-curve
    """
    from promptft.cli.values import parse_label_words
    from promptft.config import load_job
    from promptft.prompts.template import unescape_template
    from promptft.recipes.learning_curve import learning_curve

    given = {
        **{f"data.{key}": value for key, value in columns(None, text_field, label_column, label_map).items()},
        "model.name": model,
        "train.max_steps": steps,
        "prompt.template": None if template is None else unescape_template(template),
        "prompt.label_words": parse_label_words([label_words]) if label_words else None,
    }
    job = load_job(config, {key: v for key, v in given.items() if v is not None}, sets or ())

    def show(cell, cached):
        first = next(m for m in cell["eval"] if m != "n")
        state = "done before" if cached else f"{cell['train_time_s']:.0f} s"
        typer.echo(
            f"K={cell['k']:<3} seed={cell['seed']:<4} {first} {cell['eval'][first]:.4f} ({state})", err=True
        )

    curve = learning_curve(
        job,
        output=output,
        pool=pool,
        eval_data=eval_file,
        ks=_ints(k, "--k"),
        seeds=_ints(seeds, "--seeds"),
        dev_k=dev_k,
        on_cell=show,
        command="promptft " + " ".join(sys.argv[1:]),
    )
    typer.echo(json.dumps(curve.to_dict(), indent=2) if as_json else curve.render_text())
    if not as_json:
        typer.echo(f"plot: {curve.plot}")
