"""Typed configs (pydantic): schemas only, cheap to import (no torch), YAML round trip.

* `JobConfig` (`job.py`): what `promptft train` runs: data, task (`TaskConfig`, `task.py`: single-label,
  multi-label or regression), prompt, model (with any adapter of the
  registry), training (`TrainConfig`, `train.py`) and the run folder.
* `PetConfig` (`pet.py`): pattern ensembles (PET / iPET) on top of a job.
* `BenchConfig` (`bench.py`): the benchmark's per-method options, each a partial job config.

An unknown key is a `ConfigError` that names the nearest valid key and the valid keys of its section; a
wrong type or value says what was expected (`base.py`). The workflows that run these configs are in
`promptft.recipes`.
"""

from promptft.config.base import Section, leaf_keys
from promptft.config.bench import BenchConfig, expand_grid, load_bench_config, method_job
from promptft.config.job import (
    DataConfig,
    JobConfig,
    ModelConfig,
    PromptConfig,
    adapter_from_options,
    apply_overrides,
    load_job,
    parse_assignments,
    read_job_file,
)
from promptft.config.pet import PetConfig
from promptft.config.task import TaskConfig
from promptft.config.train import TrainConfig

__all__ = [
    "BenchConfig",
    "DataConfig",
    "JobConfig",
    "ModelConfig",
    "PetConfig",
    "PromptConfig",
    "Section",
    "TaskConfig",
    "TrainConfig",
    "adapter_from_options",
    "apply_overrides",
    "expand_grid",
    "leaf_keys",
    "load_bench_config",
    "load_job",
    "method_job",
    "parse_assignments",
    "read_job_file",
]
