"""`promptft eval`, `predict` and `ensemble`: flags -> `promptft.recipes.evaluate` / `.predict` /
`.ensemble` -> output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from promptft.cli.app import (
    BatchOpt,
    DeviceOpt,
    FieldOpt,
    FormatOpt,
    HeaderOpt,
    LabelColumnOpt,
    LabelMapOpt,
    ProgressOpt,
    TextFieldOpt,
    app,
    columns,
    fmt,
    headline_metrics,
    print_result,
    show_progress,
)

EmptyOpt = Annotated[
    str,
    typer.Option(
        "--empty",
        metavar="keep|skip|error",
        help="Rows whose text is empty: keep them (with a warning), skip them (predict: their row stays, "
        "with an empty prediction), or stop with an error.",
    ),
]


@app.command("eval")
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="A saved classifier (a run's best/ folder, or the run).")],
    data: Annotated[str, typer.Option("--data", "-d", help="Labelled file to score.")],
    field: FieldOpt = None,
    text_field: TextFieldOpt = None,
    label_column: LabelColumnOpt = None,
    label_map: LabelMapOpt = None,
    header: HeaderOpt = None,
    data_format: FormatOpt = None,
    empty: EmptyOpt = "keep",
    batch_size: BatchOpt = 32,
    device: DeviceOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON on stdout.")] = False,
    progress: ProgressOpt = None,
) -> None:
    """Score a saved classifier on a labelled file: accuracy and macro-F1 (multi-label: macro/micro-F1, subset accuracy and, in --json, F1 per label; regression: Pearson, Spearman, MSE).

    Columns and the label map default to those of the job that trained the model (its job.yaml). The file is checked before the model loads.

    Example:

        promptft eval runs/sst2/best --data ../shared/data/SST-2/test.tsv --json
    """
    from promptft.recipes.evaluate import evaluate as run_evaluate

    metrics = run_evaluate(
        model_dir,
        data,
        columns=columns(field, text_field, label_column, label_map, header, data_format),
        empty=empty,
        batch_size=batch_size,
        device=device,
        progress=show_progress(progress),
    )
    if as_json:
        typer.echo(json.dumps(metrics))
        return
    table = Table(title=f"promptft eval: {data}", title_justify="left")
    shown = headline_metrics(metrics)  # per-label F1 (multi-label) is in --json
    for name, _ in shown:
        table.add_column(name, justify="right")
    table.add_column("examples", justify="right")
    table.add_row(*(fmt(value) for _, value in shown), str(metrics["n"]))
    print_result(table)


@app.command()
def predict(
    model_dir: Annotated[
        Path, typer.Argument(help="A saved classifier (a run's best/ folder, or the run), or an ONNX export.")
    ],
    input: Annotated[str, typer.Option("--input", "-i", help="File to classify (labels not needed).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Predictions file: .csv, .tsv or .jsonl.")],
    field: FieldOpt = None,
    text_field: TextFieldOpt = None,
    header: HeaderOpt = None,
    data_format: FormatOpt = None,
    empty: EmptyOpt = "keep",
    batch_size: BatchOpt = 32,
    device: DeviceOpt = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")] = False,
    progress: ProgressOpt = None,
    chunk_size: Annotated[
        int | None,
        typer.Option(
            "--chunk-size",
            min=1,
            help="Stream a large file this many rows at a time: constant memory, resumable after an "
            "interruption (rerun the same command), data-parallel under `accelerate launch`.",
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume/--restart", help="With --chunk-size: continue an interrupted run.")
    ] = True,
) -> None:
    """Classify a file: writes every input row with its columns (in order), the predicted label and prob_<label> for every label (multi-label: the predicted label set, comma-separated, and each label's own probability; regression: the predicted value).

    The prediction columns are `label` and `prob_<label>`; when the input already has a column of that name (e.g. its own `label`), they are named `pred_label`, `pred_prob_<label>`. One output row per input row, in order.

    Example:

        promptft predict runs/sst2/best --input reviews.csv --output predictions.jsonl

    MODEL_DIR may also be an exported ONNX folder or its model.onnx (run by onnxruntime on the CPU). A large file: add --chunk-size 4096; under `accelerate launch -m promptft predict ...` each process takes a share of every chunk.
    """
    from promptft.recipes.predict import predict as run_predict

    n = run_predict(
        model_dir,
        input,
        output,
        columns=columns(field, text_field, header=header, data_format=data_format),
        empty=empty,
        batch_size=batch_size,
        device=device,
        overwrite=overwrite,
        progress=show_progress(progress),
        chunk_size=chunk_size,
        resume=resume,
    )
    from promptft.training.distributed import is_main_process

    if is_main_process():
        Console(stderr=True).print(f"wrote {n} predictions to {output}", markup=False, highlight=False)


@app.command()
def ensemble(
    runs: Annotated[
        list[Path],
        typer.Argument(
            metavar="RUN...", help="Two or more trained single-label classifiers (run folders or saved ones)."
        ),
    ],
    dev: Annotated[
        str, typer.Option("--dev", "-d", help="Labelled dev file: scores and weights the members.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to save the ensemble in.")],
    names: Annotated[
        str | None,
        typer.Option("--names", metavar="A,B,...", help="Member names (folder names; default: the runs')."),
    ] = None,
    weighting: Annotated[
        str,
        typer.Option(
            "--weighting",
            metavar="dev|uniform",
            help="Weight each member by its dev score (PET's weighting) or equally.",
        ),
    ] = "dev",
    combine: Annotated[
        str,
        typer.Option(
            "--combine",
            metavar="logits|probabilities",
            help="Average the members' label log-probabilities (PET's) or their probabilities.",
        ),
    ] = "logits",
    field: FieldOpt = None,
    text_field: TextFieldOpt = None,
    label_column: LabelColumnOpt = None,
    label_map: LabelMapOpt = None,
    header: HeaderOpt = None,
    data_format: FormatOpt = None,
    batch_size: BatchOpt = 32,
    device: DeviceOpt = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a saved classifier in --output.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    progress: ProgressOpt = None,
) -> None:
    """Combine trained classifiers into one that votes: each is scored on --dev and weighted by its dev score, their label log-probabilities averaged (PET); the ensemble is scored on --dev too and saved to --output (plus ensemble.json), a folder that eval, predict, serve and distill take.

    Members must share one label set; they may differ in everything else (template, label words, adapter, demonstrations, base model). Columns and the label map default to those of the job that trained the first member. A note says when the best member alone scores as high on dev as the vote.

    On SST-2 (SmolLM2, 5 seeds) the LoRA, (IA)3 and demonstrations models of each split voting scored 86.4 against 86.0 for demonstrations alone (benchmarks/results/fewshot.md, method_ensemble).

    Example:

        promptft ensemble runs/sst2-lora runs/sst2-ia3 runs/sst2-demos --dev dev.tsv --output runs/sst2-vote
    """
    from promptft.recipes.ensemble import build_ensemble

    console = Console(stderr=True)
    with console.status("ensemble") as status:
        result = build_ensemble(
            runs,
            dev,
            output,
            names=names.split(",") if names is not None else None,
            weighting=weighting,
            combine=combine,
            columns=columns(field, text_field, label_column, label_map, header, data_format),
            batch_size=batch_size,
            device=device,
            overwrite=overwrite,
            progress=show_progress(progress),
            on_progress=status.update,
        )
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
        return
    metric = result.metric
    table = Table(title=f"promptft ensemble: {result.folder}", title_justify="left")
    for name in ("member", f"dev {metric}", "macro-F1", "weight"):
        table.add_column(name, justify="left" if name == "member" else "right")
    for m in result.members:
        table.add_row(m["name"], fmt(m["dev"][metric]), fmt(m["dev"].get("macro_f1")), f"{m['weight']:.3f}")
    table.add_row("ensemble", fmt(result.dev[metric]), fmt(result.dev.get("macro_f1")), "")
    print_result(table)
    if not result.beats_best_member:
        best = next(m for m in result.members if m["name"] == result.best_member)
        console.print(
            f"note: {result.best_member} alone scores {fmt(best['dev'][metric])} dev {metric}, the ensemble "
            f"{fmt(result.dev[metric])}: on this dev file the vote does not help, and the single model costs "
            f"1/{len(result.members)} as much to run",
            style="yellow",
            markup=False,
            highlight=False,
        )
