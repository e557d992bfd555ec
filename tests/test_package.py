"""The lazily imported public API: the three lists of names in promptft/__init__.py agree and all resolve."""

import ast
import importlib
import inspect

import promptft


def _type_checking_imports() -> set[str]:
    tree = ast.parse(inspect.getsource(promptft))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                names.update(alias.asname or alias.name for alias in stmt.names)
    return names


def test_public_names_are_declared_consistently():
    assert sorted(promptft.__all__) == sorted(promptft._EXPORTS)
    assert _type_checking_imports() == set(promptft._EXPORTS)


def test_every_public_name_resolves_from_its_module():
    for name, module in promptft._EXPORTS.items():
        assert getattr(promptft, name) is getattr(importlib.import_module(module), name)
