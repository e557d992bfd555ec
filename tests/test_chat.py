"""Chat fine-tuning on tiny models: data validation, templates, the loss mask, packing, splits, training
with resume, generation, and the CLI."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from chat_tiny import CHATML, base_tokenizer, chatml_tokenizer, save_tiny_chat_model, tiny_chat_llama
from typer.testing import CliRunner

from promptft.chat.data import (
    Conversation,
    read_conversations,
    read_dailydialog,
    read_sgd,
    split_conversations,
    validate,
)
from promptft.chat.encoding import IGNORE, Encoded, collate, collate_packed, encode, encode_all, pack
from promptft.chat.generate import GenerationSettings, fit_history, generate
from promptft.chat.model import ChatModel
from promptft.chat.templates import DEFAULT_TEMPLATE, end_of_turn_ids, resolve_template
from promptft.cli import app
from promptft.config.chat import ChatJob
from promptft.errors import ConfigError, DataError, RunDirError, TemplateError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

MULTI = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "It was great"},
    {"role": "assistant", "content": "yes good"},
    {"role": "user", "content": "It was bad"},
    {"role": "assistant", "content": "no"},
]


def _jsonl(path: Path, records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


# ----- data -----
@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            {"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "yo"}]},
            "unknown role 'bot'",
        ),
        (
            {"messages": [{"role": "user", "content": " "}, {"role": "assistant", "content": "yo"}]},
            "empty content",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "yo"},
                    {"role": "user", "content": "and?"},
                ]
            },
            "ends with a user turn",
        ),
        ({"messages": [{"role": "user", "content": "hi"}]}, "no assistant turn"),
        ({"text": "hi"}, "unknown record shape"),
        ("{not json", "not valid JSON"),
    ],
)
def test_validation_errors_name_file_and_line(tmp_path, record, message):
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    path = _jsonl(tmp_path / "chats.jsonl", [good, record])
    with pytest.raises(DataError) as err:
        read_conversations(path)
    assert f"{path}:2" in str(err.value)
    assert message in str(err.value)


def test_record_shapes(tmp_path):
    path = _jsonl(
        tmp_path / "mixed.jsonl",
        [
            {"messages": MULTI},
            {"prompt": "2+2=", "completion": " 4"},
            {"instruction": "Add", "input": "2 and 2", "output": "4"},
        ],
    )
    convs = read_conversations(path)
    assert [c.kind for c in convs] == ["chat", "completion", "chat"]
    assert convs[2].messages[0]["content"] == "Add\n\n2 and 2"
    assert convs[1].messages[-1] == {"role": "assistant", "content": " 4"}


def test_too_long_truncated_or_dropped_and_counted(caplog):
    tok = chatml_tokenizer()
    fmt = resolve_template(tok)
    long = Conversation(
        [{"role": "user", "content": "great " * 60}, {"role": "assistant", "content": "ok"}], id="l"
    )
    short = Conversation(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "good"}], id="s"
    )
    with caplog.at_level(logging.INFO, logger="promptft.chat.encoding"):
        kept, stats = encode_all(tok, fmt, [long, short], max_length=30, overflow="drop")
    assert [e.id for e in kept] == ["s"] and stats.dropped == 1 and stats.truncated == 0
    assert "1 dropped" in caplog.text
    # truncating the long one cuts its only assistant turn away: then it is dropped as well (counted)
    kept, stats = encode_all(tok, fmt, [long, short], max_length=30, overflow="truncate")
    assert stats.dropped == 1
    late = Conversation(
        [*MULTI[1:3], {"role": "user", "content": "great " * 60}, {"role": "assistant", "content": "x"}]
    )
    kept, stats = encode_all(tok, fmt, [late], max_length=40, overflow="truncate")
    assert stats.truncated == 1 and len(kept[0]) == 40 and kept[0].loss_tokens > 0
    with pytest.raises(ConfigError):
        encode_all(tok, fmt, [short], 30, overflow="cut")


def test_split_keeps_each_conversation_whole():
    convs = []
    for c in range(40):  # several records (e.g. turn-level rows) per conversation id
        for turn in range(1 + c % 3):
            convs.append(Conversation(list(MULTI[1:3]), id=f"dlg{c}", meta={"turn": turn}))
    train, dev, test = split_conversations(convs, dev=0.2, test=0.2, seed=3)
    ids = [{c.id for c in part} for part in (train, dev, test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert sum(map(len, (train, dev, test))) == len(convs)
    assert len(ids[1]) == 8 and len(ids[2]) == 8
    again = split_conversations(convs, dev=0.2, test=0.2, seed=3)
    assert [c.id for c in again[1]] == [c.id for c in dev]
    assert [c.id for c in split_conversations(convs, dev=0.2, test=0.2, seed=4)[1]] != [c.id for c in dev]
    with pytest.raises(DataError):
        split_conversations(convs, dev=0.6, test=0.5)


@pytest.mark.skipif(not (SHARED / "sgd").exists(), reason="shared data not present")
def test_shared_readers():
    sgd = read_sgd(SHARED / "sgd" / "train", files=["dialogues_043.json"])
    assert len(sgd) == 103
    first = sgd[0]
    assert first.messages[0]["role"] == "user" and first.messages[-1]["role"] == "assistant"
    assert len(first.meta["values"]) == sum(m["role"] == "assistant" for m in first.messages)
    assert any(v for c in sgd for v in c.meta["values"])
    daily = read_dailydialog(SHARED / "dailydialog" / "test" / "dialogues_test.txt")
    assert all(c.messages[-1]["role"] == "assistant" and len(c.messages) % 2 == 0 for c in daily)


# ----- templates -----
def test_templates_tokenizer_user_default_and_system(tmp_path):
    tok = chatml_tokenizer()
    own = resolve_template(tok, "auto")
    assert own.source == "tokenizer"
    assert (
        own.render(tok, MULTI[1:3])
        == "<|im_start|>user\nIt was great<|im_end|>\n<|im_start|>assistant\nyes good<|im_end|>\n"
    )
    assert own.render(tok, MULTI[1:2], add_generation_prompt=True).endswith("<|im_start|>assistant\n")

    with_system = resolve_template(tok, "auto", system_prompt="You help.")
    assert with_system.render(tok, MULTI[1:3]).startswith(
        "<|im_start|>system\nYou help.<|im_end|>\n<|im_start|>user"
    )
    assert with_system.render(tok, MULTI).startswith(
        "<|im_start|>system\nBe brief.<|im_end|>"
    )  # not replaced

    user = resolve_template(tok, "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}")
    assert (
        user.source == "user"
        and user.render(tok, MULTI[1:3]) == "[user] It was great\n[assistant] yes good\n"
    )
    path = tmp_path / "t.jinja"
    path.write_text(CHATML)
    assert resolve_template(tok, str(path)).render(tok, MULTI[1:3]) == own.render(tok, MULTI[1:3])

    base = base_tokenizer()
    default = resolve_template(base, "auto")
    assert default.source == "default" and default.template == DEFAULT_TEMPLATE
    assert default.render(base, MULTI) == (
        "Be brief.\n\nUser: It was great\nAssistant: yes good</s>\nUser: It was bad\nAssistant: no</s>\n"
    )
    assert end_of_turn_ids(base, default) == [base.eos_token_id]
    assert tok.convert_tokens_to_ids("<|im_end|>") in end_of_turn_ids(tok, own)
    with pytest.raises(TemplateError, match="no chat template"):
        resolve_template(base, "tokenizer")
    with pytest.raises(TemplateError, match="neither"):
        resolve_template(base, "no_such_file.jinja")
    with pytest.raises(TemplateError, match="failed to render"):
        resolve_template(tok, "{{ messages[0]['content'] | nofilter }}").render(tok, MULTI)


# ----- the loss mask -----
def test_loss_mask_exact_positions_multi_turn():
    """Built piece by piece: exactly the assistant contents and their <|im_end|> carry loss."""
    tok = chatml_tokenizer()
    fmt = resolve_template(tok)
    conv = Conversation(MULTI, id="m")
    got = encode(tok, fmt, conv)

    def ids(text):
        return tok(text, add_special_tokens=False)["input_ids"]

    pieces = [  # (text, carries loss)
        (
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nIt was great<|im_end|>\n<|im_start|>assistant\n",
            False,
        ),
        ("yes good<|im_end|>", True),
        ("\n<|im_start|>user\nIt was bad<|im_end|>\n<|im_start|>assistant\n", False),
        ("no<|im_end|>", True),
        ("\n", False),
    ]
    expected_ids, expected_labels = [], []
    for text, loss in pieces:
        part = ids(text)
        expected_ids += part
        expected_labels += part if loss else [IGNORE] * len(part)
    assert got.input_ids == expected_ids
    assert got.labels == expected_labels
    loss_positions = [i for i, x in enumerate(got.labels) if x != IGNORE]
    first = len(ids(pieces[0][0]))
    second = first + len(ids(pieces[1][0])) + len(ids(pieces[2][0]))
    assert loss_positions == list(range(first, first + len(ids("yes good")) + 1)) + list(
        range(second, second + len(ids("no")) + 1)
    )
    assert tok.decode([got.input_ids[i] for i in loss_positions]) == "yes good<|im_end|>no<|im_end|>"


def test_loss_mask_completion_only_and_default_template():
    tok = base_tokenizer()
    conv = Conversation(
        [{"role": "user", "content": "Review: good."}, {"role": "assistant", "content": " positive"}],
        kind="completion",
    )
    got = encode(tok, resolve_template(tok), conv)
    prompt = tok("Review: good.", add_special_tokens=False)["input_ids"]
    assert got.input_ids[: len(prompt)] == prompt
    assert all(x == IGNORE for x in got.labels[: len(prompt)])
    assert got.labels[len(prompt) :] == got.input_ids[len(prompt) :]
    assert got.input_ids[-1] == tok.eos_token_id
    chat = encode(tok, resolve_template(tok), Conversation(MULTI))
    assert tok.decode([t for t in chat.labels if t != IGNORE]) == " yes good</s> no</s>"


def test_tool_messages_carry_no_loss_in_either_template():
    """A tool message (an API's results) is rendered by the tokenizer's template and the default one, and
    only the assistant turns after it carry loss."""
    conv = Conversation(
        [
            {"role": "user", "content": "Find a table"},
            {"role": "tool", "content": "FindRestaurants: 1 result"},
            {"role": "assistant", "content": "Sushi Ya"},
        ]
    )
    validate(conv)
    for tok, rendered, answer in (
        (chatml_tokenizer(), "<|im_start|>tool\nFindRestaurants: 1 result<|im_end|>", "Sushi Ya<|im_end|>"),
        (base_tokenizer(), "Results: FindRestaurants: 1 result\n", " Sushi Ya</s>"),
    ):
        got = encode(tok, resolve_template(tok), conv)
        assert rendered in tok.decode(got.input_ids)
        assert tok.decode([t for t in got.labels if t != IGNORE]) == answer


def test_head_at_loss_positions_equals_full_logits_loss():
    model, tok = tiny_chat_llama()
    chat = ChatModel(model, tok, resolve_template(tok))
    items = [
        encode(tok, chat.format, Conversation(MULTI)),
        encode(tok, chat.format, Conversation(MULTI[1:3])),
    ]
    batch = collate(items, tok.pad_token_id)
    nll, n = chat.token_loss(dict(batch))
    with torch.no_grad():
        reference = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
        )
    assert n == sum(e.loss_tokens for e in items) - 0  # every loss token has a previous position
    torch.testing.assert_close(nll / n, reference.loss, rtol=1e-5, atol=1e-5)


def test_packing_never_attends_across_conversations():
    model, tok = tiny_chat_llama()
    chat = ChatModel(model, tok, resolve_template(tok))
    convs = [Conversation(MULTI), Conversation(MULTI[1:3]), Conversation(MULTI[3:5])]
    items = [encode(tok, chat.format, c) for c in convs]
    rows = pack(items, max_length=sum(len(x) for x in items))
    assert len(rows) == 1 and sorted(rows[0]) == [0, 1, 2]
    packed = collate_packed([[items[i] for i in rows[0]]], tok.pad_token_id)
    with torch.no_grad():
        logits = model(
            input_ids=packed["input_ids"],
            attention_mask=packed["attention_mask"],
            position_ids=packed["position_ids"],
        ).logits[0]
        at = 0
        for i in rows[0]:
            alone = model(input_ids=torch.tensor([items[i].input_ids])).logits[0]
            torch.testing.assert_close(logits[at : at + len(items[i])], alone, rtol=1e-4, atol=1e-4)
            at += len(items[i])
        nll_packed, n_packed = chat.token_loss(packed)
        separate = [chat.token_loss(collate([x], tok.pad_token_id)) for x in items]
    assert n_packed == sum(n for _, n in separate)
    torch.testing.assert_close(nll_packed, sum(x for x, _ in separate), rtol=1e-4, atol=1e-4)
    assert len(pack(items, max_length=max(len(x) for x in items))) >= 2


# ----- training, saving, generation -----
def _job(tmp_path, model_dir, **train):
    data = _jsonl(tmp_path / "train.jsonl", [{"messages": MULTI}] * 6 + [{"messages": MULTI[1:3]}] * 6)
    dev = _jsonl(tmp_path / "dev.jsonl", [{"messages": MULTI}])
    return ChatJob.parse(
        {
            "model": {"name": str(model_dir), "finetune": "full"},
            "data": {"train": str(data), "dev": str(dev), "max_length": 64},
            "train": {
                "learning_rate": 3e-2,
                "batch_size": 4,
                "max_steps": 30,
                "eval_every": 10,
                "warmup_ratio": 0.0,
                "progress": False,
                **train,
            },
            "output": str(tmp_path / "run"),
        }
    )


def test_train_then_generate_round_trip(tmp_path):
    from promptft.recipes.chat_train import chat_train

    model_dir = save_tiny_chat_model(tmp_path / "base")
    result = chat_train(_job(tmp_path, model_dir, max_steps=60, eval_every=20))
    run = tmp_path / "run"
    assert {"train_config.json", "metrics.jsonl", "run.json", "best", "final_metrics.json"} <= {
        p.name for p in run.iterdir()
    }
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [0, 20, 40, 60]
    assert history[-1]["dev_loss"] < history[0]["dev_loss"] / 3
    assert result["tokens_per_s"] > 0 and result["stopped"] == "max_steps"
    chat = ChatModel.from_pretrained(run)  # the run folder's best/
    replies = generate(chat, [MULTI[:2], MULTI[:4]], GenerationSettings(max_new_tokens=12))
    assert replies == ["yes good", "no"]  # learned, and stopped at <|im_end|>
    with pytest.raises(RunDirError, match="finished run"):
        chat_train(_job(tmp_path, model_dir))


def test_lora_run_saves_adapter_and_merges(tmp_path):
    from promptft.recipes.chat_train import chat_train

    model_dir = save_tiny_chat_model(tmp_path / "base")
    job = _job(tmp_path, model_dir, max_steps=4, eval_every=2)
    job.model.finetune = "lora"
    chat_train(job)
    best = tmp_path / "run" / "best"
    assert (best / "adapter" / "adapter_model.safetensors").exists() and not (best / "model").exists()
    a = ChatModel.from_pretrained(tmp_path / "run")
    b = ChatModel.from_pretrained(tmp_path / "run", merge=True)
    assert not hasattr(b.model, "peft_config")
    s = GenerationSettings(max_new_tokens=6)
    assert generate(a, [MULTI[:2]], s) == generate(b, [MULTI[:2]], s)


def test_resume_after_interruption_matches_uninterrupted(tmp_path, monkeypatch):
    from promptft.recipes.chat_train import chat_train

    model_dir = save_tiny_chat_model(tmp_path / "base")
    whole = tmp_path / "whole"
    whole.mkdir()
    chat_train(_job(whole, model_dir, max_steps=8, eval_every=2))

    calls = {"n": 0}
    original = ChatModel.token_loss

    def crash(self, batch):
        calls["n"] += 1
        if calls["n"] == 6 and self.model.training:  # inside step 6, after the step-4 checkpoint
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(ChatModel, "token_loss", crash)
    with pytest.raises(KeyboardInterrupt):
        chat_train(_job(tmp_path, model_dir, max_steps=8, eval_every=2, eval_at_start=True))
    monkeypatch.setattr(ChatModel, "token_loss", original)
    assert (tmp_path / "run" / "checkpoint").exists()
    chat_train(_job(tmp_path, model_dir, max_steps=8, eval_every=2, eval_at_start=True))
    done = json.loads((tmp_path / "run" / "final_metrics.json").read_text())
    ref = json.loads((whole / "run" / "final_metrics.json").read_text())
    assert done["steps"] == 8 and done["best_step"] == ref["best_step"]
    assert done["best_dev_loss"] == pytest.approx(ref["best_dev_loss"], rel=1e-5)


def test_fit_history_drops_oldest_turns_keeps_system():
    model, tok = tiny_chat_llama()
    chat = ChatModel(model, tok, resolve_template(tok))
    turns = []
    for i in range(12):
        turns += [
            {"role": "user", "content": f"question {i} was great"},
            {"role": "assistant", "content": f"answer {i}"},
        ]
    messages = [{"role": "system", "content": "Be brief."}, *turns, {"role": "user", "content": "last one"}]
    settings = GenerationSettings(max_new_tokens=16, context_window=120)
    kept, ids = fit_history(chat, messages, settings)
    assert kept[0] == messages[0] and kept[-1] == messages[-1] and kept[1]["role"] == "user"
    assert len(kept) < len(messages) and len(ids) <= 120 - 16
    assert kept[1:] == messages[len(messages) - len(kept) + 1 :]  # the newest turns, in order
    huge = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "great " * 500}]
    kept, ids = fit_history(chat, huge, settings)
    assert kept[0] == huge[0] and len(ids) <= 104 and huge[1]["content"].endswith(kept[1]["content"])
    assert 0 < len(kept[1]["content"]) < len(huge[1]["content"])


def test_generation_settings_checked():
    with pytest.raises(ConfigError, match="temperature"):
        GenerationSettings(temperature=-1)
    with pytest.raises(ConfigError, match="top_p"):
        GenerationSettings(top_p=0)


def test_sgd_task_metric():
    from promptft.chat.evaluate import score_turns, sgd_turn_cases, value_recall

    assert value_recall("Your table at Sushi Ya is booked for 7:30 PM.", ["Sushi Ya", "7:30 pm", "2"]) == (
        2,
        3,
    )
    convs = [
        Conversation(
            [
                {"role": "user", "content": "Find a bus to Fresno"},
                {"role": "assistant", "content": "Leaving at 8 am to Fresno"},
            ],
            id=f"d{i}",
            meta={"services": [svc], "values": [["8 am", "Fresno"]]},
        )
        for i, svc in enumerate(["Buses_1", "Buses_1", "Buses_3", "Buses_3"])
    ]
    cases = sgd_turn_cases(convs, {"Buses_1"}, per_group=5)
    assert [c.seen for c in cases] == [True, True, False, False]
    scores = score_turns(cases, ["The bus leaves at 8 am", "no", "Fresno at 8 am", ""])
    assert scores["seen"]["slot_value_recall"] == pytest.approx(1 / 4)
    assert scores["unseen"]["slot_value_recall"] == pytest.approx(2 / 4)
    assert scores["all"]["values"] == 8 and 0 < scores["unseen"]["rouge_l"] < 1


# ----- CLI -----
def test_cli_train_generate_and_errors(tmp_path):
    runner = CliRunner()
    model_dir = save_tiny_chat_model(tmp_path / "base")
    data = _jsonl(tmp_path / "train.jsonl", [{"messages": MULTI}] * 8)
    result = runner.invoke(
        app,
        [
            "chat-train",
            "--train",
            str(data),
            "--model",
            str(model_dir),
            "--finetune",
            "full",
            "--output",
            str(tmp_path / "run"),
            "--max-steps",
            "20",
            "--batch-size",
            "4",
            "--lr",
            "0.03",
            "--eval-every",
            "10",
            "--set",
            "data.dev_fraction=0.2",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "best dev loss" in result.output
    prompts = _jsonl(tmp_path / "in.jsonl", [{"messages": MULTI[:2]}, {"prompt": "It was bad", "id": 7}])
    out = tmp_path / "out.jsonl"
    result = runner.invoke(
        app, ["generate", str(tmp_path / "run"), "-i", str(prompts), "-o", str(out), "--max-new-tokens", "8"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 and rows[1]["id"] == 7 and all(isinstance(r["response"], str) for r in rows)
    assert rows[0]["response"] == "yes good"
    kept = out.read_text()
    result = runner.invoke(app, ["generate", str(tmp_path / "run"), "-i", str(prompts), "-o", str(out)])
    assert result.exit_code == 2 and "already exists" in result.output and "--overwrite" in result.output
    assert out.read_text() == kept  # an earlier run's responses are kept
    malformed = [
        (["hi"], "must be an object"),
        ([{"role": "user"}], "'role' and 'content'"),
        ([{"role": "user", "content": ""}], "empty content"),
    ]  # each was an AttributeError traceback or went to the model unchecked
    for messages, message in malformed:
        bad_in = _jsonl(tmp_path / "bad_in.jsonl", [{"messages": messages}])
        result = runner.invoke(app, ["generate", str(tmp_path / "run"), "-i", str(bad_in)])
        assert result.exit_code == 2 and f"{bad_in}:1" in result.output and message in result.output
        assert "Traceback" not in result.output
    result = runner.invoke(app, ["generate", str(tmp_path / "run"), "-i", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2 and "input file not found" in result.output  # was a FileNotFoundError
    assert "Traceback" not in result.output
    too_small = ["--context-window", "40", "--max-new-tokens", "32"]  # leaves 8 tokens for the prompt
    result = runner.invoke(app, ["generate", str(tmp_path / "run"), "-i", str(prompts), *too_small])
    assert result.exit_code == 2 and "context of 40 tokens" in " ".join(result.output.split())
    result = runner.invoke(
        app,
        [
            "chat-eval",
            str(tmp_path / "run"),
            "--test",
            str(data),
            "--turns",
            "2",
            "--before",
            "--max-new-tokens",
            "6",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "base model: perplexity" in result.output and "ROUGE-L" in result.output
    assert "paired-bootstrap interval" in result.output and "rouge l" in result.output
    samples = (tmp_path / "run" / "samples.md").read_text()
    assert "| reference | before | after |" in samples and "| It was bad | no |" in samples
    report = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert report["after"]["perplexity"]["perplexity"] < report["before"]["perplexity"]["perplexity"]
    assert report["change"]["all"]["turns"] == 2 and "low" in report["change"]["all"]["rouge_l"]

    bad = _jsonl(
        tmp_path / "bad.jsonl",
        [{"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}]}],
    )
    result = runner.invoke(
        app, ["chat-train", "--train", str(bad), "--model", str(model_dir), "--output", str(tmp_path / "r2")]
    )
    assert result.exit_code == 2 and f"{bad}:1" in result.output and "unknown role" in result.output
    result = runner.invoke(app, ["chat-train", "--train", str(data), "--set", "train.lerning_rate=1"])
    assert result.exit_code == 2 and "learning_rate" in result.output


def test_yaml_job_example_validates():
    root = Path(__file__).resolve().parents[1]
    job = ChatJob.from_yaml(root / "examples" / "chat" / "sgd.yaml")
    assert job.model.finetune == "lora" and job.data.train.endswith("sgd/train")
    with pytest.raises(ConfigError, match="finetune"):
        ChatJob.parse({"data": {"train": "x"}, "model": {"finetune": "prompt_tuning"}})


def test_encoded_len():
    assert len(Encoded([1, 2, 3], [IGNORE, 2, 3])) == 3


def test_conversations_from_a_hugging_face_dataset(tmp_path, monkeypatch):
    """A `messages` column (the usual chat dataset shape) read from a save_to_disk folder or hf:NAME:SPLIT."""
    import datasets

    from promptft.chat.data import read_conversations
    from promptft.errors import DataError

    ds = datasets.Dataset.from_list([{"messages": MULTI}, {"messages": MULTI[:3]}])
    ds.save_to_disk(str(tmp_path / "chats"))
    convs = read_conversations(tmp_path / "chats")
    assert [c.messages for c in convs] == [MULTI, MULTI[:3]] and convs[1].id == "chats-1"
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config=None, split=None: ds)
    assert len(read_conversations("hf:me/chats:train")) == 2
    bad = datasets.Dataset.from_list([{"messages": [{"role": "robot", "content": "x"}]}])
    bad.save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(DataError, match=r"bad row 0: message 0 has unknown role 'robot'"):
        read_conversations(tmp_path / "bad")
