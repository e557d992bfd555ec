"""CLI commands of the benchmark and model selection: `promptft bench run|report`, `promptft models`,
`promptft select`. Thin: each parses its flags, calls the library, prints the result."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import typer

from promptft.errors import ConfigError, DataError

DEFAULT_RESULTS = Path("benchmarks/results")

bench_app = typer.Typer(
    help="The few-shot benchmark (LM-BFF protocol: K=16 per class, 5 seeds, 8 tasks).\n\n"
    "Example: promptft bench run --model smollm2-135m --tasks sst-2,mr --methods zero_shot,prompt_ft_lora "
    "--seeds 13,21 && promptft bench report",
    no_args_is_help=True,
)


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _ints(text: str | None, what: str) -> list[int]:
    try:
        return [int(s) for s in _split(text)]
    except ValueError:
        raise ConfigError(f"{what} takes comma-separated integers, e.g. 13,21,42; got {text!r}") from None


@bench_app.command("run")
def bench_run(
    model: str = typer.Option("smollm2-135m", "--model", "-m", help="Alias, local folder or hub id."),
    tasks: str = typer.Option(
        "", help="Comma-separated tasks (default: all): sst-2,sst-5,mr,cr,subj,mpqa,trec,rte."
    ),
    methods: str = typer.Option(
        "",
        help="Comma-separated methods (default: all): zero_shot,standard_ft,prompt_ft,prompt_ft_lora,setfit.",
    ),
    seeds: str = typer.Option("", help="Comma-separated seeds (default: 13,21,42,87,100)."),
    test: list[str] | None = typer.Option(
        None, "--test", help="TASK=PATH: score TASK on this file instead of its test file (repeatable)."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="YAML merged onto the packaged bench/default.yaml."
    ),
    results_dir: Path = typer.Option(
        DEFAULT_RESULTS, "--results-dir", help="Where fewshot/ cells are written."
    ),
    max_test: int | None = typer.Option(
        None,
        "--max-test",
        help="Score on a fixed random subset of N test examples (smoke runs; marked in reports).",
    ),
    force: bool = typer.Option(False, "--force", help="Redo cells that are already finished."),
    tasks_file: Path | None = typer.Option(
        None, "--tasks-file", help="Another task table (default: bench/tasks.yaml)."
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Data folder (default: $PROMPTFT_DATA or ../shared/data)."
    ),
    device: str | None = typer.Option(None, help="cpu, cuda, cuda:1 ... (default: cuda if available)."),
    report: bool = typer.Option(True, "--report/--no-report", help="Regenerate the report after the run."),
) -> None:
    """Run the benchmark: one JSON per (task, method, seed), written as soon as it finishes; reruns skip them.

    Example: promptft bench run --model smollm2-135m --tasks sst-2,mr --methods zero_shot,prompt_ft_lora --seeds 13,21 --max-test 200 --results-dir /tmp/bench
    """
    from promptft.bench.report import build_report
    from promptft.bench.runner import run_benchmark
    from promptft.bench.tasks import parse_test_overrides

    result = run_benchmark(
        model,
        _split(tasks) or None,
        _split(methods) or None,
        _ints(seeds, "--seeds") or None,
        test_overrides=parse_test_overrides(test or []),
        config=config,
        results_dir=results_dir,
        max_test=max_test,
        force=force,
        tasks_file=tasks_file,
        data_dir=data_dir,
        device=device,
    )
    typer.echo(f"{len(result.written)} cell(s) written, {len(result.skipped)} already done")
    if report and (result.written or result.skipped):
        out = build_report(results_dir, tasks_file)
        typer.echo(f"report: {out.markdown_path}, {out.summary_path}, {out.plot_path}")


@bench_app.command("report")
def bench_report(
    results_dir: Path = typer.Option(
        DEFAULT_RESULTS, "--results-dir", help="The folder that holds fewshot/."
    ),
    tasks_file: Path | None = typer.Option(
        None, "--tasks-file", help="Another task table (default: bench/tasks.yaml)."
    ),
) -> None:
    """Regenerate fewshot_summary.json, fewshot.md (with the LM-BFF paper's numbers) and fewshot.png.

    Example: promptft bench report --results-dir benchmarks/results
    """
    from promptft.bench.report import build_report

    out = build_report(results_dir, tasks_file)
    typer.echo(f"{out.n_cells} cells -> {out.summary_path}, {out.markdown_path}, {out.plot_path}")


def _size(n: int | None, unit: str = "") -> str:
    if n is None:
        return "?"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.1f}{suffix}{unit}"
    return f"{n}{unit}"


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

    from promptft.selection import DEFAULT_BATCH, DEFAULT_SEQ, list_models

    infos = list_models(path or [])
    if as_json:
        typer.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    table = _narrow_table("models", ["name", "kind", "params", "disk", "mem full", "mem LoRA", "ready"])
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


def _narrow_table(title: str, columns: list[str]):
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
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Compare candidate models on your data: zero-shot accuracy, accuracy after a short LoRA fine-tune,
    latency and peak memory; ranks them and recommends one that meets the limits.

    Example: promptft select --data train.tsv --template "{text} It was {mask}." --label-words 0=terrible,1=great --models smollm2-135m,gemma3-270m --budget-s 120 --max-latency-ms 100
    """
    from rich.console import Console

    from promptft.config import cli_wording, parse_pairs
    from promptft.data import read_examples
    from promptft.prompts.template import unescape_template
    from promptft.selection import parse_label_words, select_models

    fields = None
    if field:
        fields = {}
        for item in field:
            name, sep, column = item.partition("=")
            if not sep:
                raise ConfigError(
                    f"--field expects FIELD=COLUMN, e.g. --field premise=sentence1; got {item!r}"
                )
            fields[name.strip()] = int(column) if column.strip().isdigit() else column.strip()
    label = (int(label_column) if label_column.isdigit() else label_column) if label_column else None
    mapping = parse_pairs([label_map], "label map", "'0=negative,1=positive'") if label_map else None
    read = functools.partial(read_examples, fields=fields, label=label, label_map=mapping, fmt=data_format)
    try:
        train_examples = read(data)
        dev_examples = read(dev) if dev else None
    except DataError as err:
        raise DataError(cli_wording(str(err))) from None
    console = Console(stderr=True)
    with console.status("selecting") as status:
        selection = select_models(
            _split(models),
            train_examples,
            unescape_template(template),
            parse_label_words(label_words),
            dev=dev_examples,
            budget_s=budget_s,
            max_latency_ms=max_latency_ms,
            max_memory_gb=max_memory_gb,
            seed=seed,
            device=device,
            max_steps=max_steps,
            on_phase=lambda name, text: status.update(f"{name}: {text}"),
        )
    if as_json:
        typer.echo(json.dumps(selection.to_dict(), indent=2))
        return
    _print_selection(selection, budget_s)


def _print_selection(selection, budget_s: float) -> None:
    """The ranked candidates as a narrow table; errors, broken limits and notes (tuning skipped) as
    numbered lines below it."""
    from rich.console import Console

    title = f"candidates ({selection.n_train} train / {selection.n_dev} dev examples, {budget_s:g}s each)"
    table = _narrow_table(title, ["model", "kind", "zero-shot", "tuned", "steps", "latency", "mem", "status"])
    notes: list[str] = []

    def pct(x):
        return f"{100 * x:.1f}%" if x is not None else "–"

    for c in selection.candidates:
        remarks = [c.error] if c.error else [*c.violations, *c.notes]
        status = "error" if c.error else "limits" if c.violations else "ok"
        if remarks:
            notes += [f"({len(notes) + 1}) {c.model}: {'; '.join(remarks)}"]
            status += f" ({len(notes)})"
        table.add_row(
            c.model,
            c.kind or "?",
            pct(c.zero_shot_accuracy),
            "skipped" if c.error is None and c.steps == 0 else pct(c.tuned_accuracy),
            str(c.steps),
            f"{c.latency_ms:.1f} ms" if c.latency_ms is not None else "–",
            f"{c.peak_memory_gb:.2f} GB" if c.peak_memory_gb is not None else "–",
            status,
        )
    out = Console()
    out.print(table)
    for note in notes:
        out.print(note, markup=False, highlight=False)
    out.print(
        ("[bold green]recommended:[/bold green] " if selection.recommended else "[bold red]none:[/bold red] ")
        + selection.reason
    )


def register(app: typer.Typer) -> None:
    """Add the `bench` sub-app (run, report) and the top-level `models` and `select` commands."""
    app.add_typer(bench_app, name="bench")
    app.command("models")(models_command)
    app.command("select")(select_command)
