"""What every config section is: a pydantic model that forbids unknown keys and raises `ConfigError`.

pydantic checks the types; this module turns its errors into one-line messages a CLI user can act on: an
unknown key names the nearest valid one (difflib) and the valid keys of its section, a wrong type says
what was expected and what was given. No pydantic traceback reaches a user.
"""

from __future__ import annotations

import contextvars
import difflib
from collections.abc import Iterable, Mapping
from dataclasses import fields as dataclass_fields
from dataclasses import is_dataclass
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from promptft.errors import ConfigError

# pydantic's names for the members of a union, which appear in error locations ("label_words.x.str")
_UNION_TAGS = {"str", "int", "float", "bool", "none", "list[str]", "dict[str,str]", "list", "dict"}
_EXPECTED = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "string": "a string",
    "dict": "a mapping of key: value",
    "list": "a list",
}


def nearest(name: str, valid: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.5)
    return close[0] if close else None


def unknown_key_message(key: str, section: str, valid: Iterable[str], what: str = "config key") -> str:
    """`unknown config key 'data.feilds' (did you mean 'data.fields'?); valid keys of 'data': ...`"""
    valid = list(valid)
    name = key.rsplit(".", 1)[-1]
    close = nearest(name, valid)
    hint = f" (did you mean {_join(section, close)!r}?)" if close else ""
    of = f" of {section!r}" if section else ""
    return f"unknown {what} {key!r}{hint}; valid keys{of}: {', '.join(valid) or 'none'}"


def check_keys(data: Mapping[str, Any], valid: Iterable[str], section: str, what: str = "config key") -> None:
    """ConfigError naming the nearest valid key for the first key of `data` not in `valid`."""
    valid = list(valid)
    for key in data:
        if key not in valid:
            raise ConfigError(unknown_key_message(_join(section, str(key)), section, valid, what))


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _valid_keys(cls: Any, loc: tuple[Any, ...]) -> tuple[str, list[str]]:
    """The section a location points into and its valid keys (walking the models' annotations)."""
    target = cls
    for part in loc[:-1]:
        field = getattr(target, "model_fields", {}).get(part)
        if field is None:
            break
        annotation = field.annotation
        for arg in getattr(annotation, "__args__", ()) or ():  # Optional[Model]
            if isinstance(arg, type) and (issubclass(arg, BaseModel) or is_dataclass(arg)):
                annotation = arg
        target = annotation
    if isinstance(target, type) and issubclass(target, BaseModel):
        return ".".join(map(str, loc[:-1])), list(target.model_fields)
    if isinstance(target, type) and is_dataclass(target):
        return ".".join(map(str, loc[:-1])), [f.name for f in dataclass_fields(target)]
    return ".".join(map(str, loc[:-1])), []


def _bool_hint(value: Any, expected: str) -> str:
    if isinstance(value, bool) and expected == "a string":
        return ' (YAML reads bare yes/no/on/off as true/false: quote the word, e.g. "Yes")'
    return ""


def describe_error(cls: Any, err: ValidationError, prefix: str = "", what: str = "config key") -> str:
    """One message for a pydantic ValidationError on model `cls` (the first problem; the rest counted)."""
    errors = err.errors(include_url=False)
    # A union reports each member's failure; one line per location is enough.
    first = errors[0]
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p.replace(" ", "") in _UNION_TAGS))
    where = ".".join(map(str, loc))
    full = _join(prefix, where) if where else prefix
    kind, value = first["type"], first.get("input")
    if kind == "extra_forbidden":
        section, valid = _valid_keys(cls, loc)
        message = unknown_key_message(full, _join(prefix, section) if section else prefix, valid, what)
    elif kind == "literal_error":
        expected = first.get("ctx", {}).get("expected", "")
        message = f"{full} must be one of {expected.replace(' or ', ', ')}, got {value!r}"
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        ops = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
        bound = next(iter(first.get("ctx", {}).values()), "?")
        message = f"{full} must be {ops[kind]} {bound}, got {value!r}"
    elif kind == "missing":
        message = f"{full} is required"
    elif kind in ("value_error", "assertion_error"):
        text = str(first.get("ctx", {}).get("error") or first["msg"]).removeprefix("Value error, ")
        message = f"{full}: {text}" if full else text
    else:
        base = kind.split("_")[0]
        expected = _EXPECTED.get(base)
        if expected is None and kind in ("model_type", "dataclass_type", "model_attributes_type"):
            expected = "a mapping of key: value"
        if expected is not None:
            message = f"{full or 'the config'} must be {expected}, got {value!r}{_bool_hint(value, expected)}"
        else:
            message = f"{full or 'the config'}: {first['msg']} (got {value!r})"
    more = len({tuple(e["loc"][:2]) for e in errors}) - 1
    return message + (f" (and {more} more problem(s))" if more > 0 else "")


# True while a section validates: pydantic validates nested sections through their __init__, whose
# errors must stay pydantic's (so they keep their location) until the outermost call turns them into one.
_VALIDATING = contextvars.ContextVar("promptft_config_validating", default=False)


class Section(BaseModel):
    """A config section: unknown keys are errors, construction errors are `ConfigError`s."""

    model_config = ConfigDict(extra="forbid", validate_default=False, use_attribute_docstrings=True)
    # how an unknown key is called in messages when this section is validated on its own
    key_word: ClassVar[str] = "config key"

    def __init__(self, /, **data: Any) -> None:
        if _VALIDATING.get():
            super().__init__(**data)
            return
        token = _VALIDATING.set(True)
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise ConfigError(describe_error(type(self), err, what=self.key_word)) from None
        finally:
            _VALIDATING.reset(token)

    @classmethod
    def parse(cls, data: Any, where: str = "") -> Self:
        """Validate a plain mapping (e.g. parsed YAML); ConfigError naming the key that is wrong."""
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"{where or 'the config'} must be a mapping of key: value, got {type(data).__name__} {data!r}"
            )
        token = _VALIDATING.set(True)
        try:
            return cls.model_validate(dict(data))
        except ValidationError as err:
            raise ConfigError(describe_error(cls, err, where, cls.key_word)) from None
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}" if where else str(err)) from None
        finally:
            _VALIDATING.reset(token)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="python")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Self:
        return cls.parse(data)


def leaf_keys(cls: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """Every leaf field of a (nested) section as a dotted key -> its field info (for `--set` and tests)."""
    out: dict[str, Any] = {}
    for name, info in cls.model_fields.items():
        key = _join(prefix, name)
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out.update(leaf_keys(annotation, key))
        else:
            out[key] = info
    return out
