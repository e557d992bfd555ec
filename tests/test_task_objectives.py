"""The regression and multi-label objectives: losses against hand computations, decoding, thresholds
tuned on a planted fixture, metrics."""

import math

import pytest
import torch

from promptft import Example
from promptft.errors import ConfigError, DataError
from promptft.objectives import MultiLabel, Regression, get_objective, known_metrics, objective_from_dict

POLES = ["low", "high"]


def ex(label, i=0):
    return Example({"text": f"t{i}"}, label)


def test_regression_kl_loss_matches_a_hand_computation():
    objective = Regression(POLES, value_range=(0, 5))
    targets = objective.targets([ex(3.8), ex(0.0), ex(5.0)])
    assert targets.tolist() == pytest.approx([0.76, 0.0, 1.0])
    logits = torch.tensor([[-2.0, -1.0], [-0.5, -3.0], [-4.0, -0.1]])  # log-probs of no / yes
    loss = objective.loss(logits, targets)
    # by hand: p(yes) = softmax over the two poles; KL([1-y, y] || [1-p, p]) = sum t log(t / q)
    expected = []
    for (a, b), y in zip(logits.tolist(), [0.76, 0.0, 1.0], strict=True):
        p = math.exp(b) / (math.exp(a) + math.exp(b))
        kl = 0.0
        for t, q in ((1 - y, 1 - p), (y, p)):
            if t > 0:
                kl += t * math.log(t / q)
        expected.append(kl)
    assert loss.tolist() == pytest.approx(expected, rel=1e-4, abs=1e-6)
    # the same as torch's KLDivLoss (what LM-BFF uses) on the two-pole log-distribution
    kl_div = torch.nn.functional.kl_div(
        torch.log_softmax(logits, -1), torch.stack([1 - targets, targets], -1), reduction="none"
    ).sum(-1)
    torch.testing.assert_close(loss, kl_div)
    assert loss.shape == (3,)


def test_regression_prediction_is_the_range_scaled_upper_pole_probability():
    objective = Regression(POLES, value_range=(0, 5))
    logits = torch.log(torch.tensor([[0.3, 0.1], [0.05, 0.15]]))  # renormalised: p(yes) = .25, .75
    assert objective.decode(logits) == pytest.approx([1.25, 3.75])
    assert objective.scores(logits).tolist() == pytest.approx([1.25, 3.75])


def test_regression_head_is_mse_on_the_position_in_the_range():
    objective = Regression(["value"], value_range=(0, 5))
    assert objective.loss_name == "mse"
    targets = objective.targets([ex(2.5), ex(5.0)])
    loss = objective.loss(torch.tensor([[0.3], [1.0]]), targets)
    assert loss.tolist() == pytest.approx([(0.3 - 0.5) ** 2, 0.0])
    assert objective.decode(torch.tensor([[0.3], [1.7]])) == pytest.approx([1.5, 5.0])  # kept in range


def test_regression_metrics_and_errors():
    objective = Regression(POLES, value_range=(0, 5))
    gold = [ex(v, i) for i, v in enumerate([1.0, 2.0, 3.0, 4.0])]
    metrics = objective.evaluate(gold, [1.1, 1.9, 3.5, 3.9])
    assert metrics["pearson"] > 0.95 and metrics["spearman"] == pytest.approx(1.0) and metrics["n"] == 4
    assert objective.evaluate(gold, [2.0] * 4)["pearson"] == 0.0  # constant: 0, not NaN
    with pytest.raises(DataError, match="not a number"):
        objective.targets([ex("positive")])
    with pytest.raises(DataError, match="outside the range"):
        objective.targets([ex(7.0)])
    with pytest.raises(ConfigError, match="two pole labels"):
        Regression(["a", "b", "c"], value_range=(0, 1))
    assert objective.check_metric("accuracy") == "pearson"  # the training config's default


# A planted fixture: scores whose F1-best thresholds are known. Label "joy": positives at .8 and .7,
# negatives at .6 and .2 -> any cut in (.6, .7]; midway: .65. Label "anger": positives at .3 and .25, negatives
# at .1, .05 -> midway .175 (no single score reaches .5, as with one softmax over the label words).
PLANTED = torch.tensor([[0.8, 0.05], [0.7, 0.3], [0.6, 0.25], [0.2, 0.1]])
PLANTED_GOLD = [("joy",), ("anger", "joy"), ("anger",), ()]


def test_thresholds_tuned_on_a_planted_fixture_are_the_known_ones():
    objective = MultiLabel(["joy", "anger"])
    logits = torch.logit(PLANTED)
    examples = [ex(g, i) for i, g in enumerate(PLANTED_GOLD)]
    before = objective.evaluate(examples, objective.decode(logits))
    assert before["macro_f1"] < 1
    objective.tune(logits, examples)
    assert objective.thresholds == pytest.approx([0.65, 0.175])
    after = objective.evaluate(examples, objective.decode(logits))
    assert after["macro_f1"] == after["micro_f1"] == after["subset_accuracy"] == 1.0
    assert after["f1_joy"] == after["f1_anger"] == 1.0
    assert objective.decode(logits) == PLANTED_GOLD
    # saved and read back with the classifier
    again = objective_from_dict(objective.to_dict(), ["x", "y"])
    assert isinstance(again, MultiLabel) and again.thresholds == objective.thresholds
    assert again.labels == ["joy", "anger"]


def test_multi_label_targets_loss_and_metrics():
    objective = MultiLabel(["a", "b", "c"])
    targets = objective.targets([ex(("a", "c")), ex(())])
    assert targets.tolist() == [[1, 0, 1], [0, 0, 0]]
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 0.0, -3.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(
        -1
    )
    torch.testing.assert_close(objective.loss(logits, targets), expected)
    assert objective.decode(logits) == [("a", "c"), ("a", "b")]
    metrics = objective.evaluate([ex(("a", "c")), ex(("b",))], [("a",), ("b",)])
    assert metrics["subset_accuracy"] == 0.5
    assert metrics["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1))  # tp 2, fn 1, fp 0
    assert metrics["macro_f1"] == pytest.approx((1 + 1 + 0) / 3)
    with pytest.raises(DataError, match="unknown label 'z'"):
        objective.targets([ex(("z",))])
    with pytest.raises(DataError, match="not a set of labels"):
        objective.targets([ex("a")])
    with pytest.raises(ConfigError, match="thresholds"):
        MultiLabel(["a", "b"], thresholds=[0.5])
    assert objective.check_metric("accuracy") == "macro_f1"


def test_registry_and_known_metrics():
    assert isinstance(get_objective("regression", POLES, value_range=(0, 5)), Regression)
    assert {"pearson", "spearman", "macro_f1", "micro_f1", "subset_accuracy", "accuracy"} <= set(
        known_metrics()
    )
    assert objective_from_dict(None, ["a", "b"]).name == "single_label"
