"""Data layer: read examples from files or datasets, sample k-shot splits."""

from promptft.data.example import Example, label_names
from promptft.data.readers import read_examples
from promptft.data.sampling import sample_k_shot, train_dev_split

__all__ = ["Example", "label_names", "read_examples", "sample_k_shot", "train_dev_split"]
