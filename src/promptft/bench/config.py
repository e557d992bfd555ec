"""The benchmark's config as the runner uses it: the schema of `promptft.config.bench`, with every method's
options validated against the job that method runs (its `job=` in the methods registry)."""

from __future__ import annotations

from pathlib import Path

from promptft.bench.methods import METHODS
from promptft.config.bench import BenchConfig, default_config_path, expand_grid, load_bench_config

__all__ = ["BenchConfig", "default_config_path", "expand_grid", "load_config"]


def load_config(path: str | Path | None = None) -> BenchConfig:
    """The packaged defaults with `path` merged onto them; a typo or a wrong type in any method's options
    (or grid) is a ConfigError naming the nearest valid option."""
    return load_bench_config(path, {name: getattr(fn, "job", None) for name, fn in METHODS.items()})
