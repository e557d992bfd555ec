"""The bench recipes: run the LM-BFF few-shot benchmark (cells written as they finish; reruns skip them)
and build its report (summary JSON, markdown with the paper's numbers, plot, targets)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from promptft.bench.report import Report, build_report
from promptft.bench.runner import RunResult, run_benchmark
from promptft.recipes import bench_auto  # noqa: F401  (registers the `auto` bench method)

__all__ = ["Report", "RunResult", "report", "run"]


def run(
    model: str,
    tasks: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    *,
    with_report: bool = True,
    **options: Any,
) -> tuple[RunResult, Report | None]:
    """`run_benchmark(...)` (options: test_overrides, config, results_dir, max_test, force, tasks_file,
    data_dir, device), then the report of the results folder when a cell was written or found."""
    result = run_benchmark(model, tasks, methods, seeds, **options)
    out = None
    if with_report and (result.written or result.skipped):
        out = build_report(options.get("results_dir", "benchmarks/results"), options.get("tasks_file"))
    return result, out


def report(results_dir: str | Path = "benchmarks/results", tasks_file: str | Path | None = None) -> Report:
    return build_report(results_dir, tasks_file)
