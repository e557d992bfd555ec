"""Workflows that train and score many classifiers to choose one: model selection today (`select.py`),
label-word and template search next. `models.py` describes the models at hand without loading them."""

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
