"""Objectives: single-label behaviour, and the interface carrying another task type through the Trainer."""

import pytest
import torch
import torch.nn.functional as F

from promptft import Example, PromptClassifier, TrainConfig
from promptft.errors import ConfigError, DataError
from promptft.evaluation.metrics import classification_metrics
from promptft.models import backbone_from_model
from promptft.objectives import OBJECTIVES, Objective, SingleLabel, get_objective, known_metrics
from promptft.training import Trainer
from tiny import tiny_llama

LABELS = ["negative", "neutral", "positive"]


def examples(*labels):
    return [Example({"text": f"t{i}"}, label) for i, label in enumerate(labels)]


def test_single_label_targets_are_label_indices():
    objective = SingleLabel(LABELS)
    assert objective.targets(examples("positive", "negative", "neutral")).tolist() == [2, 0, 1]
    with pytest.raises(DataError, match="unknown label 'great'.*knows"):
        objective.targets(examples("great"))
    with pytest.raises(DataError, match="no label"):
        objective.targets(examples(None))


def test_single_label_loss_is_per_example_cross_entropy():
    objective = SingleLabel(LABELS)
    logits = torch.log_softmax(torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), -1)
    targets = torch.tensor([0, 2, 1, 2])
    loss = objective.loss(logits.to(torch.bfloat16), targets)
    assert loss.shape == (4,) and loss.dtype == torch.float32  # one per example, in fp32 even from bf16
    torch.testing.assert_close(
        objective.loss(logits, targets), F.cross_entropy(logits, targets, reduction="none")
    )
    # scores are unnormalised log-space: cross-entropy renormalises over the labels
    torch.testing.assert_close(objective.loss(logits + 5.0, targets), objective.loss(logits, targets))


def test_single_label_decodes_argmax_and_scores_probabilities():
    objective = SingleLabel(LABELS)
    logits = torch.tensor([[-3.0, -1.0, -2.0], [-0.1, -5.0, -4.0]])
    assert objective.decode(logits) == ["neutral", "negative"]
    torch.testing.assert_close(objective.scores(logits).sum(-1), torch.ones(2))


def test_single_label_metrics_are_classification_metrics():
    objective = SingleLabel(LABELS)
    gold = examples("positive", "negative", "neutral", "positive")
    predicted = ["positive", "negative", "positive", "negative"]
    assert objective.evaluate(gold, predicted) == classification_metrics(
        [e.label for e in gold], predicted, LABELS
    )
    assert objective.default_metric == "accuracy"


def test_metric_choice_and_direction():
    objective = SingleLabel(LABELS)
    assert objective.check_metric("macro_f1") == "macro_f1"
    with pytest.raises(ConfigError, match="'pearson'.*single_label.*accuracy"):
        objective.check_metric("pearson")
    assert objective.is_better("accuracy", 0.5, None)
    assert objective.is_better("accuracy", 0.6, 0.5) and not objective.is_better("accuracy", 0.5, 0.5)


def test_registry_and_train_config_know_the_metrics():
    assert isinstance(get_objective("single_label", LABELS), SingleLabel)
    with pytest.raises(ConfigError, match="unknown objective 'regresion'"):
        get_objective("regresion", LABELS)
    assert {
        "accuracy": True,
        "macro_f1": True,
        "pearson": True,
        "mse": False,
    }.items() <= known_metrics().items()
    with pytest.raises(ConfigError, match="metric must be one of 'accuracy', 'macro_f1'"):
        TrainConfig(metric="f1")


class ToyMultiLabel(Objective):
    """A second task type, defined outside the package: several labels per example ("a|b"), a
    sigmoid per label, a lower-is-better metric. The Trainer runs it without knowing it."""

    name = "toy_multi_label"
    metrics = {"hamming_loss": False, "subset_accuracy": True}
    loss_name = "bce"

    def targets(self, examples):
        rows = torch.zeros(len(examples), len(self.labels))
        for i, ex in enumerate(examples):
            for label in ex.label.split("|"):
                rows[i, self.labels.index(label)] = 1.0
        return rows

    def loss(self, logits, targets):
        # label-word log-probabilities minus a threshold serve as per-label logits
        per_label = F.binary_cross_entropy_with_logits(
            logits.float() + 1.0, targets.to(logits.device), reduction="none"
        )
        return per_label.mean(-1)

    def decode(self, logits):
        return [{self.labels[j] for j, on in enumerate(row) if on} for row in (logits + 1.0 > 0).tolist()]

    def scores(self, logits):
        return torch.sigmoid(logits.float() + 1.0)

    def evaluate(self, examples, predictions):
        gold = [set(ex.label.split("|")) for ex in examples]
        wrong = sum(len(g ^ p) for g, p in zip(gold, predictions, strict=True))
        exact = sum(g == p for g, p in zip(gold, predictions, strict=True))
        n = len(gold)
        return {"hamming_loss": wrong / (n * len(self.labels)), "subset_accuracy": exact / n, "n": n}


def test_trainer_runs_another_objective_unchanged(monkeypatch):
    monkeypatch.setitem(OBJECTIVES, ToyMultiLabel.name, ToyMultiLabel)  # how a new task type registers
    model, tok = tiny_llama(seed=1)
    clf = PromptClassifier(
        backbone_from_model(model, tok, "causal"),
        "{text} It was {mask}.",
        {"negative": "terrible", "positive": "great"},
    )
    clf.set_finetune("full")
    data = [
        Example({"text": "I loved it"}, "positive"),
        Example({"text": "I hated it"}, "negative"),
        Example({"text": "good and bad"}, "negative|positive"),
        Example({"text": "great fun"}, "positive"),
    ]
    config = TrainConfig(
        learning_rate=5e-3,
        batch_size=4,
        max_steps=20,
        eval_every=5,
        metric="hamming_loss",
        early_stopping_patience=None,
        progress=False,
    )
    result = Trainer(clf, config, objective=get_objective("toy_multi_label", clf.labels)).train(data, data)
    losses = [h["train_loss"] for h in result.history if h["train_loss"] is not None]
    assert losses[-1] < losses[0]
    hamming = [h["dev_hamming_loss"] for h in result.history]
    assert result.best_dev["hamming_loss"] == min(hamming)  # lower is better for this metric
    assert result.best_step == result.history[hamming.index(min(hamming))]["step"]  # ties keep the first


def test_objectives_and_train_config_load_without_torch():
    import subprocess
    import sys

    code = (
        "import sys; from promptft.training import TrainConfig; import promptft.objectives;"
        "TrainConfig(metric='macro_f1'); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # reading a config (CLI --help, bench) stays fast
