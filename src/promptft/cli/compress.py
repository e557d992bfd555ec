"""`promptft distill` and `promptft prune`: flags -> `promptft.recipes.distill` / `.prune` -> a summary."""

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
from promptft.cli.values import parse_pairs

SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        metavar="KEY=VALUE",
        help="Any training option by name (a `train:` field, value read as YAML), e.g. --set warmup_ratio=0.1.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")]


def _train_config(defaults: dict, sets: list[str] | None, **given):
    """A TrainConfig: the command's defaults, then the flags given, then --set (values read as YAML)."""
    import yaml

    from promptft.config import TrainConfig

    values = {**defaults, **{k: v for k, v in given.items() if v is not None}}
    for key, raw in parse_pairs(sets or [], "--set", "warmup_ratio=0.1").items():
        values[key.removeprefix("train.")] = yaml.safe_load(raw)
    return TrainConfig.parse(values, "train")


def _beside(run_dir: Path, suffix: str) -> Path:
    """The default output folder: next to the run (a run's best/ counts as the run)."""
    run = run_dir.parent if run_dir.name == "best" else run_dir
    return run.with_name(run.name + suffix)


def _print_summary(title: str, rows: list[tuple[str, str]]) -> None:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("")
    table.add_column("", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    print_result(table)


@app.command()
def distill(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(help="The teacher: a run folder or saved classifier; several = an ensemble."),
    ],
    unlabeled: Annotated[
        str,
        typer.Option("--unlabeled", "-u", help="Unlabelled texts to label with the teacher (csv/tsv/jsonl)."),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Folder for the soft labels and the student (default RUN_DIR-student)."
        ),
    ] = None,
    student: Annotated[
        str,
        typer.Option("--student", help="The student: an alias (see `promptft models`), folder or hub id."),
    ] = "minilm-l6",
    temperature: Annotated[
        float, typer.Option("--temperature", "-T", min=0.01, help="Softens teacher and student (KL at T).")
    ] = 2.0,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Label a random sample of this many pool texts.")
    ] = None,
    dev: Annotated[
        str | None,
        typer.Option(
            "--dev", help="Gold-labelled dev file to pick the student's best step (default: a pool share)."
        ),
    ] = None,
    dev_fraction: Annotated[
        float,
        typer.Option("--dev-fraction", help="Share of the pool held out as dev when there is no --dev."),
    ] = 0.1,
    test: Annotated[
        str | None, typer.Option("--test", help="Labelled file: the student is scored on it.")
    ] = None,
    steps: Annotated[
        int | None, typer.Option("--steps", min=1, help="Student training steps (default 300).")
    ] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Student learning rate (default 1e-4).")] = None,
    train_batch: Annotated[
        int | None, typer.Option("--train-batch-size", min=1, help="Student batch size (default 32).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed: pool sample, dev share, training.")
    ] = None,
    sets: SetOpt = None,
    max_length: Annotated[int, typer.Option("--max-length", min=8, help="Student's max tokens.")] = 128,
    field: FieldOpt = None,
    text_field: TextFieldOpt = None,
    label_column: LabelColumnOpt = None,
    label_map: LabelMapOpt = None,
    header: HeaderOpt = None,
    data_format: FormatOpt = None,
    batch_size: BatchOpt = 32,
    device: DeviceOpt = None,
    as_json: JsonOpt = False,
    progress: ProgressOpt = None,
) -> None:
    """Distil a prompt model into a small student: label an unlabelled pool with the teacher's soft labels (averaged over several runs for an ensemble) and train the student (default the offline all-MiniLM-L6-v2 encoder with a new head) with temperature-scaled KL through the usual trainer.

    The student is a normal classifier in OUTPUT/student/best (promptft eval, predict). Labelling resumes after an interruption (OUTPUT/soft_labels.jsonl). Columns and the label map default to the teacher's job.

    Example:

        promptft distill runs/sst2 --unlabeled ../shared/data/SST-2/train.tsv --limit 3000 --output runs/sst2-student
    """
    from promptft.recipes.distill import distill as run_distill

    cfg = _train_config(
        {"learning_rate": 1e-4, "batch_size": 32, "max_steps": 300, "eval_every": 50},
        sets,
        learning_rate=lr,
        max_steps=steps,
        batch_size=train_batch,
        seed=seed,
        progress=show_progress(progress),
    )
    summary = run_distill(
        run_dirs,
        unlabeled,
        output or _beside(run_dirs[0], "-student"),
        student=student,
        temperature=temperature,
        train=cfg,
        columns=columns(field, text_field, label_column, label_map, header, data_format),
        dev=dev,
        dev_fraction=dev_fraction,
        test=test,
        limit=limit,
        max_length=max_length,
        batch_size=batch_size,
        device=device,
        progress=show_progress(progress),
    )
    if as_json:
        typer.echo(json.dumps(summary))
        return
    rows = [
        ("student", f"{summary['student']} -> {summary['student_dir']}"),
        ("pool labelled", f"{summary['pool_size']} ({summary['labelling_s']} s)"),
        ("best step", str(summary["best_step"])),
    ]
    rows += [(f"dev {name}", fmt(v)) for name, v in headline_metrics(summary["best_dev"] or {})]
    rows += [(f"test {name}", fmt(v)) for name, v in headline_metrics(summary.get("test") or {})]
    _print_summary("promptft distill", rows)
    Console(stderr=True).print(f"student saved in {summary['student_dir']}", markup=False, highlight=False)


@app.command()
def prune(
    run_dir: Annotated[
        Path, typer.Argument(help="A trained classifier: a run folder or a saved classifier.")
    ],
    dev: Annotated[
        str, typer.Option("--dev", help="Labelled dev file: importance, and the recovery's best step.")
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Folder for the pruned model, a run folder (default RUN_DIR-prunedNN)."
        ),
    ] = None,
    sparsity: Annotated[
        float,
        typer.Option("--sparsity", min=0.0, max=0.99, help="Share of MLP neurons removed in every layer."),
    ] = 0.3,
    head_sparsity: Annotated[
        float | None,
        typer.Option(
            "--head-sparsity",
            min=0.0,
            max=0.99,
            help="Share of attention heads removed (default: --sparsity).",
        ),
    ] = None,
    train_file: Annotated[
        str | None, typer.Option("--train", help="Labelled file for the recovery fine-tune.")
    ] = None,
    soft_labels: Annotated[
        str | None,
        typer.Option(
            "--soft-labels", help="Recover on a distillation's soft labels (a `promptft distill` folder)."
        ),
    ] = None,
    soft_limit: Annotated[
        int | None, typer.Option("--soft-limit", min=1, help="Use only the first N soft-labelled texts.")
    ] = None,
    temperature: Annotated[
        float, typer.Option("--temperature", "-T", min=0.01, help="For --soft-labels.")
    ] = 2.0,
    recover: Annotated[
        bool, typer.Option("--recover/--no-recover", help="Run the short recovery fine-tune (default).")
    ] = True,
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Recovery steps (default 40).")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Recovery learning rate (default 2e-5).")] = None,
    test: Annotated[
        str | None, typer.Option("--test", help="Labelled file: the pruned model is scored on it.")
    ] = None,
    sets: SetOpt = None,
    field: FieldOpt = None,
    text_field: TextFieldOpt = None,
    label_column: LabelColumnOpt = None,
    label_map: LabelMapOpt = None,
    header: HeaderOpt = None,
    data_format: FormatOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Examples per importance pass.")] = 8,
    device: DeviceOpt = None,
    as_json: JsonOpt = False,
    progress: ProgressOpt = None,
) -> None:
    """Prune a trained classifier: remove the least important MLP neurons and attention heads of every layer (first-order Taylor importance on --dev), then fine-tune briefly to recover. The saved model is smaller on disk and faster (fewer weights, an updated config), not masked.

    Llama-style decoders (SmolLM2, ...) lose heads and neurons (grouped-query attention: the same number of query heads from every key/value group); BERT-style encoders lose MLP neurons only.

    Example:

        promptft prune runs/sst2 --dev dev.tsv --train train.tsv --sparsity 0.3 --label-map 0=negative,1=positive --output runs/sst2-pruned30
    """
    from promptft.recipes.prune import default_recovery
    from promptft.recipes.prune import prune as run_prune

    given = {k: v for k, v in {"learning_rate": lr, "max_steps": steps}.items() if v is not None}
    base = default_recovery(**given).to_dict()
    cfg = _train_config(base, sets, progress=show_progress(progress))
    summary = run_prune(
        run_dir,
        output or _beside(run_dir, f"-pruned{round(100 * sparsity)}"),
        dev=dev,
        sparsity=sparsity,
        head_sparsity=head_sparsity,
        train=train_file,
        soft_labels=soft_labels,
        temperature=temperature,
        soft_limit=soft_limit,
        recovery=cfg,
        recover=recover,
        test=test,
        columns=columns(field, text_field, label_column, label_map, header, data_format),
        batch_size=batch_size,
        device=device,
        progress=show_progress(progress),
    )
    if as_json:
        typer.echo(json.dumps(summary))
        return
    report = summary["prune"]
    before, after = report["parameters"]
    rows = [
        ("intermediate size", "{} -> {}".format(*report["intermediate_size"])),
        (
            "attention heads",
            "{} -> {}".format(*report["attention_heads"]) if report["attention_heads"] else "kept",
        ),
        ("parameters", f"{before:,} -> {after:,} ({100 * report['parameter_share_removed']:.1f}% removed)"),
    ]
    rows += [(f"dev {n} after pruning", fmt(v)) for n, v in headline_metrics(summary["dev_after_pruning"])]
    recovery = summary.get("recovery") or {}
    rows += [(f"dev {n} after recovery", fmt(v)) for n, v in headline_metrics(recovery.get("best_dev") or {})]
    rows += [(f"test {n}", fmt(v)) for n, v in headline_metrics(summary.get("test") or {})]
    _print_summary("promptft prune", rows)
    for note in report["notes"]:
        Console(stderr=True).print(f"note: {note}", markup=False, highlight=False)
    Console(stderr=True).print(f"pruned model saved in {summary['model_dir']}", markup=False, highlight=False)
