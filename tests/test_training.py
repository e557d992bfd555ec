import json

import pytest
import torch

from promptft import Example, PromptClassifier, TrainConfig
from promptft.errors import ConfigError, DataError, RunDirError
from promptft.models import backbone_from_model
from promptft.training import Trainer, batch_schedule
from tiny import tiny_llama

TRAIN = [
    Example({"text": t}, lab)
    for t, lab in [
        ("I loved it", "positive"),
        ("a wonderful film", "positive"),
        ("I hated it", "negative"),
        ("an awful mess", "negative"),
        ("good acting", "positive"),
        ("boring and bad", "negative"),
        ("it was great fun", "positive"),
        ("terrible plot", "negative"),
    ]
]
DEV = TRAIN[:4]


def make():
    model, tok = tiny_llama(seed=1)
    clf = PromptClassifier(
        backbone_from_model(model, tok, "causal"),
        "{text} It was {mask}.",
        {"negative": "terrible", "positive": "great"},
    )
    clf.set_finetune("full")
    return clf


def cfg(**kw):
    base = dict(
        learning_rate=5e-3,
        batch_size=4,
        max_steps=12,
        eval_every=4,
        progress=False,
        early_stopping_patience=None,
        seed=3,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_training_lowers_the_loss_and_fits_the_data():
    clf = make()
    result = clf.fit(TRAIN, None, cfg(max_steps=40, eval_every=10))
    losses = [h["train_loss"] for h in result.history if h["train_loss"] is not None]
    assert losses[-1] < losses[0]
    assert clf.evaluate(TRAIN)["accuracy"] == 1.0


def test_same_seed_same_result():
    a, b = make(), make()
    ra = a.fit(TRAIN, DEV, cfg())
    rb = b.fit(TRAIN, DEV, cfg())
    assert [h["train_loss"] for h in ra.history] == [h["train_loss"] for h in rb.history]
    torch.testing.assert_close(torch.tensor(a.predict_proba(TRAIN)), torch.tensor(b.predict_proba(TRAIN)))


def test_best_dev_checkpoint_is_restored():
    clf = make()
    result = clf.fit(TRAIN, DEV, cfg())
    best = [h for h in result.history if h["step"] == result.best_step][0]
    assert clf.evaluate(DEV)["accuracy"] == pytest.approx(best["dev_accuracy"])
    assert result.best_dev["accuracy"] == max(h["dev_accuracy"] for h in result.history)


def test_early_stopping_stops():
    clf = make()
    result = clf.fit(
        TRAIN, DEV, cfg(learning_rate=1e-9, max_steps=100, eval_every=2, early_stopping_patience=2)
    )
    assert result.stopped_early and result.steps < 100


def test_run_dir_contents_and_no_overwrite(tmp_path):
    clf = make()
    run = tmp_path / "run"
    clf.fit(TRAIN, DEV, cfg(), run_dir=run)
    assert json.loads((run / "final_metrics.json").read_text())["steps"] == 12
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [0, 4, 8, 12]
    assert (run / "best" / "promptft_config.json").exists()
    assert not (run / "checkpoint").exists()
    before = (run / "final_metrics.json").read_text()
    with pytest.raises(RunDirError, match="never overwrites"):
        make().fit(TRAIN, DEV, cfg(), run_dir=run)
    assert (run / "final_metrics.json").read_text() == before


def test_foreign_non_empty_dir_is_refused(tmp_path):
    (tmp_path / "results.csv").write_text("precious")
    with pytest.raises(RunDirError, match="not empty"):
        make().fit(TRAIN, DEV, cfg(), run_dir=tmp_path)
    assert (tmp_path / "results.csv").read_text() == "precious"


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    reference = make()
    ref_result = reference.fit(TRAIN, DEV, cfg())

    class Interrupt(Exception):
        pass

    clf = make()
    original = clf.label_logits
    calls = {"n": 0}

    def flaky(batch):
        if clf.module.training:
            calls["n"] += 1
            if calls["n"] == 7:  # after the checkpoint at step 4
                raise Interrupt
        return original(batch)

    clf.label_logits = flaky
    with pytest.raises(Interrupt):
        Trainer(clf, cfg(), run_dir=tmp_path / "run").train(TRAIN, DEV)
    assert (tmp_path / "run" / "checkpoint" / "state.pt").exists()

    resumed = make()
    result = Trainer(resumed, cfg(), run_dir=tmp_path / "run").train(TRAIN, DEV)
    assert [h["train_loss"] for h in result.history] == pytest.approx(
        [h["train_loss"] for h in ref_result.history]
    )
    torch.testing.assert_close(
        torch.tensor(resumed.predict_proba(TRAIN)), torch.tensor(reference.predict_proba(TRAIN))
    )


def test_resume_with_other_config_is_refused(tmp_path):
    clf = make()
    clf.fit(TRAIN, DEV, cfg(max_steps=4, eval_every=2, checkpoint_every=2), run_dir=tmp_path / "run")
    (tmp_path / "run" / "final_metrics.json").unlink()
    (tmp_path / "run" / "checkpoint").mkdir()
    torch.save({}, tmp_path / "run" / "checkpoint" / "state.pt")
    with pytest.raises(RunDirError, match="different training config"):
        make().fit(TRAIN, DEV, cfg(max_steps=8), run_dir=tmp_path / "run")


def test_empty_train_and_bad_config_errors():
    with pytest.raises(DataError, match="empty"):
        make().fit([], DEV, cfg())
    with pytest.raises(ConfigError, match="learning_rate"):
        TrainConfig(learning_rate=0)
    with pytest.raises(ConfigError, match="unknown training option"):
        TrainConfig.from_dict({"lr": 1})


def test_config_yaml_roundtrip(tmp_path):
    c = cfg(learning_rate=1e-4)
    c.to_yaml(tmp_path / "c.yaml")
    assert TrainConfig.from_yaml(tmp_path / "c.yaml") == c


def test_batch_schedule_is_deterministic_and_groups_lengths():
    lengths = list(range(32))
    a = batch_schedule(lengths, 4, 20, seed=1, group_by_length=True)
    assert a == batch_schedule(lengths, 4, 20, seed=1, group_by_length=True)
    assert a != batch_schedule(lengths, 4, 20, seed=2, group_by_length=True)
    epoch = sorted(i for b in a[:8] for i in b)
    assert epoch == list(range(32))  # each epoch covers every example once
    spread_grouped = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in a)
    plain = batch_schedule(lengths, 4, 20, seed=1, group_by_length=False)
    spread_plain = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in plain)
    assert spread_grouped < spread_plain


def test_gradient_accumulation_counts_optimizer_steps():
    clf = make()
    result = clf.fit(TRAIN, DEV, cfg(batch_size=2, grad_accum=2, max_steps=6, eval_every=3))
    assert result.steps == 6 and [h["step"] for h in result.history] == [0, 3, 6]
    other = make()
    other.fit(TRAIN, DEV, cfg(batch_size=2, grad_accum=1, max_steps=6, eval_every=3))
    assert not torch.allclose(
        torch.tensor(clf.predict_proba(TRAIN)), torch.tensor(other.predict_proba(TRAIN))
    )


def test_head_baseline_learns_the_training_data(tmp_path):
    from promptft import HeadClassifier

    model, tok = tiny_llama(seed=1)
    model.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    clf = HeadClassifier.from_model(str(tmp_path / "base"), ["negative", "positive"], device="cpu", seed=0)
    clf.fit(TRAIN, None, cfg(learning_rate=1e-2, max_steps=40, eval_every=10))
    assert clf.evaluate(TRAIN)["accuracy"] == 1.0


def test_on_run_dir_hook_sees_the_prepared_folder(tmp_path):
    seen = []

    def hook(run_dir):
        seen.append(sorted(p.name for p in run_dir.iterdir()))

    Trainer(make(), cfg(max_steps=2, eval_every=2), run_dir=tmp_path / "run", on_run_dir=hook).train(
        TRAIN, DEV
    )
    assert seen == [["metrics.jsonl", "train_config.json"]]
