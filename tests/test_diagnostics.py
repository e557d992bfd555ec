"""Fitting diagnostics on synthetic histories, and the evaluation report's numbers, checked by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from promptft.data import Example
from promptft.errors import DataError
from promptft.evaluation import (
    diagnose_fitting,
    evaluation_report,
    expected_calibration_error,
    load_history,
    plot_fitting,
)

PNG = b"\x89PNG\r\n\x1a\n"


def history(train_loss, dev_acc, step=10, **extra):
    """Records as the trainer writes them: step 0 has no train loss."""
    out = [{"step": 0, "train_loss": None, "dev_accuracy": dev_acc[0]}]
    for i, (loss, acc) in enumerate(zip(train_loss, dev_acc[1:], strict=True), 1):
        out.append({"step": i * step, "train_loss": loss, "dev_accuracy": acc})
    for key, values in extra.items():
        for rec, v in zip(out, values, strict=True):
            rec[key] = v
    return out


OVERFIT = history(
    [0.62, 0.31, 0.08, 0.01, 0.002, 0.0004, 0.0001], [0.5, 0.66, 0.81, 0.88, 0.84, 0.8, 0.78, 0.75]
)
UNDERFIT = history([0.70, 0.695, 0.69, 0.692, 0.689], [0.5, 0.52, 0.5, 0.53, 0.51, 0.5])
HEALTHY = history([0.62, 0.45, 0.33, 0.26, 0.22], [0.5, 0.7, 0.8, 0.84, 0.85, 0.85])


def test_planted_over_fit_is_over_fitting():
    d = diagnose_fitting(OVERFIT, n_labels=2)
    assert d.verdict == "over-fitting", d.render_text()
    assert d.over_fitting and not d.under_fitting
    assert [e.code for e in d.evidence if e.kind == "over-fitting"] == ["dev_falling"]
    assert (d.best_step, d.best_value, d.last_value) == (30, 0.88, 0.75)
    assert any("fewer steps" in s and "step 30" in s for s in d.suggestions)
    assert any("LoRA" in s for s in d.suggestions)


def test_planted_under_fit_is_under_fitting():
    d = diagnose_fitting(UNDERFIT, n_labels=2)
    assert d.verdict == "under-fitting", d.render_text()
    assert {e.code for e in d.evidence} == {"near_chance", "train_near_chance"}
    assert any("another prompt" in s for s in d.suggestions)


def test_memorised_but_dev_at_chance_is_over_fitting():
    memorised = history([0.52, 0.11, 0.05, 0.04], [0.47, 0.5, 0.47, 0.47, 0.47])
    d = diagnose_fitting(memorised, n_labels=2)
    assert d.verdict == "over-fitting", d.render_text()
    assert [e.code for e in d.evidence if e.kind == "over-fitting"] == ["no_generalisation"]


def test_healthy_run_is_neither():
    d = diagnose_fitting(HEALTHY, n_labels=2)
    assert d.verdict == "healthy", d.render_text()
    assert not d.over_fitting and not d.under_fitting
    assert d.evidence == [] and d.suggestions == []


def test_flat_loss_with_many_labels_and_dev_loss_rising():
    flat = history([1.20, 1.19, 1.18, 1.18], [0.4, 0.45, 0.5, 0.5, 0.5])
    d = diagnose_fitting(flat, n_labels=6)  # ln 6 = 1.79: not chance-level, but flat
    assert [e.code for e in d.evidence] == ["flat_train_loss"]
    rising = history(
        [0.6, 0.4, 0.2, 0.1, 0.05], [0.5, 0.7, 0.8, 0.8, 0.8, 0.8], dev_loss=[0.7, 0.55, 0.45, 0.5, 0.6, 0.7]
    )
    d = diagnose_fitting(rising, n_labels=2)
    assert d.verdict == "over-fitting"
    assert [e.code for e in d.evidence] == ["dev_loss_rising"]


def test_measured_train_dev_gap():
    gap = history(
        [0.5, 0.3, 0.2, 0.1], [0.5, 0.6, 0.62, 0.63, 0.63], train_accuracy=[None, 0.8, 0.95, 1.0, 1.0]
    )
    d = diagnose_fitting(gap, n_labels=2)
    assert "train_dev_gap" in {e.code for e in d.evidence}
    assert d.over_fitting


def test_too_short_to_tell():
    d = diagnose_fitting(history([0.5], [0.5, 0.6]), n_labels=2)
    assert d.verdict == "too short to tell"


def write_run(tmp_path, records):
    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "train_config.json").write_text(json.dumps({"learning_rate": 1e-5, "max_steps": 70}))
    config = {"kind": "prompt", "prompt": {"labels": ["negative", "positive"]}}
    (run / "best" / "promptft_config.json").write_text(json.dumps(config))
    return run


def test_from_a_run_folder_with_plot(tmp_path):
    run = write_run(tmp_path, OVERFIT)
    d = diagnose_fitting(run)  # n_labels from the saved classifier, the learning rate from the config
    assert d.n_labels == 2 and d.chance == 0.5
    assert d.context["learning_rate"] == 1e-5
    assert any("than 1e-05" in s for s in d.suggestions)
    assert json.loads(json.dumps(d.to_dict()))["over_fitting"] is True
    assert load_history(run / "metrics.jsonl") == OVERFIT
    png = plot_fitting(run, tmp_path / "plots" / "curves.png")
    assert png.read_bytes()[:8] == PNG
    import matplotlib.image

    pixels = matplotlib.image.imread(png)
    assert pixels.std() > 0.05  # not a blank canvas


def test_a_refit_run_says_its_curves_are_the_selection_runs(tmp_path):
    run = write_run(tmp_path, OVERFIT)
    assert "refit" not in diagnose_fitting(run).render_text()
    refit = {"n_examples": 64, "steps": 30, "scale": "steps", "train_time_s": 9.0}
    (run / "final_metrics.json").write_text(json.dumps({"best_step": 30, "refit": refit}))
    text = diagnose_fitting(run).render_text()
    assert "refit: the saved model was trained again on train + dev, 64 examples, for 30 steps" in text
    (run / "final_metrics.json").write_text("{not json")  # unreadable: the curves are still diagnosed
    assert "refit" not in diagnose_fitting(run).render_text()


def test_history_errors(tmp_path):
    with pytest.raises(DataError, match="metrics.jsonl"):
        load_history(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"step": 0}\n{"step": 1')
    with pytest.raises(DataError, match="line 2"):
        load_history(tmp_path)


# ---------------------------------------------------------------------------------------------------------
# evaluation report


def test_ece_of_a_hand_checked_case():
    # Bin (0.8, 0.9]: 2 rows, confidence 0.9, accuracy 0.5 -> 2/4 * 0.4. Bin (0.5, 0.6]: 2 rows, confidence
    # 0.6, accuracy 1.0 -> 2/4 * 0.4. ECE = 0.4.
    ece, bins = expected_calibration_error([0.9, 0.9, 0.6, 0.6], [1, 0, 1, 1], n_bins=10)
    assert ece == pytest.approx(0.4)
    assert [b["count"] for b in bins] == [0, 0, 0, 0, 0, 2, 0, 0, 2, 0]
    perfect, _ = expected_calibration_error([1.0, 1.0, 0.5, 0.5], [1, 1, 1, 0])
    assert perfect == pytest.approx(0.0)
    with pytest.raises(DataError, match="logits"):
        expected_calibration_error([1.5], [1])


def test_report_numbers_by_hand(tmp_path):
    labels = ["neg", "pos"]
    gold = ["neg", "neg", "pos", "pos", "pos"]
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.4, 0.6], [0.95, 0.05]])
    examples = [Example({"text": f"review {i}"}, g) for i, g in enumerate(gold)]
    r = evaluation_report(gold, probs, labels, examples=examples)
    # predictions: neg, pos, pos, pos, neg -> neg: P 1/2, R 1/2; pos: P 2/3, R 2/3
    assert r.accuracy == pytest.approx(3 / 5)
    assert r.per_class["neg"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert r.per_class["pos"]["precision"] == pytest.approx(2 / 3)
    assert r.macro_f1 == pytest.approx((0.5 + 2 / 3) / 2)
    assert r.confusion.tolist() == [[1, 1], [1, 2]]
    assert [m["row"] for m in r.confident_mistakes] == [5, 2]  # 0.95 wrong before 0.7 wrong
    assert r.confident_mistakes[0] == pytest.approx(
        {"row": 5, "gold": "pos", "predicted": "neg", "confidence": 0.95, "p_gold": 0.05, "text": "review 4"}
    )
    # ECE: confidences .9 .7 .8 .6 .95 -> bins (.8,.9]: 1 right; (.6,.7]: 1 wrong; (.7,.8]: 1 right;
    # (.5,.6]: 1 right; (.9,1]: 1 wrong -> (0.1 + 0.7 + 0.2 + 0.4 + 0.95) / 5
    assert r.ece == pytest.approx((0.1 + 0.7 + 0.2 + 0.4 + 0.95) / 5)
    data = json.loads(json.dumps(r.to_dict()))
    assert data["confusion"]["matrix"] == [[1, 1], [1, 2]]
    md = r.render_markdown()
    assert "| neg | 0.500 | 0.500 | 0.500 | 2 |" in md and "review 4" in md
    paths = r.save_plots(tmp_path)
    assert {p.read_bytes()[:8] for p in paths.values()} == {PNG}


def test_report_input_errors():
    with pytest.raises(DataError, match="shape"):
        evaluation_report(["a", "b"], np.ones((2, 3)), ["a", "b"])
    with pytest.raises(DataError, match="not in labels"):
        evaluation_report(["a", "c"], None, ["a", "b"], predictions=["a", "b"])
    r = evaluation_report(["a", "b"], None, ["a", "b"], predictions=["a", "a"])
    assert r.ece is None and r.confident_mistakes[0]["row"] == 2
