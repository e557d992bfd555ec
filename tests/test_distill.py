"""Distillation: the soft-label objective, labelling a pool (with resume), and a tiny teacher distilled
into a tiny BERT student through the recipe and the CLI; the student is a normal classifier."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from promptft import Example, HeadClassifier, PromptClassifier, TrainConfig, load_classifier
from promptft.cli import app
from promptft.deploy.distill import soft_examples, teacher_logits, teacher_task
from promptft.errors import ConfigError, DataError, PromptFTError, RunDirError
from promptft.models import backbone_from_model
from promptft.objectives import MultiLabel, Regression, SingleLabel, SoftLabel, objective_from_dict
from promptft.recipes.distill import LABELS_FILE, distill, label_pool
from tiny import tiny_bert, tiny_llama

WORDS = {"negative": "terrible", "positive": "great"}
TEXTS = [
    "I loved it",
    "a wonderful film",
    "I hated it",
    "an awful mess",
    "good acting",
    "boring and bad",
    "great fun",
    "terrible plot",
    "a moving film",
    "I loved the acting",
    "bad and boring",
    "it was good",
]


def teacher(seed=0):
    model, tok = tiny_llama(seed)
    return PromptClassifier(
        backbone_from_model(model, tok, "causal"), "{text} It was {mask}.", WORDS, max_length=64
    )


# ----- the objective -----


def test_soft_label_loss_is_temperature_scaled_kl():
    obj = SoftLabel(["a", "b", "c"], temperature=2.0)
    student = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    q = torch.softmax(student / 2.0, -1)
    expected = 4.0 * (torch.xlogy(target, target) - target * q.log()).sum(-1)
    torch.testing.assert_close(obj.loss(student, target), expected)
    # zero when the student's tempered distribution is the target
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    assert obj.loss(logits, torch.softmax(logits / 2.0, -1)).item() == pytest.approx(0, abs=1e-6)
    # T=1 on one-hot rows is cross-entropy
    ce = torch.nn.functional.cross_entropy(student, torch.tensor([2, 0]), reduction="none")
    torch.testing.assert_close(SoftLabel(["a", "b", "c"]).loss(student, torch.eye(3)[[2, 0]]), ce)


def test_soft_label_targets_decoding_metrics_and_saving():
    obj = SoftLabel(["neg", "pos"], temperature=3.0)
    examples = [Example({"text": "x"}, (0.9, 0.1)), Example({"text": "y"}, "pos")]
    torch.testing.assert_close(obj.targets(examples), torch.tensor([[0.9, 0.1], [0.0, 1.0]]))
    assert obj.decode(torch.tensor([[2.0, 0.0], [0.0, 1.0]])) == ["neg", "pos"]
    metrics = obj.evaluate(examples, ["neg", "neg"])  # gold: argmax of the soft row, the name
    assert metrics["accuracy"] == 0.5 and metrics["n"] == 2
    again = objective_from_dict(obj.to_dict(), ["neg", "pos"])
    assert isinstance(again, SoftLabel) and again.temperature == 3.0
    for bad in [(0.5, 0.6), (0.5,), ("a", "b"), (-0.1, 1.1)]:
        with pytest.raises(DataError, match="soft label|probabilities"):
            obj.targets([Example({"text": "x"}, bad)])
    with pytest.raises(DataError, match="unknown label"):
        obj.targets([Example({"text": "x"}, "maybe")])
    with pytest.raises(ConfigError, match="temperature"):
        SoftLabel(["a", "b"], temperature=0)


# ----- labelling -----


def test_teacher_logits_average_an_ensemble_in_log_space():
    a, b = teacher(0), teacher(1)
    examples = [Example({"text": t}) for t in TEXTS[:4]]
    la = torch.log_softmax(a.logits_encoded(a.encode(examples)), -1)
    lb = torch.log_softmax(b.logits_encoded(b.encode(examples)), -1)
    torch.testing.assert_close(teacher_logits([a, b], examples), (la + lb) / 2)
    soft = soft_examples(examples, (la + lb) / 2, a.objective, temperature=2.0)
    np.testing.assert_allclose([sum(ex.label) for ex in soft], 1, atol=1e-6)
    assert isinstance(soft[0].label, tuple)


def test_teachers_may_list_the_labels_in_another_order():
    a = teacher(0)
    model, tok = tiny_llama(1)
    swapped = PromptClassifier(
        backbone_from_model(model, tok, "causal"),
        "{text} It was {mask}.",
        {label: WORDS[label] for label in reversed(list(WORDS))},
        max_length=64,
    )
    assert swapped.labels == list(reversed(a.labels))
    examples = [Example({"text": t}) for t in TEXTS[:4]]
    la = torch.log_softmax(a.logits_encoded(a.encode(examples)), -1)
    lb = torch.log_softmax(swapped.logits_encoded(swapped.encode(examples)), -1).flip(-1)
    torch.testing.assert_close(teacher_logits([a, swapped], examples), (la + lb) / 2)  # in a's order
    assert teacher_task([a, swapped]).labels == a.labels


def test_teacher_task_checks_the_ensemble():
    a = teacher()
    other = PromptClassifier(
        backbone_from_model(*tiny_llama(), "causal"), "{text} {mask}", {"bad": "terrible", "good": "great"}
    )
    with pytest.raises(PromptFTError, match="share one label set"):
        teacher_task([a, other])
    multi = teacher()
    multi.objective = MultiLabel(multi.labels)
    with pytest.raises(PromptFTError, match="multi_label"):
        teacher_task([multi])
    assert teacher_task([a]).name == "single_label"


def test_label_pool_resumes_and_refuses_other_teachers(tmp_path, monkeypatch):
    import promptft.recipes.distill as recipe

    monkeypatch.setattr(recipe, "_CHUNK", 4)
    t = teacher()
    pool = [Example({"text": s}) for s in TEXTS]
    path = tmp_path / LABELS_FILE
    header = {"teachers": ["t"], "pool": "p", "n": len(pool), "seed": 1}
    full = label_pool([t], pool, path, header)
    # an interruption after one chunk, with a cut last line
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:5]) + "\n" + lines[5][:10])
    calls = []
    import promptft.deploy.distill as building

    original = building.teacher_logits

    def counting(teachers, examples, *args):
        calls.append(len(examples))
        return original(teachers, examples, *args)

    monkeypatch.setattr(building, "teacher_logits", counting)
    again = label_pool([t], pool, path, header)
    assert calls == [4, 4]  # the first chunk was read back, not labelled again
    np.testing.assert_allclose(again, full, atol=1e-6)
    assert len(path.read_text().splitlines()) == len(pool) + 1
    with pytest.raises(RunDirError, match="other teachers"):
        label_pool([t], pool, path, {**header, "teachers": ["other"]})


# ----- end to end -----


@pytest.fixture
def files(tmp_path):
    t = teacher()
    t.save_pretrained(tmp_path / "teacher")
    bert, tok = tiny_bert()
    bert.save_pretrained(tmp_path / "bert")
    tok.save_pretrained(tmp_path / "bert")
    pool = tmp_path / "pool.tsv"
    pool.write_text("sentence\tlabel\n" + "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(TEXTS + TEXTS)))
    test = tmp_path / "test.tsv"
    test.write_text("sentence\tlabel\n" + "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(TEXTS[:6])))
    return tmp_path, t


def test_distill_recipe_trains_a_student_that_is_a_normal_classifier(files):
    tmp_path, t = files
    cfg = TrainConfig(learning_rate=1e-3, batch_size=4, max_steps=8, eval_every=4, progress=False)
    summary = distill(
        tmp_path / "teacher",
        tmp_path / "pool.tsv",
        tmp_path / "out",
        student=str(tmp_path / "bert"),
        temperature=2.0,
        train=cfg,
        dev_fraction=0.25,
        test=tmp_path / "test.tsv",
        columns={"label_map": {"0": "negative", "1": "positive"}},
        device="cpu",
    )
    assert summary["pool_size"] == len(TEXTS)  # duplicates dropped
    assert summary["train_size"] == 9 and summary["task"] == "single_label"
    assert 0 <= summary["test"]["accuracy"] <= 1 and summary["test"]["n"] == 6
    lines = (tmp_path / "out" / LABELS_FILE).read_text().splitlines()
    assert len(lines) == len(TEXTS) + 1
    student = load_classifier(tmp_path / "out" / "student" / "best", device="cpu")
    assert isinstance(student, HeadClassifier) and isinstance(student.objective, SingleLabel)
    assert student.objective.name == "single_label"
    assert student.labels == t.labels
    probs = student.predict_proba(TEXTS)
    assert probs.shape == (len(TEXTS), 2)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert set(student.predict(TEXTS)) <= set(t.labels)
    saved = json.loads((tmp_path / "out" / "distill.json").read_text())
    assert saved["best_step"] == summary["best_step"]
    with pytest.raises(RunDirError, match="finished distillation"):
        distill(tmp_path / "teacher", tmp_path / "pool.tsv", tmp_path / "out", student=str(tmp_path / "bert"))


def test_student_learns_the_teacher():
    """Training on the soft labels moves the student's distribution towards the teacher's."""
    t = teacher()
    examples = [Example({"text": s}) for s in TEXTS]
    logits = teacher_logits([t], examples)
    soft = soft_examples(examples, logits, t.objective, temperature=1.0)
    bert, tok = tiny_bert()
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(**{**bert.config.to_dict(), "num_labels": 2})
    student = HeadClassifier(BertForSequenceClassification(cfg), tok, t.labels, max_length=32)
    target = torch.softmax(logits, -1)

    def gap():
        return float(
            SoftLabel(t.labels).loss(student.logits_encoded(student.encode(examples)), target).mean()
        )

    before = gap()
    from promptft.training import Trainer

    cfg = TrainConfig(learning_rate=3e-3, batch_size=6, max_steps=30, eval_every=30, progress=False)
    Trainer(student, cfg, objective=SoftLabel(t.labels)).train(soft)
    assert gap() < 0.5 * before


def test_regression_teacher_distils_into_a_value_head(tmp_path):
    model, tok = tiny_llama()
    reg = PromptClassifier(
        backbone_from_model(model, tok, "causal"),
        "{text} Good? {mask}",
        {"low": "terrible", "high": "great"},
        max_length=64,
        objective=Regression(["low", "high"], value_range=(0, 5)),
    )
    examples = [Example({"text": s}) for s in TEXTS]
    values = teacher_logits([reg], examples)
    assert values.shape == (len(TEXTS), 1) and float(values.min()) >= 0 and float(values.max()) <= 5
    soft = soft_examples(examples, values, reg.objective, temperature=2.0)
    assert all(isinstance(ex.label, float) for ex in soft)
    from promptft.deploy.distill import student_objective

    trains_on, keeps = student_objective(reg.objective, 2.0)
    assert trains_on is keeps and keeps.labels == ["value"] and keeps.value_range == (0.0, 5.0)


def test_cli_distill_and_user_errors(files):
    tmp_path, _ = files
    runner = CliRunner()
    args = ["distill", str(tmp_path / "teacher"), "--unlabeled", str(tmp_path / "pool.tsv")]
    common = ["--student", str(tmp_path / "bert"), "--steps", "2", "--device", "cpu", "--no-progress"]
    result = runner.invoke(app, [*args, "--output", str(tmp_path / "cli"), *common, "--json"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    summary = json.loads(result.stdout)
    assert summary["train"]["max_steps"] == 2
    assert (tmp_path / "cli" / "student" / "best" / "promptft_config.json").exists()
    default = runner.invoke(app, [*args, *common, "--dev-fraction", "0.2"])
    assert default.exit_code == 0, default.output + repr(default.exception)
    assert (tmp_path / "teacher-student" / "student" / "best").is_dir()  # beside the run by default
    missing = runner.invoke(app, ["distill", str(tmp_path / "teacher"), "--unlabeled", "nope.tsv", "-o", "x"])
    assert missing.exit_code == 2 and "not found" in missing.stderr
    bad = runner.invoke(app, [*args, "--output", str(tmp_path / "b"), *common, "--set", "warmup_ratoi=0.1"])
    assert bad.exit_code == 2 and "warmup_ratio" in bad.stderr


@pytest.mark.parametrize("command", ["distill", "prune"])
def test_help_has_an_example(command):
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Example" in result.stdout and f"promptft {command} " in result.stdout
