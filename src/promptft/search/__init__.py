"""Workflows that train and score many classifiers to choose one: model selection (`select.py`), prompt
evaluation (`prompt_eval.py`), label-word search (`label_words.py`) and template search (`templates.py`,
patterns in `template_library.yaml`). `models.py` describes the models at hand without loading them.
Import the prompt tools from their modules (`from promptft.search.label_words import search_label_words`)."""

from promptft.search.models import (
    DEFAULT_BATCH,
    DEFAULT_SEQ,
    FULL_FT_BYTES_PER_PARAM,
    GB,
    ModelInfo,
    describe_folder,
    estimate_training_memory,
    gguf_parameters,
    list_models,
    safetensors_parameters,
)
from promptft.search.select import (
    Candidate,
    Selection,
    check_constraints,
    parse_label_words,
    rank_candidates,
    select_models,
)

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_SEQ",
    "FULL_FT_BYTES_PER_PARAM",
    "GB",
    "Candidate",
    "ModelInfo",
    "Selection",
    "check_constraints",
    "describe_folder",
    "estimate_training_memory",
    "gguf_parameters",
    "list_models",
    "parse_label_words",
    "rank_candidates",
    "safetensors_parameters",
    "select_models",
]
