"""Prompt building blocks: templates, verbalizers, and encoding with safe truncation."""

from promptft.prompts.demonstrations import DemonstrationSettings
from promptft.prompts.encoding import EncodedPrompt, PromptEncoder
from promptft.prompts.template import Template
from promptft.prompts.verbalizer import TokenizedWords, Verbalizer

__all__ = [
    "DemonstrationSettings",
    "EncodedPrompt",
    "PromptEncoder",
    "Template",
    "TokenizedWords",
    "Verbalizer",
]
