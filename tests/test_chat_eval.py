"""The chat task metric's honest parts: slot values in the context or not (SGD-like dialogue made by hand),
the paired bootstrap of after-minus-before, and the staged benchmark's bookkeeping."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from promptft.chat.data import Conversation, read_sgd
from promptft.chat.evaluate import TurnCase, paired_bootstrap, score_turns, sgd_turn_cases, value_in_context
from promptft.errors import DataError

ROOT = Path(__file__).resolve().parents[1]


def _turn(speaker, text, actions=(), results=None):
    frame = {
        "service": "Restaurants_1",
        "slots": [],
        "actions": [{"act": a, "slot": s, "values": v} for a, s, v in actions],
    }
    if results is not None:
        frame["service_call"] = {"method": "FindRestaurants", "parameters": {}}
        frame["service_results"] = results
    return {"speaker": speaker, "utterance": text, "frames": [frame]}


DIALOGUE = {
    "dialogue_id": "1_00000",
    "services": ["Restaurants_1"],
    "turns": [
        _turn("USER", "A table for 2 in San Jose at 12 pm please.", [("INFORM", "city", ["San Jose"])]),
        _turn(
            "SYSTEM",
            "Sushi Ya is a nice place in San Jose, phone 408-555-0101.",
            [("OFFER", "restaurant_name", ["Sushi Ya"]), ("OFFER", "city", ["San Jose"])],
            results=[
                {"restaurant_name": "Sushi Ya", "city": "San Jose", "phone_number": "408-555-0101"},
                {"restaurant_name": "Tofu House", "city": "San Jose", "phone_number": "408-555-0199"},
            ],
        ),
        _turn("USER", "Book it on the 12th.", [("INFORM", "date", ["the 12th"])]),
        _turn(
            "SYSTEM",
            "Confirm: Sushi Ya, San Jose, 12 pm on March 12th, 2 people, Tofu House is the other one.",
            [
                ("CONFIRM", "restaurant_name", ["Sushi Ya"]),
                ("CONFIRM", "time", ["12 pm"]),
                ("CONFIRM", "date", ["March 12th"]),
                ("CONFIRM", "number_of_seats", ["2"]),
                ("CONFIRM", "other", ["Tofu House"]),
                ("REQUEST", "ok", []),
            ],
        ),
    ],
}


def test_in_context_or_not_on_a_hand_made_sgd_dialogue(tmp_path):
    (tmp_path / "dialogues_001.json").write_text(json.dumps([DIALOGUE]))
    [conv] = read_sgd(tmp_path)
    assert conv.meta["values"] == [
        ["Sushi Ya", "San Jose"],
        ["Sushi Ya", "12 pm", "March 12th", "2", "Tofu House"],
    ]
    assert (
        conv.meta["results"][0][:3] == ["Sushi Ya", "San Jose", "408-555-0101"]
        and conv.meta["results"][1] == []
    )
    cases = sgd_turn_cases([conv], {"Restaurants_1"}, per_group=5)
    assert len(cases) == 1 and cases[0].seen  # one turn per dialogue
    # each of the two system turns as a case: keep the values of only one of them
    meta = conv.meta
    [first] = sgd_turn_cases(
        [Conversation(conv.messages, "a", meta={**meta, "values": [meta["values"][0], []]})], set(), 1
    )
    [second] = sgd_turn_cases(
        [Conversation(conv.messages, "b", meta={**meta, "values": [[], meta["values"][1]]})], set(), 1
    )
    # first system turn: "San Jose" was said by the user, "Sushi Ya" comes from the API results only
    assert value_in_context(first) == [False, True]
    # second: the name (now said by the system), "12 pm" and "2" (whole words) are in the context;
    # "March 12th" is a reformatted date nobody said ("12" is not "March 12th"); "Tofu House" is a
    # result row the system saw at the earlier turn and never said
    assert value_in_context(second) == [True, True, False, True, False]
    assert second.meta["backend_values"][:4] == ["Sushi Ya", "San Jose", "408-555-0101", "Tofu House"]
    scores = score_turns([first, second], ["Try Sushi Ya.", "Sushi Ya, March 12th at 12 pm."])["all"]
    assert scores["values"] == 7 and scores["values_in_context"] == 4 and scores["values_not_in_context"] == 3
    # mentioned: Sushi Ya (turn 1, not in context); Sushi Ya, 12 pm, and "2" (in context) and March 12th
    # (not) in turn 2: the mention test stays the plain substring match of the committed results, so "2"
    # counts as mentioned inside "12"
    assert scores["slot_value_recall"] == pytest.approx(5 / 7)
    assert scores["slot_value_recall_in_context"] == pytest.approx(3 / 4)
    assert scores["slot_value_recall_not_in_context"] == pytest.approx(2 / 3)
    # of the 3 values not in the context, "Sushi Ya" (turn 1) and "Tofu House" are in the service results
    assert scores["values_not_in_context_in_results"] == 2


def test_sgd_service_results_become_tool_messages_that_put_values_in_context(tmp_path):
    (tmp_path / "dialogues_001.json").write_text(json.dumps([DIALOGUE]))
    [plain] = read_sgd(tmp_path)
    [conv] = read_sgd(tmp_path, service_results=1)
    assert [m["role"] for m in plain.messages] == ["user", "assistant", "user", "assistant"]
    # the first system turn called the service: its call, result count and first row come before it
    assert [m["role"] for m in conv.messages] == ["user", "tool", "assistant", "user", "assistant"]
    assert conv.messages[1]["content"] == (
        "FindRestaurants: 2 results\n1. restaurant_name: Sushi Ya; city: San Jose; phone_number: 408-555-0101"
    )
    assert conv.meta == plain.meta  # the values and results the metric uses do not change
    [two_rows] = read_sgd(tmp_path, service_results=2)
    assert "2. restaurant_name: Tofu House" in two_rows.messages[1]["content"]
    first_values = {**conv.meta, "values": [conv.meta["values"][0], []]}
    [first] = sgd_turn_cases([Conversation(conv.messages, "a", meta=first_values)], set(), 1)
    assert value_in_context(first) == [True, True]  # "Sushi Ya" is now in the tool message before the turn
    with pytest.raises(DataError, match="service_results"):
        read_sgd(tmp_path, service_results=-1)


def _cases(n: int, seen: bool = True) -> list[TurnCase]:
    return [
        TurnCase(
            f"d{i}#1",
            [{"role": "user", "content": f"go to city{i}"}],
            f"city{i} at {i} pm",
            [f"city{i}", f"{i} pm"],
            "S_1",
            seen,
        )
        for i in range(n)
    ]


def test_paired_bootstrap_planted_difference_and_none():
    cases = _cases(30) + _cases(30, seen=False)
    refs = [c.reference for c in cases]
    large = paired_bootstrap(cases, ["nothing useful"] * len(cases), refs, resamples=500, seed=1)
    for group in ("all", "seen", "unseen"):
        d = large[group]["slot_value_recall"]
        assert d["diff"] == pytest.approx(1.0) and d["low"] > 0.9 and d["excludes_zero"]
        assert large[group]["rouge_l"]["low"] > 0
        # every value is copyable (the city is in the context) or not (the time): both kinds move
        assert large[group]["slot_value_recall_in_context"]["diff"] == pytest.approx(1.0)
        assert large[group]["slot_value_recall_not_in_context"]["diff"] == pytest.approx(1.0)
    # no difference: half the turns right before, the other half right after -> change 0, interval spans 0
    before = [r if i % 2 else "no" for i, r in enumerate(refs)]
    after = [r if i % 2 == 0 else "no" for i, r in enumerate(refs)]
    none = paired_bootstrap(cases, before, after, resamples=500, seed=1)
    d = none["all"]["slot_value_recall"]
    assert d["diff"] == pytest.approx(0.0) and d["low"] < 0 < d["high"] and not d["excludes_zero"]
    assert none["seen"]["rouge_l"]["low"] < 0 < none["seen"]["rouge_l"]["high"]
    # seeded: the same seed gives the same interval, another seed another one
    assert paired_bootstrap(cases, before, after, resamples=500, seed=1) == none
    other = paired_bootstrap(cases, before, after, resamples=500, seed=2)
    assert (
        other["all"]["slot_value_recall"]["low"] != d["low"]
        or other["all"]["slot_value_recall"]["high"] != d["high"]
    )


def test_bootstrap_without_slot_values_gives_rouge_only():
    cases = [
        TurnCase(f"c{i}", [{"role": "user", "content": "hi"}], "hello there", [], "-", True) for i in range(5)
    ]
    change = paired_bootstrap(cases, ["x"] * 5, ["hello there"] * 5, resamples=50)
    assert set(change["all"]) == {"turns", "rouge_l"} and change["all"]["rouge_l"]["excludes_zero"]


# ----- the staged benchmark's bookkeeping (no model: the stage parts are made by hand) -----
def _bench():
    spec = importlib.util.spec_from_file_location("chat_sft_bench", ROOT / "benchmarks" / "chat_sft.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _eval_part(cases, generated, command):
    return {
        "perplexity": {"perplexity": 10.0 if "after" in command else 16.0, "tokens": 9},
        "turns": score_turns(cases, generated),
        "reference_turns": score_turns(cases, [c.reference for c in cases]),
        "generation": {"max_new_tokens": 8},
        "ids": [c.id for c in cases],
        "generated": generated,
        "data": {"seen_services": ["S_1"]},
        "seconds": 1.0,
        "command": command,
        "threads": 1,
    }


def test_bench_stages_write_resume_and_refuse_other_settings(tmp_path):
    bench = _bench()
    out = tmp_path / "chat_sft.json"
    config = {k: 1 for k in bench.CONFIG_KEYS}
    state = bench.load_state(out, config, fresh=False)
    assert bench.pending(state, list(bench.STAGES)) == list(bench.STAGES)
    cases = _cases(4) + _cases(4, seen=False)
    refs = [c.reference for c in cases]
    report = bench.save_stage(out, state, "eval-before", _eval_part(cases, ["no"] * 8, "cmd before"))
    assert report["stages_done"] == ["eval-before"] and "task_metric" not in report
    assert report["command"] == "cmd before" and "turns_before" in report

    # a later call with the same settings skips the finished stage
    state = bench.load_state(out, dict(config), fresh=False)
    assert bench.pending(state, list(bench.STAGES)) == ["train", "eval-after", "trl"]
    assert bench.pending(state, ["eval-before"]) == []
    bench.save_stage(
        out,
        state,
        "train",
        {
            "training": {"train_time_s": 600.0},
            "tokens_per_s": 30.0,
            "history": [],
            "data": {"train_tokens": 5},
            "seconds": 601.0,
            "command": "cmd train",
            "threads": 2,
        },
    )
    after = _eval_part(cases, refs, "cmd after")
    after["change"] = paired_bootstrap(cases, ["no"] * 8, refs, resamples=100)
    report = bench.save_stage(out, state, "eval-after", after)
    assert report["task_metric"]["before"]["seen"] == 0 and report["task_metric"]["after"]["seen"] == 1
    assert report["task_metric_by_kind"]["in_context"]["values"]["all"] == 8  # the cities
    assert report["targets"]["slot_value_recall_seen_improved_beyond_noise"]
    assert report["train_minutes"] == 10.0 and report["threads"] == [1, 2]
    assert report["command"] == "cmd before ; cmd train ; cmd after"
    assert json.loads(out.read_text())["stages_done"] == ["eval-before", "train", "eval-after"]

    with pytest.raises(SystemExit, match="other settings.*turns_per_group: 1 -> 2.*--fresh"):
        bench.load_state(out, {**config, "turns_per_group": 2}, fresh=False)
    assert bench.load_state(out, {**config, "turns_per_group": 2}, fresh=True)["stages"] == {}
    # training claims the run folder: another run's folder is refused, this file's own is resumed
    run_dir = tmp_path / "run"
    state = bench.load_state(tmp_path / "new.json", config, fresh=False)
    bench.claim_run_dir(tmp_path / "new.json", state, run_dir, "cmd")
    assert json.loads((tmp_path / "new.json").read_text())["command"] == "cmd"
    run_dir.mkdir()  # the stopped train stage's checkpoint
    bench.claim_run_dir(
        tmp_path / "new.json", bench.load_state(tmp_path / "new.json", config, fresh=False), run_dir, "c2"
    )
    with pytest.raises(SystemExit, match="holds another run.*--fresh"):
        bench.claim_run_dir(tmp_path / "other.json", {"config": config, "stages": {}}, run_dir, "cmd")
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"ppl_before": 1.0, "command": "x"}))
    with pytest.raises(SystemExit, match="no stage bookkeeping.*--fresh"):
        bench.load_state(old, config, fresh=False)


def test_conversation_without_results_meta_still_scores():
    conv = Conversation(
        [{"role": "user", "content": "bus to Fresno"}, {"role": "assistant", "content": "8 am to Fresno"}],
        id="d",
        meta={"services": ["Buses_1"], "values": [["8 am", "Fresno"]]},
    )
    [case] = sgd_turn_cases([conv], set(), per_group=1)
    scores = score_turns([case], ["Fresno"])["unseen"]
    assert scores["slot_value_recall_in_context"] == 1.0 and scores["slot_value_recall_not_in_context"] == 0.0
    assert "values_not_in_context_in_results" not in scores


def test_chat_train_reads_sgd_with_service_results(tmp_path):
    from chat_tiny import save_tiny_chat_model
    from typer.testing import CliRunner

    from promptft.cli import app
    from promptft.config.chat import ChatJob
    from promptft.recipes.chat_eval import trained_service_results
    from promptft.recipes.chat_train import load_split

    sgd = tmp_path / "sgd"
    sgd.mkdir()
    (sgd / "dialogues_001.json").write_text(
        json.dumps([{**DIALOGUE, "dialogue_id": f"1_{i}"} for i in range(6)])
    )
    job = ChatJob.parse({"data": {"train": str(sgd), "dev_fraction": 0.0, "sgd_service_results": 1}})
    train, _, _ = load_split(job)
    assert all(c.messages[1]["role"] == "tool" for c in train)
    model_dir = save_tiny_chat_model(tmp_path / "base")
    result = CliRunner().invoke(
        app,
        ["chat-train", "--train", str(sgd), "--model", str(model_dir), "--output", str(tmp_path / "run"),
         "--max-steps", "2", "--batch-size", "2", "--sgd-service-results", "1", "--max-length", "512",
         "--set", "data.dev_fraction=0.34", "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "run" / "run.json").read_text())["job"]
    assert saved["data"]["sgd_service_results"] == 1
    assert trained_service_results(tmp_path / "run") == 1  # chat-eval's default for this run
    assert trained_service_results(model_dir) == 0  # a base model: utterances only
