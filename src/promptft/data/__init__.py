"""Data layer: read examples from files or datasets, sample k-shot splits."""

from promptft.data.example import Example, label_names
from promptft.data.readers import read_examples
from promptft.data.sampling import MultiLabelSample, sample_k_shot, sample_multi_label, train_dev_split
from promptft.data.targets import TASK_TYPES, TaskSpec

__all__ = [
    "TASK_TYPES",
    "Example",
    "MultiLabelSample",
    "TaskSpec",
    "label_names",
    "read_examples",
    "sample_k_shot",
    "sample_multi_label",
    "train_dev_split",
]
