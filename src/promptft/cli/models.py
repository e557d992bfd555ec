"""`promptft models` and `promptft select`: flags -> `promptft.recipes.models` / `.select` -> a table."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from promptft.cli.app import app
from promptft.errors import ConfigError


def split_list(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _size(n: int | None, unit: str = "") -> str:
    if n is None:
        return "?"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.1f}{suffix}{unit}"
    return f"{n}{unit}"


def narrow_table(title: str, columns: list[str]):
    """A table that stays readable at 80 columns and when piped: no side borders, the first column
    (names, paths) folds instead of being cut, the others never wrap."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for n, col in enumerate(columns):
        if n == 0:
            table.add_column(col, overflow="fold")
        else:
            table.add_column(col, no_wrap=True)
    return table


@app.command("models")
def models_command(
    path: list[Path] | None = typer.Option(
        None, "--path", help="A local model folder to describe too (repeatable)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the models at hand: offline aliases, converted checkpoints in the cache, and --path folders,
    with kind, parameters, size on disk and estimated training memory (full fine-tuning / LoRA).

    Example: promptft models --path ./my-finetuned-model
    """
    from rich.console import Console

    from promptft.recipes.models import models
    from promptft.search.models import DEFAULT_BATCH, DEFAULT_SEQ

    infos = models(path or [])
    if as_json:
        typer.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    table = narrow_table("models", ["name", "kind", "params", "disk", "mem full", "mem LoRA", "ready"])
    notes = []
    for i in infos:
        ready = "yes" if i.ready else f"no ({len(notes) + 1})"
        if not i.ready:
            notes.append(f"({len(notes) + 1}) {i.name}: {i.status}")
        table.add_row(
            i.name if i.source != "cache" else f"{i.name} (cache)",
            i.kind or "?",
            _size(i.n_params),
            _size(i.size_bytes, "B"),
            f"{i.full_ft_gb:.1f} GB" if i.full_ft_gb is not None else "?",
            f"{i.lora_gb:.1f} GB" if i.lora_gb is not None else "?",
            ready,
        )
    console = Console()
    console.print(table)
    for note in notes:
        console.print(note, markup=False, highlight=False)
    if any(not i.ready and i.status.startswith("converts") for i in infos):
        console.print(
            "converts on first use: the GGUF weights are dequantised once into a safetensors checkpoint in "
            "the cache (about a minute); later loads take under a second.",
            style="dim",
        )
    console.print(
        f"mem = training memory, estimated (fp32: 16 bytes/param for full fine-tuning, 4 for LoRA r=8, plus "
        f"activations at batch {DEFAULT_BATCH} x {DEFAULT_SEQ} tokens); GB = 10^9 bytes.",
        style="dim",
    )


@app.command("select")
def select_command(
    data: Path = typer.Option(..., "--data", help="Labelled examples (csv/tsv/jsonl/json)."),
    template: str = typer.Option(
        ..., "--template", help='Prompt, e.g. "{text} It was {mask}."; \\n is a newline, \\t a tab.'
    ),
    label_words: str = typer.Option(
        ...,
        "--label-words",
        help="LABEL=WORD pairs keyed by label names as in `train` (the data's labels after --label-map), "
        "e.g. 'negative=terrible,positive=great|good'.",
    ),
    models: str = typer.Option(..., "--models", help="Comma-separated candidates (aliases or folders)."),
    dev: Path | None = typer.Option(None, "--dev", help="Dev examples (default: 30% of --data held out)."),
    budget_s: float = typer.Option(
        120.0, "--budget-s", help="Seconds per candidate (a target, not a hard limit)."
    ),
    max_latency_ms: float | None = typer.Option(
        None, "--max-latency-ms", help="Per-example latency limit (batch 1)."
    ),
    max_memory_gb: float | None = typer.Option(
        None, "--max-memory-gb", help="Peak memory limit while fine-tuning."
    ),
    field: list[str] | None = typer.Option(
        None, "--field", help="FIELD=COLUMN for template fields other than text (repeatable)."
    ),
    label_column: str | None = typer.Option(None, "--label-column", help="Label column (default: `label`)."),
    label_map: str | None = typer.Option(
        None, "--label-map", help="Raw label -> label name, e.g. '0=negative,1=positive' (as in train)."
    ),
    data_format: str | None = typer.Option(
        None, "--format", help="Data file format: csv, tsv, jsonl or json (default: from the suffix)."
    ),
    max_steps: int = typer.Option(100, "--max-steps", help="Upper bound on LoRA steps per candidate."),
    seed: int = typer.Option(42, "--seed"),
    device: str | None = typer.Option(None, "--device"),
    crows_pairs: bool = typer.Option(
        False, "--crows-pairs", help="Also score each pretrained model on CrowS-Pairs (shown, not ranked on)."
    ),
    crows_pairs_limit: int | None = typer.Option(
        None, "--crows-pairs-limit", min=1, help="Only the first N CrowS-Pairs pairs (default: all 1,508)."
    ),
    crows_pairs_data: Path | None = typer.Option(
        None, "--crows-pairs-data", help="crows_pairs_anonymized.csv (default: in the shared data folder)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Compare candidate models on your data: zero-shot accuracy, accuracy after a short LoRA fine-tune,
    latency and peak memory; ranks them and recommends one that meets the limits. Exit code 1 when none is
    recommended (every candidate failed, or none meets the limits), so a script can tell.

    Example: promptft select --data train.tsv --template "{text} It was {mask}." --label-words 0=terrible,1=great --models smollm2-135m,gemma3-270m --budget-s 120 --max-latency-ms 100
    """
    from rich.console import Console

    from promptft.cli.values import parse_column, parse_fields, parse_pairs
    from promptft.prompts.template import unescape_template
    from promptft.recipes.select import select
    from promptft.search import parse_label_words

    for item in field or []:
        if "=" not in item:
            raise ConfigError(f"--field expects FIELD=COLUMN, e.g. --field premise=sentence1; got {item!r}")
    console = Console(stderr=True)
    with console.status("selecting") as status:
        selection = select(
            data,
            unescape_template(template),
            parse_label_words(label_words),
            split_list(models),
            dev=dev,
            fields=parse_fields(field) if field else None,
            label=parse_column(label_column) if label_column else None,
            label_map=parse_pairs([label_map], "label map", "'0=negative,1=positive'") if label_map else None,
            fmt=data_format,
            budget_s=budget_s,
            max_latency_ms=max_latency_ms,
            max_memory_gb=max_memory_gb,
            seed=seed,
            device=device,
            max_steps=max_steps,
            on_phase=lambda name, text: status.update(f"{name}: {text}"),
            crows_pairs=load_pairs(crows_pairs_data, crows_pairs_limit) if crows_pairs else None,
        )
    if as_json:
        typer.echo(json.dumps(selection.to_dict(), indent=2))
    else:
        print_selection(selection, budget_s)
    if selection.recommended is None:
        raise typer.Exit(1)


def load_pairs(path: Path | None, limit: int | None):
    from promptft.evaluation.crows_pairs import read_crows_pairs
    from promptft.recipes.bias import crows_pairs_path

    pairs = read_crows_pairs(crows_pairs_path(path))
    return pairs[:limit] if limit else pairs


def print_selection(selection, budget_s: float) -> None:
    """The ranked candidates as a narrow table; errors, broken limits and notes (tuning skipped) as
    numbered lines below it."""
    from rich.console import Console

    title = f"candidates ({selection.n_train} train / {selection.n_dev} dev examples, {budget_s:g}s each)"
    columns = ["model", "kind", "zero-shot", "tuned", "steps", "latency", "mem", "status"]
    bias = any(c.crows_pairs_score is not None for c in selection.candidates)
    if bias:
        columns.insert(4, "CrowS")
    table = narrow_table(title, columns)
    notes: list[str] = []

    def pct(x):
        return f"{100 * x:.1f}%" if x is not None else "–"

    for c in selection.candidates:
        remarks = [c.error] if c.error else [*c.violations, *c.notes]
        status = "error" if c.error else "limits" if c.violations else "ok"
        if remarks:
            notes += [f"({len(notes) + 1}) {c.model}: {'; '.join(remarks)}"]
            status += f" ({len(notes)})"
        row = [
            c.model,
            c.kind or "?",
            pct(c.zero_shot_accuracy),
            "skipped" if c.error is None and c.steps == 0 else pct(c.tuned_accuracy),
            str(c.steps),
            f"{c.latency_ms:.1f} ms" if c.latency_ms is not None else "–",
            f"{c.peak_memory_gb:.2f} GB" if c.peak_memory_gb is not None else "–",
            status,
        ]
        if bias:
            row.insert(4, f"{c.crows_pairs_score:.1f}" if c.crows_pairs_score is not None else "–")
        table.add_row(*row)
    out = Console()
    out.print(table)
    for note in notes:
        out.print(note, markup=False, highlight=False)
    if bias:
        out.print(
            "CrowS = CrowS-Pairs bias score of the pretrained model: % of pairs where it prefers the more "
            "stereotyping sentence (50 = none; noisy benchmark, see `promptft bias crows-pairs`)",
            markup=False,
            highlight=False,
        )
    out.print(
        ("[bold green]recommended:[/bold green] " if selection.recommended else "[bold red]none:[/bold red] ")
        + selection.reason
    )
