"""Conversational fine-tuning: data (`data`), chat templates (`templates`), loss masks and batches
(`encoding`), the model (`model`), the training loop (`train`), evaluation (`evaluate`), generation
(`generate`) and the terminal chat (`repl`)."""

from promptft.chat.data import (
    Conversation,
    read_conversations,
    read_dailydialog,
    read_sgd,
    split_conversations,
)
from promptft.chat.templates import DEFAULT_TEMPLATE, ChatFormat, resolve_template

__all__ = [
    "DEFAULT_TEMPLATE",
    "ChatFormat",
    "Conversation",
    "read_conversations",
    "read_dailydialog",
    "read_sgd",
    "resolve_template",
    "split_conversations",
]
