"""Chat templates: the tokenizer's own, a user's Jinja template (a file or the text itself), or a built-in
default for base models that ship none; plus an optional system prompt and the end-of-turn tokens that
stop generation.

Rendering uses transformers' own Jinja machinery (`tokenizer.apply_chat_template(..., chat_template=...)`),
so a template behaves here exactly as it does everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptft.errors import TemplateError

# For base models: plain role labels, the tokenizer's end-of-sequence token closing each assistant turn
# (so generation stops there). The generation prompt "Assistant:" is a prefix of a rendered assistant turn.
DEFAULT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{{ message['content'] + '\\n\\n' }}"
    "{%- elif message['role'] == 'user' -%}{{ 'User: ' + message['content'] + '\\n' }}"
    "{%- elif message['role'] == 'tool' -%}{{ 'Results: ' + message['content'] + '\\n' }}"
    "{%- else -%}{{ 'Assistant: ' + message['content'] + eos_token + '\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'Assistant:' }}{%- endif -%}"
)
# Tokens that close a turn in common template families.
_END_OF_TURN = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>", "<|endoftext|>")


@dataclass
class ChatFormat:
    """How conversations become text: `template` (Jinja), `system_prompt` (added when a conversation has
    no system message), `source` (tokenizer / user / default, for the run record)."""

    template: str
    system_prompt: str | None = None
    source: str = "tokenizer"

    def with_system(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        if self.system_prompt and (not messages or messages[0]["role"] != "system"):
            return [{"role": "system", "content": self.system_prompt}, *messages]
        return list(messages)

    def render(self, tokenizer, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
        try:
            return tokenizer.apply_chat_template(
                self.with_system(messages),
                chat_template=self.template,
                tokenize=False,
                add_generation_prompt=add_generation_prompt,
            )
        except Exception as exc:  # jinja errors (TemplateError, UndefinedError, ...) from a user template
            raise TemplateError(
                f"the chat template ({self.source}) failed to render: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}; check its Jinja syntax and that it reads "
                "messages[i]['role'] and ['content']"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        return {"template": self.template, "system_prompt": self.system_prompt, "source": self.source}


def resolve_template(
    tokenizer, template: str | None = "auto", system_prompt: str | None = None
) -> ChatFormat:
    """`template`: "auto" (the tokenizer's own, else the built-in default), "tokenizer", "default", a path
    to a `.jinja` file, or Jinja text itself."""
    template = template or "auto"
    own = getattr(tokenizer, "chat_template", None)
    if template == "auto":
        return (
            ChatFormat(own, system_prompt, "tokenizer")
            if own
            else ChatFormat(DEFAULT_TEMPLATE, system_prompt, "default")
        )
    if template == "tokenizer":
        if not own:
            raise TemplateError(
                "this tokenizer has no chat template (a base model): use template 'default' (built in), "
                "or give a Jinja template file"
            )
        return ChatFormat(own, system_prompt, "tokenizer")
    if template == "default":
        return ChatFormat(DEFAULT_TEMPLATE, system_prompt, "default")
    if "{%" in template or "{{" in template:
        return ChatFormat(template, system_prompt, "user")
    path = Path(template).expanduser()
    if not path.is_file():
        raise TemplateError(
            f"chat template {template!r} is neither 'auto', 'tokenizer', 'default', a Jinja file nor Jinja text"
        )
    return ChatFormat(path.read_text(), system_prompt, "user")


def end_of_turn_ids(tokenizer, fmt: ChatFormat | None = None) -> list[int]:
    """Token ids at which generation stops: eos, and the end-of-turn tokens the template uses."""
    ids = []
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    for token in _END_OF_TURN:
        if token in vocab and (fmt is None or token in fmt.template) and vocab[token] not in ids:
            ids.append(vocab[token])
    return ids
