"""`promptft chat` driven through a real pseudo-terminal (pexpect) on a tiny saved model."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pexpect
import pytest
from chat_tiny import save_tiny_chat_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_chat_model(tmp_path_factory.mktemp("chat") / "base")


def _spawn(model_dir, *extra, preexec_fn=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TERM="dumb")
    args = ["-m", "promptft", "chat", str(model_dir), "--max-new-tokens", "6", "--temperature", "0", *extra]
    return pexpect.spawn(
        sys.executable,
        args,
        env=env,
        encoding="utf-8",
        timeout=300,
        dimensions=(40, 200),
        preexec_fn=preexec_fn,
    )


def test_repl_commands_streaming_and_eof(model_dir, tmp_path):
    child = _spawn(model_dir, "--system", "Be brief.")
    child.expect("you> ")
    child.sendline("")  # empty input: ignored, prompt again
    child.expect("you> ")
    child.sendline("It was great")
    child.expect("assistant> ")
    child.expect("you> ")
    child.sendline("great " * 400)  # longer than the context window: trimmed, no crash
    child.expect("assistant> ")
    child.expect("you> ")
    child.sendline("/settings")
    child.expect("system prompt: Be brief.")
    child.expect("you> ")
    child.sendline("/set temperature 0.5")
    child.expect(r"temperature = 0.5")
    child.expect("you> ")
    child.sendline("/set top_p 7")
    child.expect("not set: top_p must be in")
    child.expect("you> ")
    saved = tmp_path / "talk.jsonl"
    child.sendline(f"/save {saved}")
    child.expect("saved 3 messages")  # the long turn filled the window: the older turns were dropped
    child.expect("you> ")
    child.sendline("/system You are a travel agent.")
    child.expect("system prompt set")
    child.expect("you> ")
    child.sendline("/reset")
    child.expect("conversation cleared")
    child.expect("you> ")
    child.sendline("hi")
    child.expect("you> ")
    child.sendline(f"/save {saved}")
    child.expect("saved 3 messages")
    child.expect("you> ")
    child.sendline("/nope")
    child.expect("unknown command /nope")
    child.expect("you> ")
    child.sendeof()  # Ctrl-D: a clean exit
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    first, second = (json.loads(line)["messages"] for line in saved.read_text().splitlines())
    assert first[0] == {"role": "system", "content": "Be brief."}
    assert [m["role"] for m in first] == ["system", "user", "assistant"]
    assert 0 < len(first[1]["content"]) < len("great " * 400) and ("great " * 400).strip().endswith(
        first[1]["content"]
    )
    assert second[0] == {"role": "system", "content": "You are a travel agent."}  # kept across /reset
    assert [m["content"] for m in second[1:2]] == ["hi"]


def test_repl_quit_and_closed_terminal(model_dir):
    child = _spawn(model_dir)
    child.expect("you> ")
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    child = _spawn(model_dir)
    child.expect("you> ")
    child.sendintr()  # Ctrl-C at the prompt
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_session_streams_and_trims_history():
    from chat_tiny import tiny_chat_llama

    from promptft.chat.generate import GenerationSettings
    from promptft.chat.model import ChatModel
    from promptft.chat.repl import ChatSession
    from promptft.chat.templates import resolve_template

    model, tok = tiny_chat_llama()
    chat = ChatModel(model, tok, resolve_template(tok))
    session = ChatSession(chat, GenerationSettings(max_new_tokens=8, context_window=96), system="Be brief.")
    pieces: list[str] = []
    for i in range(8):
        session.reply(f"question {i} was great and good", pieces.append)
    assert pieces  # streamed piece by piece
    assert session.messages()[0] == {"role": "system", "content": "Be brief."}
    assert session.history[0]["role"] == "user" and "question 0" not in session.history[0]["content"]
    assert session.history[-2]["content"] == "question 7 was great and good"


def test_ctrl_c_ends_a_chat_started_with_sigint_ignored(model_dir):
    # A shell starts background jobs (`cmd &`) with SIGINT ignored, and Python then installs no
    # KeyboardInterrupt handler: the chat restores it, so Ctrl-C at the prompt still ends it.
    child = _spawn(model_dir, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    child.expect("you> ")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
