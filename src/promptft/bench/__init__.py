"""The few-shot benchmark (LM-BFF protocol): task table, methods registry, runner and report."""

from promptft.bench.config import BenchConfig, expand_grid, load_config
from promptft.bench.methods import METHODS, Fitted, ModelRef, SplitData, method
from promptft.bench.report import build_report
from promptft.bench.runner import cell_path, run_benchmark
from promptft.bench.tasks import TaskSpec, TaskTable, load_tasks

__all__ = [
    "METHODS",
    "BenchConfig",
    "Fitted",
    "ModelRef",
    "SplitData",
    "TaskSpec",
    "TaskTable",
    "build_report",
    "cell_path",
    "expand_grid",
    "load_config",
    "load_tasks",
    "method",
    "run_benchmark",
]
