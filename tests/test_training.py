import json
import shutil

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


class Interrupt(Exception):
    pass


def interrupt_at(clf, call):
    """Raise Interrupt at the `call`-th training forward pass (through the module, as the trainer calls it)."""
    calls = {"n": 0}

    def hook(module, args):
        if module.training:
            calls["n"] += 1
            if calls["n"] == call:
                raise Interrupt

    return clf.module.register_forward_pre_hook(hook)


def with_dropout(clf, p=0.1):
    for layer in clf.backbone.model.model.layers:
        layer.self_attn.attention_dropout = p
    return clf


def weights(clf):
    return {k: v.clone() for k, v in clf.module.state_dict().items()}


@pytest.mark.parametrize("checkpoint_every", [None, 2])
def test_interrupted_run_resumes_bit_for_bit_with_dropout(tmp_path, checkpoint_every):
    """Dropout on: the resumed run matches only if every RNG state is saved and restored. With a
    checkpoint between evaluations, the loss logged at the next evaluation still covers all its steps."""
    config = cfg(max_steps=12, eval_every=4, checkpoint_every=checkpoint_every)
    reference = with_dropout(make())
    ref_result = Trainer(reference, config).train(TRAIN, DEV)

    clf = with_dropout(make())
    interrupt_at(clf, 7)  # after the checkpoint at step 4 (or 6)
    with pytest.raises(Interrupt):
        Trainer(clf, config, run_dir=tmp_path / "run").train(TRAIN, DEV)
    saved_step = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())["step"]
    assert saved_step == (checkpoint_every and 6 or 4)
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoint").iterdir())
    assert names == [
        "best.safetensors",
        "optimizer.safetensors",
        "rng.safetensors",
        "state.json",
        "trainable.safetensors",
    ]  # no pickle anywhere

    resumed = with_dropout(make())
    result = Trainer(resumed, config, run_dir=tmp_path / "run").train(TRAIN, DEV)

    def no_time(history):
        return [{k: v for k, v in h.items() if k != "elapsed_s"} for h in history]

    assert no_time(result.history) == no_time(ref_result.history)  # losses and dev metrics, exactly
    ref_w, res_w = weights(reference), weights(resumed)
    assert all(torch.equal(ref_w[k], res_w[k]) for k in ref_w)
    # dropout really is on: without it, training gives other weights
    plain = make()
    Trainer(plain, config).train(TRAIN, DEV)
    assert not all(torch.equal(ref_w[k], v) for k, v in weights(plain).items())


def test_checkpoint_round_trips_every_rng(tmp_path):
    import random

    import numpy as np

    from promptft.training.checkpoint import TrainingState, capture_rng, load_checkpoint, save_checkpoint

    clf = make()
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    state = TrainingState(
        step=1,
        trainable=clf.trainable_state(),
        optimizer={"state": {}, "param_groups": []},
        scheduler={"last_epoch": 1},
        rng=[capture_rng()],
    )
    save_checkpoint(tmp_path, state)
    expected = (random.random(), np.random.rand(), torch.rand(3))
    loaded = load_checkpoint(tmp_path, {k: tuple(v.shape) for k, v in clf.trainable_state().items()})
    from promptft.training.checkpoint import restore_rng

    restore_rng(loaded.rng[0])
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert got[:2] == expected[:2] and torch.equal(got[2], expected[2])


@pytest.mark.parametrize("damage", ["empty_files", "truncated", "no_state", "other_model", "pickle"])
def test_corrupt_checkpoint_says_how_to_restart(tmp_path, damage):
    run = tmp_path / "run"
    clf = make()
    interrupt_at(clf, 7)
    with pytest.raises(Interrupt):
        Trainer(clf, cfg(), run_dir=run).train(TRAIN, DEV)
    ckpt = run / "checkpoint"
    if damage == "empty_files":
        for f in ckpt.iterdir():
            f.write_bytes(b"")
    elif damage == "truncated":
        data = (ckpt / "optimizer.safetensors").read_bytes()
        (ckpt / "optimizer.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "no_state":
        (ckpt / "state.json").unlink()
    elif damage == "pickle":  # the first edition's format is refused, never unpickled
        shutil.rmtree(ckpt)
        ckpt.mkdir()
        (ckpt / "state.pt").write_bytes(b"not loaded")
        with pytest.raises(RunDirError, match="older promptft.*delete the folder"):
            Trainer(make(), cfg(), run_dir=run).train(TRAIN, DEV)
        return
    else:  # a checkpoint whose weights have other shapes (another model wrote it)
        from safetensors.torch import load_file, save_file

        saved = load_file(ckpt / "trainable.safetensors")
        save_file({k: v[..., :1].contiguous() for k, v in saved.items()}, ckpt / "trainable.safetensors")
        with pytest.raises(RunDirError, match="belongs to another model"):
            Trainer(make(), cfg(), run_dir=run).train(TRAIN, DEV)
        return
    with pytest.raises(RunDirError, match="cannot be read") as err:
        Trainer(make(), cfg(), run_dir=run).train(TRAIN, DEV)
    assert "delete the folder" in str(err.value) and "another output folder" in str(err.value)
    shutil.rmtree(ckpt)  # what the message says to do: the run restarts and finishes
    assert Trainer(make(), cfg(), run_dir=run).train(TRAIN, DEV).steps == 12


def test_resume_with_other_config_is_refused(tmp_path):
    clf = make()
    clf.fit(TRAIN, DEV, cfg(max_steps=4, eval_every=2, checkpoint_every=2), run_dir=tmp_path / "run")
    (tmp_path / "run" / "final_metrics.json").unlink()
    (tmp_path / "run" / "checkpoint").mkdir()
    (tmp_path / "run" / "checkpoint" / "state.json").write_text("{}")
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


def test_gradient_accumulation_2x2_is_one_batch_of_4():
    """Same update whether a step's 4 examples run as 2 micro-batches of 2 or 1 batch of 4. With 7
    examples every other step has 3 (micro-batches of 2 and 1): averaging the two micro-batch means
    would weigh them wrongly, so this catches a loss that is not the mean over the whole step."""
    seven = TRAIN[:7]
    accumulated, whole = make(), make()
    ra = Trainer(accumulated, cfg(batch_size=2, grad_accum=2, max_steps=6, eval_every=3)).train(seven, None)
    rb = Trainer(whole, cfg(batch_size=4, grad_accum=1, max_steps=6, eval_every=3)).train(seven, None)
    a, b = weights(accumulated), weights(whole)
    # Float noise, amplified where Adam divides tiny gradients by their own size: on one CPU 0.02% of the
    # elements moved more than 1e-4 (at most 2.7e-4). Other data (the 7th example left out) moves 45% of
    # them, up to 3e-2, and the mean-of-micro-batch-means bug moves weights by ~1e-2.
    moved = torch.cat([(a[name] - b[name]).abs().flatten() for name in a])
    assert (moved > 1e-4).float().mean() < 1e-2 and moved.max() < 2e-3
    assert [h["train_loss"] for h in ra.history] == pytest.approx(
        [h["train_loss"] for h in rb.history], rel=1e-4
    )
    untrained = weights(make())
    assert any(not torch.equal(a[name], untrained[name]) for name in a)


@pytest.mark.parametrize("patience", [0, -1])
def test_patience_below_one_is_refused(patience):
    # -1 used to train 0 steps and mark the run finished
    with pytest.raises(ConfigError, match="early_stopping_patience must be >= 1"):
        TrainConfig(early_stopping_patience=patience)
    assert TrainConfig(early_stopping_patience=None).early_stopping_patience is None


def test_mixed_precision_switch():
    assert TrainConfig().mixed_precision == "no"  # fp32 on CPU unless asked
    with pytest.raises(ConfigError, match="mixed_precision"):
        TrainConfig.from_dict({"mixed_precision": "fp8"})
    with pytest.raises(ConfigError, match="fp16.*needs a GPU"):
        make().fit(TRAIN, None, cfg(mixed_precision="fp16", max_steps=1))
    clf = make()
    before = weights(clf)
    result = clf.fit(TRAIN, None, cfg(mixed_precision="bf16", max_steps=2, eval_every=2))
    assert result.steps == 2 and all(h["train_loss"] is None or h["train_loss"] > 0 for h in result.history)
    after = weights(clf)
    assert all(v.dtype == torch.float32 for v in after.values())  # autocast, not a cast of the weights
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert "_original_forward" not in vars(clf.module)  # accelerate's autocast wrapper is gone afterwards
    # and a later fp32 run in the same process is plain fp32 again
    again = make()
    again.fit(TRAIN, None, cfg(max_steps=1))


def test_progress_lines_when_not_a_terminal(caplog):
    import logging

    caplog.set_level(logging.INFO, logger="promptft.training")
    # pytest's stdout is not a terminal: lines, even with progress on (a bar would show only at the end)
    make().fit(TRAIN, DEV, cfg(max_steps=40, eval_every=20, progress=True))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    # at every evaluation and every 10% of the steps
    assert [int(line.split()[1].split("/")[0]) for line in lines] == list(range(0, 41, 4))
    assert lines[5].startswith("step 20/40 (50%) loss ") and "dev accuracy" in lines[5]
    assert all(line.endswith(" s") for line in lines)  # elapsed time


def test_best_model_replaced_atomically(tmp_path):
    from promptft.files import write_dir_atomically

    target = tmp_path / "best"
    target.mkdir()
    (target / "weights").write_text("old")

    def crash(tmp):
        (tmp / "weights").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_dir_atomically(target, crash)
    assert (target / "weights").read_text() == "old"  # the previous best survives a crash mid-write
    write_dir_atomically(target, lambda tmp: (tmp / "weights").write_text("new"))
    assert (target / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_finished_run_leaves_no_temporary_folders(tmp_path):
    run = tmp_path / "run"
    (run / "best.tmp").mkdir(parents=True)  # a crash during an earlier attempt's first best/ write
    make().fit(TRAIN, DEV, cfg(), run_dir=run)
    names = sorted(p.name for p in run.iterdir())
    assert names == ["best", "final_metrics.json", "metrics.jsonl", "train_config.json"]


def test_keeping_the_untrained_model_is_said_with_the_switch(caplog):
    import logging

    caplog.set_level(logging.WARNING, logger="promptft.training")
    result = make().fit(TRAIN, DEV, cfg(learning_rate=1e-12, max_steps=4, eval_every=2))
    assert result.best_step == 0  # nothing moved: later checkpoints only tie, and ties keep the earlier one
    warned = [r.getMessage() for r in caplog.records if "untrained model" in r.getMessage()]
    assert len(warned) == 1 and "--set train.eval_at_start=false" in warned[0]
    assert "--set train.tie_break=dev_loss" in warned[0]

    caplog.clear()
    result = make().fit(TRAIN, DEV, cfg(learning_rate=1e-12, max_steps=4, eval_every=2, eval_at_start=False))
    assert result.best_step == 2
    assert not [r for r in caplog.records if "untrained model" in r.getMessage()]


def test_tie_break_dev_loss_keeps_the_tied_step_with_the_lowest_dev_loss():
    config = cfg(max_steps=12, eval_every=2)
    first = make().fit(TRAIN, DEV, config)
    by_loss = make().fit(TRAIN, DEV, config.replace(tie_break="dev_loss"))
    evals = [h for h in by_loss.history if "dev_accuracy" in h]
    top = max(h["dev_accuracy"] for h in evals)
    tied = [h for h in evals if h["dev_accuracy"] == top]
    lowest = min(tied, key=lambda h: h["dev_loss"])
    assert len(tied) > 1 and lowest is not tied[0]  # a tie that the two rules decide differently
    assert first.best_step == tied[0]["step"]
    assert "dev_loss" not in first.history[0]  # computed only when it decides
    assert by_loss.best_step == lowest["step"]
    assert by_loss.best_dev["loss"] == lowest["dev_loss"]
    with pytest.raises(ConfigError, match="tie_break must be one of 'first', 'dev_loss'"):
        cfg(tie_break="last")


def test_refit_trains_the_start_again_on_train_and_dev_for_the_chosen_steps(tmp_path):
    clf = make()
    result = clf.fit(
        TRAIN[4:],
        DEV,
        cfg(max_steps=12, eval_every=4, eval_at_start=False, refit=True),
        run_dir=tmp_path / "run",
    )
    assert 0 < result.best_step < 12  # stopped before the schedule's end: the refit must keep that schedule
    assert result.refit == {
        "n_examples": 8,
        "steps": result.best_step,
        "scale": "steps",
        "train_time_s": pytest.approx(0, abs=60),
    }
    # the same as training the starting model on train + dev for those steps, on the selection run's schedule
    again = make()
    same = cfg(max_steps=result.best_step, eval_at_start=False, early_stopping_patience=None)
    Trainer(again, same, schedule_steps=12).train([*TRAIN[4:], *DEV])
    torch.testing.assert_close(
        torch.tensor(clf.predict_proba(TRAIN)), torch.tensor(again.predict_proba(TRAIN))
    )
    # the saved model is the refit one, and the card says so
    saved = PromptClassifier.from_pretrained(tmp_path / "run" / "best")
    torch.testing.assert_close(
        torch.tensor(saved.predict_proba(TRAIN)), torch.tensor(clf.predict_proba(TRAIN))
    )
    assert (
        "refit: trained again from the start on train + dev (8 examples)"
        in (tmp_path / "run" / "best" / "README.md").read_text()
    )
    final = json.loads((tmp_path / "run" / "final_metrics.json").read_text())
    assert final["refit"]["steps"] == result.best_step


def test_refit_needs_dev_and_skips_a_kept_untrained_model():
    with pytest.raises(ConfigError, match="give a dev split"):
        make().fit(TRAIN, None, cfg(refit=True))
    result = make().fit(TRAIN, DEV, cfg(learning_rate=1e-12, max_steps=4, eval_every=2, refit=True))
    assert result.best_step == 0 and result.refit is None  # nothing trained was kept: nothing to refit


def test_a_refit_interrupted_resumes_from_the_selection_runs_checkpoint(tmp_path):
    config = cfg(max_steps=12, eval_every=4, eval_at_start=False, refit=True)
    reference = make()
    ref_result = Trainer(reference, config).train(TRAIN[4:], DEV)

    clf = make()
    interrupt_at(clf, 12 + 2)  # the selection run's 12 training forwards, then into the refit
    with pytest.raises(Interrupt):
        Trainer(clf, config, run_dir=tmp_path / "run").train(TRAIN[4:], DEV)
    assert not (tmp_path / "run" / "final_metrics.json").exists()  # unfinished: no model saved yet

    resumed = make()
    result = Trainer(resumed, config, run_dir=tmp_path / "run").train(TRAIN[4:], DEV)
    assert result.refit["steps"] == ref_result.refit["steps"] == ref_result.best_step
    ref_w, res_w = weights(reference), weights(resumed)
    assert all(torch.equal(ref_w[k], res_w[k]) for k in ref_w)


def test_refit_counted_in_epochs_stretches_the_steps_and_the_schedule():
    clf = make()
    config = cfg(max_steps=12, eval_every=4, eval_at_start=False, refit=True, refit_scale="epochs")
    result = clf.fit(TRAIN[4:], DEV, config)  # 4 + 4 examples: twice the passes' steps
    assert result.refit["steps"] == 2 * result.best_step and result.refit["scale"] == "epochs"
    again = make()
    same = cfg(max_steps=2 * result.best_step, eval_at_start=False, early_stopping_patience=None)
    Trainer(again, same, schedule_steps=24).train([*TRAIN[4:], *DEV])
    torch.testing.assert_close(
        torch.tensor(clf.predict_proba(TRAIN)), torch.tensor(again.predict_proba(TRAIN))
    )


def test_max_minutes_stops_training_scores_the_last_step_and_keeps_the_best(tmp_path, caplog):
    clf = make()
    with caplog.at_level("WARNING", logger="promptft.training.trainer"):
        result = Trainer(clf, cfg(max_minutes=1e-9), run_dir=tmp_path / "run").train(TRAIN, DEV)
    assert result.time_limited and not result.stopped_early
    assert result.steps == 1  # the limit is checked after every step, evaluations or not
    assert [h["step"] for h in result.history] == [0, 1]  # step 1 is scored on dev before stopping
    assert result.history[1]["train_loss"] is not None
    assert "time limit reached" in caplog.text and "step 1 of 12" in caplog.text
    final = json.loads((tmp_path / "run" / "final_metrics.json").read_text())
    assert final["time_limited"] and final["steps"] == 1
    best = next(h for h in result.history if h["step"] == result.best_step)
    assert clf.evaluate(DEV)["accuracy"] == pytest.approx(best["dev_accuracy"])
    # no limit: all the steps
    unlimited = make().fit(TRAIN, DEV, cfg())
    assert unlimited.steps == 12 and not unlimited.time_limited
    with pytest.raises(ConfigError, match="max_minutes"):
        TrainConfig(max_minutes=0)


def test_a_refit_that_does_not_fit_the_time_limit_is_skipped_and_says_so(tmp_path, caplog):
    config = cfg(max_steps=12, eval_every=4, eval_at_start=False, refit=True, max_minutes=1e-9)
    clf = make()
    with caplog.at_level("WARNING", logger="promptft.training.trainer"):
        result = Trainer(clf, config, run_dir=tmp_path / "run").train(TRAIN[4:], DEV)
    assert result.time_limited and result.best_step == 1  # the limit stopped the selection run at step 1
    assert result.refit is None and "max_minutes=1e-09" in result.refit_skipped
    assert "refit skipped" in caplog.text
    # the saved model is the selection run's (trained on train only), and the run folder says why
    selected = make()
    selected.fit(TRAIN[4:], DEV, config.replace(refit=False))
    torch.testing.assert_close(
        torch.tensor(clf.predict_proba(TRAIN)), torch.tensor(selected.predict_proba(TRAIN))
    )
    final = json.loads((tmp_path / "run" / "final_metrics.json").read_text())
    assert final["refit"] is None and final["refit_skipped"] == result.refit_skipped
    assert "refit skipped: max_minutes" in (tmp_path / "run" / "best" / "README.md").read_text()
    # a limit with time to spare: the refit runs
    assert make().fit(TRAIN[4:], DEV, config.replace(max_minutes=60)).refit is not None


def test_the_refit_estimate_counts_its_steps_at_the_selection_runs_pace():
    trainer = Trainer(make(), cfg(refit=True, max_minutes=1))  # 60 s; 50 s spent; 2 s a step: 10 s left
    assert trainer._refit_skip_reason(n_train=8, n_dev=8, steps=5, elapsed_s=50, step_s=2) is None
    reason = trainer._refit_skip_reason(n_train=8, n_dev=8, steps=6, elapsed_s=50, step_s=2)
    assert "about 12 s and 10 s are left" in reason
    epochs = Trainer(make(), cfg(refit=True, refit_scale="epochs", max_minutes=1))  # twice the steps
    assert "about 20 s" in epochs._refit_skip_reason(n_train=8, n_dev=8, steps=5, elapsed_s=50, step_s=2)
    assert Trainer(make(), cfg(refit=True))._refit_skip_reason(8, 8, 1000, 1e9, 2) is None  # no limit


def test_a_run_started_before_a_setting_existed_resumes(tmp_path):
    """train_config.json of an older promptft lacks settings added since (max_minutes): they read as defaults."""
    config = cfg(max_steps=8, eval_every=4)
    clf = make()
    interrupt_at(clf, 6)  # after the checkpoint at step 4
    with pytest.raises(Interrupt):
        Trainer(clf, config, run_dir=tmp_path / "run").train(TRAIN, DEV)
    saved_file = tmp_path / "run" / "train_config.json"
    saved = json.loads(saved_file.read_text())
    del saved["max_minutes"]
    saved_file.write_text(json.dumps(saved))
    result = Trainer(make(), config, run_dir=tmp_path / "run").train(TRAIN, DEV)
    assert result.steps == 8


def test_an_interrupted_run_resumes_under_another_time_limit(tmp_path):
    clf = make()
    interrupt_at(clf, 6)  # after the checkpoint at step 4
    with pytest.raises(Interrupt):
        Trainer(clf, cfg(max_steps=8, eval_every=4, max_minutes=60), run_dir=tmp_path / "run").train(
            TRAIN, DEV
        )
    result = Trainer(make(), cfg(max_steps=8, eval_every=4), run_dir=tmp_path / "run").train(TRAIN, DEV)
    assert result.steps == 8 and [h["step"] for h in result.history] == [0, 4, 8]
