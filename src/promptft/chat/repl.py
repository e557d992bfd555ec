"""The terminal chat: reads a line, streams the assistant's reply token by token, keeps the history inside
the context window (oldest turns dropped first, the system prompt kept).

Commands: /reset (forget the conversation), /system TEXT (set the system prompt; /system alone clears it),
/save FILE (the conversation as one JSONL record of messages), /set NAME VALUE (temperature, top_p,
max_new_tokens, repetition_penalty), /settings, /help, /quit. An empty line is ignored; end of input
(Ctrl-D, a closed terminal) and Ctrl-C at the prompt end the chat cleanly; Ctrl-C during a reply stops it.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from promptft.chat.generate import GenerationSettings, fit_history, stream
from promptft.chat.model import ChatModel
from promptft.errors import ConfigError, PromptFTError

HELP = (
    "commands: /reset  /system TEXT  /save FILE  /set NAME VALUE (temperature, top_p, max_new_tokens, "
    "repetition_penalty)  /settings  /help  /quit"
)
_SETTABLE = {"temperature": float, "top_p": float, "max_new_tokens": int, "repetition_penalty": float}


class ChatSession:
    """The conversation state and the commands, apart from terminal I/O (the REPL and tests drive it)."""

    def __init__(
        self, chat: ChatModel, settings: GenerationSettings | None = None, system: str | None = None
    ):
        self.chat = chat
        self.settings = settings or GenerationSettings(max_new_tokens=256, temperature=0.7, top_p=0.9)
        self.system = system if system is not None else chat.format.system_prompt
        self.history: list[dict[str, str]] = []

    def messages(self) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + self.history

    def reply(self, text: str, write: Callable[[str], None]) -> str:
        """Add the user's turn, stream the answer through `write`, keep it in the history."""
        self.history.append({"role": "user", "content": text})
        kept, _ = fit_history(self.chat, self.messages(), self.settings)
        # the history itself shrinks to what fits (the system prompt is not part of it)
        self.history = [m for m in kept if m["role"] != "system"] if self.system else kept
        pieces = []
        try:
            for piece in stream(self.chat, self.messages(), self.settings):
                pieces.append(piece)
                write(piece)
        except KeyboardInterrupt:
            write(" [stopped]")
        answer = "".join(pieces).strip()
        self.history.append({"role": "assistant", "content": answer})
        return answer

    def command(self, line: str) -> str | None:
        """Run a /command; returns a message to show, or None to quit."""
        name, _, arg = line[1:].partition(" ")
        arg = arg.strip()
        if name in ("quit", "exit", "q"):
            return None
        if name == "reset":
            self.history = []
            return "(conversation cleared)"
        if name == "system":
            self.system = arg or None
            return f"(system prompt set: {arg})" if arg else "(system prompt cleared)"
        if name == "save":
            if not arg:
                return "usage: /save FILE"
            path = Path(arg).expanduser()
            try:
                with open(path, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"messages": self.messages()}, ensure_ascii=False) + "\n")
            except OSError as exc:
                return f"could not save to {path}: {exc.strerror}"
            return f"(saved {len(self.messages())} messages to {path})"
        if name == "set":
            key, _, value = arg.partition(" ")
            if key not in _SETTABLE or not value.strip():
                return f"usage: /set NAME VALUE with NAME one of {', '.join(_SETTABLE)}"
            try:
                self.settings = replace(self.settings, **{key: _SETTABLE[key](value.strip())})
            except (ValueError, ConfigError) as exc:
                return f"not set: {exc}"
            return f"({key} = {getattr(self.settings, key)})"
        if name == "settings":
            s = self.settings
            return (
                f"temperature {s.temperature}, top_p {s.top_p}, max_new_tokens {s.max_new_tokens}, "
                f"repetition_penalty {s.repetition_penalty}, system prompt: {self.system or '(none)'}"
            )
        if name == "help":
            return HELP
        return f"unknown command /{name}; {HELP}"


def _restore_ctrl_c() -> None:
    """Make Ctrl-C end the chat even when it was started with SIGINT ignored: a shell starts background
    jobs (`cmd &`) that way and Python then never installs its KeyboardInterrupt handler."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def run_repl(session: ChatSession, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """The read-reply loop; returns 0 at /quit or end of input."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    interactive = stdin.isatty()
    if interactive:
        _restore_ctrl_c()

    def write(text: str) -> None:
        try:
            stdout.write(text)
            stdout.flush()
        except (BrokenPipeError, OSError):  # the terminal went away mid-reply
            raise EOFError from None

    try:
        write(f"chatting with {session.chat.base_model or 'the model'} ({HELP.split(':', 1)[0]}: /help)\n")
        while True:
            try:
                if interactive:
                    line = input("you> ")
                else:
                    write("you> ")
                    line = stdin.readline()
                    if not line:
                        raise EOFError
            except (EOFError, KeyboardInterrupt):
                write("\n")
                return 0
            line = line.strip()
            if not line:
                continue
            if line.startswith("/"):
                message = session.command(line)
                if message is None:
                    return 0
                write(message + "\n")
                continue
            write("assistant> ")
            try:
                session.reply(line, write)
            except PromptFTError as err:
                write(f"\nerror: {err}\n")
                continue
            write("\n")
    except EOFError:
        return 0
