"""The `promptft` Typer app: its error handling, logging set-up and the options several commands share.

Errors a user can fix (`PromptFTError`) print as `error: ...` with exit code 2 and no traceback. Progress
and logs go to stderr; tables and `--json` output to stdout. Nothing here imports torch.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

import typer
from rich.console import Console
from typer.core import TyperGroup

from promptft.errors import PromptFTError


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


def columns(
    field: list[str] | None,
    text_field: str | None,
    label_column: str | None = None,
    label_map: list[str] | None = None,
    header: bool | None = None,
    data_format: str | None = None,
) -> dict[str, object]:
    """The data flags as `data.*` config values (only those given)."""
    from promptft.cli.values import parse_column, parse_fields, parse_pairs

    out: dict[str, object] = {}
    if field or text_field is not None:
        fields = parse_fields(field or [])
        if text_field is not None:
            fields["text"] = parse_column(text_field)
        out["fields"] = fields
    if label_column is not None:
        out["label"] = parse_column(label_column)
    if label_map:
        out["label_map"] = parse_pairs(label_map, "label map", "'0=negative,1=positive'")
    if header is not None:
        out["header"] = header
    if data_format is not None:
        out["format"] = data_format
    return out


def show_progress(flag: bool | None) -> bool:
    import sys

    return flag if flag is not None else sys.stderr.isatty()


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


_METRIC_NAMES = {
    "macro_f1": "macro-F1",
    "micro_f1": "micro-F1",
    "subset_accuracy": "subset accuracy",
    "pearson": "Pearson",
    "spearman": "Spearman",
    "mse": "MSE",
}


def headline_metrics(metrics: dict[str, float]) -> list[tuple[str, float]]:
    """The metrics a table shows, in the objective's order: all but `n` and the per-label `f1_<label>`."""
    return [(_METRIC_NAMES.get(k, k), v) for k, v in metrics.items() if k != "n" and not k.startswith("f1_")]


def print_result(renderable) -> None:
    """Print a result on stdout, on the main process only (under `accelerate launch` each process runs
    the command; one table is enough)."""
    from promptft.training.distributed import is_main_process

    if is_main_process():
        Console().print(renderable)
