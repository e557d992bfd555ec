"""Templates: text with named fields and exactly one slot, e.g. ``"{text} It was {mask}."``.

Literal braces are written doubled (``{{`` / ``}}``). In templates given as text (the command line,
YAML job files) ``\\n`` and ``\\t`` stand for a newline and a tab and ``\\\\`` for a backslash
(`unescape_template`), as ``"\\n"`` does in a Python string. The slot is where the label word goes: for a
masked LM the mask token, for a causal LM the next token (text after the slot is dropped, since a
left-to-right model cannot see it anyway), for seq2seq the decoder's first token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from promptft.errors import TemplateError

SLOT = "mask"
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_ESCAPE = re.compile(r"\\([nt\\])")
_UNESCAPED = {"n": "\n", "t": "\t", "\\": "\\"}
_BRACES_HINT = 'write literal braces doubled ({{ for {, }} for }), e.g. "{text} {{sic}} It was {mask}."'


def unescape_template(text: str) -> str:
    """A template typed as text (a CLI flag, a YAML value) -> the template: `\\n` is a newline, `\\t` a
    tab, `\\\\` a backslash; any other backslash stays as it is."""
    return _ESCAPE.sub(lambda m: _UNESCAPED[m.group(1)], text)


def escape_template(text: str) -> str:
    """The inverse of `unescape_template`, for writing a template back as text (a job's YAML file)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


@dataclass(frozen=True)
class Segment:
    kind: str  # "literal" | "field" | "slot"
    value: str  # literal text or field name


@dataclass(frozen=True)
class Template:
    text: str
    segments: tuple[Segment, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(_parse(self.text)))

    @property
    def fields(self) -> tuple[str, ...]:
        """Field names in order of first appearance."""
        seen: dict[str, None] = {}
        for seg in self.segments:
            if seg.kind == "field":
                seen.setdefault(seg.value)
        return tuple(seen)

    @property
    def before_slot(self) -> tuple[Segment, ...]:
        return self.segments[: self._slot_index]

    @property
    def after_slot(self) -> tuple[Segment, ...]:
        return self.segments[self._slot_index + 1 :]

    @property
    def _slot_index(self) -> int:
        return next(i for i, s in enumerate(self.segments) if s.kind == "slot")

    @property
    def space_before_slot(self) -> bool:
        """Whether the slot follows a space: then the label word carries that space (" great")."""
        before = self.before_slot
        return bool(before) and before[-1].kind == "literal" and before[-1].value.endswith(" ")

    @property
    def has_text_after_slot(self) -> bool:
        return any(s.kind != "literal" or s.value.strip() for s in self.after_slot)

    def check_fields(self, available: set[str] | list[str] | tuple[str, ...]) -> None:
        """Raise if the template uses a field the data does not provide."""
        missing = [f for f in self.fields if f not in set(available)]
        if missing:
            raise TemplateError(
                f"template {self.text!r} uses field(s) {missing} that the data does not have "
                f"(available: {sorted(available)}); rename the placeholder or map a column to it"
            )

    def render(self, values: dict[str, str], slot_text: str = "{mask}") -> str:
        """The prompt as one string (for display, and for models read as plain text)."""
        self.check_fields(list(values))
        out = []
        for seg in self.segments:
            if seg.kind == "literal":
                out.append(seg.value)
            elif seg.kind == "field":
                out.append(values[seg.value])
            else:
                out.append(slot_text)
        return "".join(out)


def _parse(text: str) -> list[Segment]:
    if not isinstance(text, str) or not text.strip():
        raise TemplateError('template is empty: write one with a slot, e.g. "{text} It was {mask}."')
    segments: list[Segment] = []
    literal: list[str] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(text):
        literal.append(text[pos : match.start()])
        pos = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            literal.append(token[0])
            continue
        name = match.group(1).strip()
        if not name.isidentifier():
            raise TemplateError(
                f"template {text!r} has a bad placeholder {token!r}: use {{field_name}} or {{mask}}, "
                f"and {_BRACES_HINT}"
            )
        if "".join(literal):
            segments.append(Segment("literal", "".join(literal)))
            literal = []
        segments.append(Segment("slot" if name == SLOT else "field", name))
    rest = text[pos:]
    if "{" in rest or "}" in rest:
        raise TemplateError(f"template {text!r} has an unmatched brace: {_BRACES_HINT}")
    literal.append(rest)
    if "".join(literal):
        segments.append(Segment("literal", "".join(literal)))
    slots = sum(s.kind == "slot" for s in segments)
    if slots == 0:
        raise TemplateError(
            f"template {text!r} has no {{mask}} slot: add one where the label word goes, "
            'e.g. "{text} It was {mask}."'
        )
    if slots > 1:
        raise TemplateError(f"template {text!r} has {slots} {{mask}} slots: use exactly one")
    if not any(s.kind == "field" for s in segments):
        raise TemplateError(
            f"template {text!r} has no input field: add one, e.g. {{text}}, so the example appears in the prompt"
        )
    return segments
