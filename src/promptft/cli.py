"""The `promptft` command line: a thin face over `promptft.config` and the library.

Every `train` flag sets one field of a `JobConfig` (see `promptft.config`); a flag given on the command line
wins over the `--config` YAML file. Errors a user can fix (`PromptFTError`) print as `error: ...` with exit
code 2 and no traceback. Progress and logs go to stderr; tables and `--json` output to stdout.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from promptft.bench.commands import register
from promptft.errors import DataError, PromptFTError


class _Group(TyperGroup):
    """Turns a PromptFTError raised by any command into `error: <message>` and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PromptFTError as err:
            Console(stderr=True).print(
                f"error: {err}", style="red", markup=False, highlight=False, soft_wrap=True
            )
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_Group,
    name="promptft",
    no_args_is_help=True,
    rich_markup_mode="rich",
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        from promptft import __version__

        typer.echo(f"promptft {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Prompt-based fine-tuning of language models: few-shot classifiers through templates and label words.

    Example (from the repository root): promptft train --config examples/sst2_prompt_lora.yaml

    Then: promptft eval runs/sst2_prompt_lora --data ../shared/data/SST-2/test.tsv
    """
    import rich

    rich.reconfigure(stderr=True)  # progress bars drawn on rich's default console go to stderr
    _quiet_libraries()
    logger = logging.getLogger("promptft")
    if not any(getattr(h, "_promptft_cli", False) for h in logger.handlers):
        from rich.logging import RichHandler

        handler = RichHandler(console=Console(stderr=True), show_time=False, show_path=False)
        handler._promptft_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _quiet_libraries() -> None:
    """Keep library chatter off every command's output: transformers' "Loading weights" bar (one per model
    load) and a FutureWarning between peft and transformers that a CLI user cannot act on. Set through
    environment variables, so that transformers is not imported for `--help`."""
    import os
    import sys
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if "transformers" in sys.modules:  # already imported (tests, a Python caller): the env came too late
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    # peft asks the model for `is_gradient_checkpointing`, which transformers 5 deprecates
    warnings.filterwarnings(
        "ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning
    )


# ---------------------------------------------------------------------------------------------------------
# options shared by several commands

FieldOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--field",
        "-f",
        metavar="NAME=COLUMN",
        help="Template field -> column name or 0-based index; repeat or comma-separate. "
        "E.g. --field premise=sentence1 --field hypothesis=sentence2.",
    ),
]
TextFieldOpt = Annotated[
    str | None, typer.Option("--text-field", metavar="COLUMN", help="Shortcut for --field text=COLUMN.")
]
LabelColumnOpt = Annotated[
    str | None, typer.Option("--label-column", metavar="COLUMN", help="Label column name or 0-based index.")
]
LabelMapOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--label-map", metavar="RAW=NAME", help="Raw label -> label name, e.g. '0=negative,1=positive'."
    ),
]
HeaderOpt = Annotated[
    bool | None,
    typer.Option(
        "--header/--no-header", help="Whether csv/tsv files start with a header row (default: guess)."
    ),
]
FormatOpt = Annotated[
    Literal["csv", "tsv", "jsonl", "json"] | None,
    typer.Option("--format", help="Data file format (default: from the suffix)."),
]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available).")
]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Examples per forward pass.")]
ProgressOpt = Annotated[
    bool | None,
    typer.Option("--progress/--no-progress", help="Show progress bars on stderr (default: when a terminal)."),
]


def _fields(field: list[str] | None, text_field: str | None) -> dict[str, str | int] | None:
    from promptft.config import parse_column, parse_fields

    if not field and text_field is None:
        return None
    fields = parse_fields(field or [])
    if text_field is not None:
        fields["text"] = parse_column(text_field)
    return fields


def _label_map(items: list[str] | None) -> dict[str, str] | None:
    from promptft.config import parse_pairs

    return parse_pairs(items, "label map", "'0=negative,1=positive'") if items else None


def _show_progress(flag: bool | None) -> bool:
    import sys

    return flag if flag is not None else sys.stderr.isatty()


def _require_file(path: str | Path) -> None:
    """Fail on a missing data file before a model is loaded."""
    if not Path(path).exists():
        raise DataError(f"data file not found: {path} (looked at {Path(path).resolve()}): check the path")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


# ---------------------------------------------------------------------------------------------------------
# train


@app.command()
def train(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="A job YAML file; flags given here override it.")
    ] = None,
    train_file: Annotated[
        str | None, typer.Option("--train", help="Training file (csv/tsv/jsonl/json).")
    ] = None,
    dev: Annotated[str | None, typer.Option("--dev", help="Dev file: selects the best step.")] = None,
    test: Annotated[
        str | None, typer.Option("--test", help="Test file: the best model is scored on it.")
    ] = None,
    field: FieldOpt = None,
    text_field: TextFieldOpt = None,
    label_column: LabelColumnOpt = None,
    label_map: LabelMapOpt = None,
    header: HeaderOpt = None,
    data_format: FormatOpt = None,
    template: Annotated[
        str | None,
        typer.Option(
            "--template",
            "-t",
            help="Template with fields and one {mask} slot; \\n is a newline, \\t a tab, {{ }} literal braces.",
        ),
    ] = None,
    label_words: Annotated[
        list[str] | None,
        typer.Option(
            "--label-words",
            "-w",
            metavar="LABEL=WORD",
            help="Label -> word(s); repeat or comma-separate, several words as a|b: "
            "'negative=terrible,positive=great|good'.",
        ),
    ] = None,
    token_reduction: Annotated[
        Literal["sum", "mean"] | None,
        typer.Option("--token-reduction", help="Score of a multi-token word: sum or mean of its tokens."),
    ] = None,
    word_reduction: Annotated[
        Literal["logsumexp", "mean"] | None,
        typer.Option("--word-reduction", help="Score of a label with several words."),
    ] = None,
    max_length: Annotated[int | None, typer.Option("--max-length", help="Longest input in tokens.")] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Offline alias, local model folder or hub id.")
    ] = None,
    kind: Annotated[
        Literal["causal", "masked", "seq2seq"] | None,
        typer.Option("--kind", help="Backbone kind (default: detected)."),
    ] = None,
    method: Annotated[
        Literal["prompt", "head"] | None,
        typer.Option("--method", help="prompt, or head: standard fine-tuning with a new head (baseline)."),
    ] = None,
    finetune: Annotated[
        Literal["full", "lora", "none"] | None,
        typer.Option("--finetune", help="Train all weights, LoRA adapters, or none (zero-shot)."),
    ] = None,
    lora_r: Annotated[int | None, typer.Option("--lora-r", help="LoRA rank.")] = None,
    lora_alpha: Annotated[int | None, typer.Option("--lora-alpha", help="LoRA alpha.")] = None,
    lora_dropout: Annotated[float | None, typer.Option("--lora-dropout", help="LoRA dropout.")] = None,
    lora_top_layers: Annotated[
        int | None, typer.Option("--lora-top-layers", help="Adapt only the top N layers (default: all).")
    ] = None,
    device: DeviceOpt = None,
    lr: Annotated[
        float | None,
        typer.Option("--lr", help="Learning rate (default: 3e-4 with --finetune lora, 1e-5 for full)."),
    ] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Optimizer steps.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Training batch size.")] = None,
    grad_accum: Annotated[int | None, typer.Option("--grad-accum", help="Gradient accumulation.")] = None,
    warmup_ratio: Annotated[float | None, typer.Option("--warmup-ratio", help="Warm-up fraction.")] = None,
    weight_decay: Annotated[float | None, typer.Option("--weight-decay", help="AdamW weight decay.")] = None,
    eval_every: Annotated[
        int | None, typer.Option("--eval-every", help="Steps between dev evaluations.")
    ] = None,
    eval_batch_size: Annotated[
        int | None, typer.Option("--eval-batch-size", help="Batch size for evaluation.")
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option(
            "--patience", help="Stop after this many evaluations without gain; 0 = never stop early."
        ),
    ] = None,
    metric: Annotated[
        Literal["accuracy", "macro_f1"] | None,
        typer.Option("--metric", help="Dev metric that picks the best."),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed.")] = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Run folder; an interrupted run there resumes.")
    ] = None,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Show the training progress bar.")
    ] = None,
) -> None:
    """Fine-tune a classifier through a prompt (or the head baseline) and score it.

    The run folder gets job.yaml, train_config.json, metrics.jsonl, final_metrics.json, best/ (the model chosen on dev) and test_metrics.json when --test is given. Run the same command again to resume an interrupted run; a finished run is never overwritten. Relative paths are relative to the current directory. In --template and YAML templates, \\n is a newline and \\t a tab.

    Example (16-shot SST-2 with LoRA, settings from a file, two of them overridden):

        promptft train --config examples/sst2_prompt_lora.yaml --steps 100 --output runs/sst2

    Example (zero-shot, all from flags):

        promptft train --finetune none --dev dev.tsv --label-map 0=negative,1=positive --label-words negative=terrible,positive=great --output runs/zs
    """
    from promptft.config import load_job, parse_column, parse_label_words, run_job
    from promptft.prompts.template import unescape_template

    given: dict[str, Any] = {
        "data.train": train_file,
        "data.dev": dev,
        "data.test": test,
        "data.fields": _fields(field, text_field),
        "data.label": None if label_column is None else parse_column(label_column),
        "data.label_map": _label_map(label_map),
        "data.header": header,
        "data.format": data_format,
        "prompt.template": None if template is None else unescape_template(template),
        "prompt.label_words": parse_label_words(label_words) if label_words else None,
        "prompt.token_reduction": token_reduction,
        "prompt.word_reduction": word_reduction,
        "prompt.max_length": max_length,
        "model.name": model,
        "model.kind": kind,
        "model.method": method,
        "model.finetune": finetune,
        "model.lora.r": lora_r,
        "model.lora.alpha": lora_alpha,
        "model.lora.dropout": lora_dropout,
        "model.lora.top_layers": lora_top_layers,
        "model.device": device,
        "train.learning_rate": lr,
        "train.max_steps": steps,
        "train.batch_size": batch_size,
        "train.grad_accum": grad_accum,
        "train.warmup_ratio": warmup_ratio,
        "train.weight_decay": weight_decay,
        "train.eval_every": eval_every,
        "train.eval_batch_size": eval_batch_size,
        "train.metric": metric,
        "train.seed": seed,
        "train.progress": progress,
        "output": output,
    }
    overrides = {k: v for k, v in given.items() if v is not None}
    if patience is not None:
        overrides["train.early_stopping_patience"] = patience or None
    job = load_job(config, overrides)
    try:
        result = run_job(job)
    except KeyboardInterrupt:
        Console(stderr=True).print(
            f"interrupted: run the same command again to resume {job.output} from its last checkpoint",
            style="yellow",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None

    table = Table(title=f"promptft train: {result.run_dir}", title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    metric_name = job.train.metric
    if result.best_dev is not None:
        table.add_row(
            f"dev {metric_name} (best, step {result.best_step})", _fmt(result.best_dev[metric_name])
        )
    if result.test is not None:
        table.add_row("test accuracy", _fmt(result.test["accuracy"]))
        table.add_row("test macro-F1", _fmt(result.test["macro_f1"]))
        table.add_row("test examples", str(result.test["n"]))
    table.add_row("steps", "0 (zero-shot)" if result.zero_shot else str(result.steps))
    table.add_row("time", f"{result.train_time_s:.1f} s")
    table.add_row("model", str(Path(result.run_dir) / "best"))
    Console().print(table)


# ---------------------------------------------------------------------------------------------------------
# eval / predict


EmptyOpt = Annotated[
    str,
    typer.Option(
        "--empty",
        metavar="keep|skip|error",
        help="Rows whose text is empty: keep them (with a warning), skip them (predict: their row stays, "
        "with an empty prediction), or stop with an error.",
    ),
]


def _prepare(model_dir: Path, device: str | None, **given: Any):
    """Everything eval and predict can check without the model (~seconds to load): the folder, the
    device, and the data spec (the job's columns, then the flags). Returns (classifier folder, saved
    config, data spec)."""
    from promptft.config import classifier_dir, data_config_for, saved_classifier
    from promptft.models.loading import check_device

    folder = classifier_dir(model_dir)
    saved = saved_classifier(folder)
    check_device(device)
    data = data_config_for(folder, saved.get("fields", ()))
    return folder, saved, dataclasses.replace(data, **{k: v for k, v in given.items() if v is not None})


def _load(folder: Path, device: str | None):
    from promptft.classifiers import load_classifier

    return load_classifier(folder, device=device)


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
    """Score a saved classifier on a labelled file: accuracy and macro-F1.

    Columns and the label map default to those of the job that trained the model (its job.yaml). The file is checked before the model loads.

    Example:

        promptft eval runs/sst2/best --data ../shared/data/SST-2/test.tsv --json
    """
    from promptft.config import check_empty, check_known_labels, parse_column, read_split_rows

    _require_file(data)
    folder, saved, spec = _prepare(
        model_dir,
        device,
        fields=_fields(field, text_field),
        label=None if label_column is None else parse_column(label_column),
        label_map=_label_map(label_map),
        header=header,
        format=data_format,
    )
    rows = read_split_rows(data, spec)
    check_known_labels(rows, saved["labels"], data)
    skip = set(check_empty(rows, data, empty, "scored like the others" if empty == "keep" else "not scored"))
    if empty == "skip":
        rows = [row for i, row in enumerate(rows) if i not in skip]
    show = _show_progress(progress)
    clf = _load(folder, device)
    metrics = clf.evaluate([row.example for row in rows], batch_size, show)
    if as_json:
        typer.echo(json.dumps(metrics))
        return
    table = Table(title=f"promptft eval: {data}", title_justify="left")
    table.add_column("accuracy", justify="right")
    table.add_column("macro-F1", justify="right")
    table.add_column("examples", justify="right")
    table.add_row(_fmt(metrics["accuracy"]), _fmt(metrics["macro_f1"]), str(metrics["n"]))
    Console().print(table)


@app.command()
def predict(
    model_dir: Annotated[Path, typer.Argument(help="A saved classifier (a run's best/ folder, or the run).")],
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
) -> None:
    """Classify a file: writes every input row with its columns (in order), the predicted label and prob_<label> for every label.

    The prediction columns are `label` and `prob_<label>`; when the input already has a column of that name (e.g. its own `label`), they are named `pred_label`, `pred_prob_<label>`. One output row per input row, in order.

    Example:

        promptft predict runs/sst2/best --input reviews.csv --output predictions.jsonl
    """
    from promptft.config import check_empty, check_output, prediction_rows, read_split_rows, write_predictions

    check_output(output, overwrite)  # before the model loads
    _require_file(input)
    folder, _, spec = _prepare(
        model_dir, device, fields=_fields(field, text_field), header=header, format=data_format
    )
    rows = read_split_rows(input, spec, labelled=False)
    what = "predicted from the template alone" if empty == "keep" else "kept with an empty prediction"
    skip = check_empty(rows, input, empty, what)
    show = _show_progress(progress)
    clf = _load(folder, device)
    predictions = prediction_rows(clf, rows, batch_size, show, skip=skip if empty == "skip" else ())
    write_predictions(predictions, output, overwrite)
    Console(stderr=True).print(
        f"wrote {len(predictions)} predictions to {output}", markup=False, highlight=False
    )


# Benchmark, model listing and selection commands live with the benchmark.
register(app)
