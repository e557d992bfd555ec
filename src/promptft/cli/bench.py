"""`promptft bench run|report`: flags -> `promptft.recipes.bench` -> one line per outcome."""

from __future__ import annotations

from pathlib import Path

import typer

from promptft.cli.app import app
from promptft.cli.models import split_list
from promptft.errors import ConfigError

DEFAULT_RESULTS = Path("benchmarks/results")

bench_app = typer.Typer(
    help="The few-shot benchmark (LM-BFF protocol: K=16 per class, 5 seeds, 8 tasks).\n\n"
    "Example: promptft bench run --model smollm2-135m --tasks sst-2,mr --methods zero_shot,prompt_ft_lora "
    "--seeds 13,21 && promptft bench report",
    no_args_is_help=True,
)


def _ints(text: str | None, what: str) -> list[int]:
    try:
        return [int(s) for s in split_list(text)]
    except ValueError:
        raise ConfigError(f"{what} takes comma-separated integers, e.g. 13,21,42; got {text!r}") from None


@bench_app.command("run")
def bench_run(
    model: str = typer.Option("smollm2-135m", "--model", "-m", help="Alias, local folder or hub id."),
    tasks: str = typer.Option(
        "",
        help="Comma-separated tasks (default: every task of the table): sst-2,sst-5,mr,cr,subj,mpqa,trec,rte, "
        "sts-b,goemotions.",
    ),
    methods: str = typer.Option(
        "",
        help="Comma-separated methods, e.g. zero_shot,standard_ft,prompt_ft,prompt_ft_lora,setfit (default: "
        "every method, CPU days; the list is in docs/how-to/fewshot-benchmark.md).",
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
    from promptft.bench.tasks import parse_test_overrides
    from promptft.recipes.bench import run

    result, out = run(
        model,
        split_list(tasks) or None,
        split_list(methods) or None,
        _ints(seeds, "--seeds") or None,
        test_overrides=parse_test_overrides(test or []),
        config=config,
        results_dir=results_dir,
        max_test=max_test,
        force=force,
        tasks_file=tasks_file,
        data_dir=data_dir,
        device=device,
        with_report=report,
    )
    typer.echo(f"{len(result.written)} cell(s) written, {len(result.skipped)} already done")
    if out is not None:
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
    from promptft.recipes.bench import report

    out = report(results_dir, tasks_file)
    typer.echo(f"{out.n_cells} cells -> {out.summary_path}, {out.markdown_path}, {out.plot_path}")


app.add_typer(bench_app, name="bench")
