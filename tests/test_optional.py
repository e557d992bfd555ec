"""Optional dependency groups: every module imports with the core alone, and a missing group is a clear
error naming its extra (`promptft.optional`)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from promptft.errors import PromptFTError
from promptft.optional import GROUPS, MissingDependencyError, install_hint, is_available, require

ROOT = Path(__file__).resolve().parents[1]

# distribution name (pyproject) -> import name, where they differ
_IMPORT_NAMES = {"rouge-score": "rouge_score", "sentence-transformers": "sentence_transformers",
                 "torch-pruning": "torch_pruning", "mkdocs-material": "material"}  # fmt: skip


def _extras() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = {}
    for group, requirements in project["optional-dependencies"].items():
        names = [re.split(r"[\[<>=!~ ]", req, maxsplit=1)[0] for req in requirements]
        out[group] = [_IMPORT_NAMES.get(n, n.replace("-", "_")) for n in names]
    return out


def test_groups_match_pyproject_extras():
    extras = _extras()
    for group, modules in GROUPS.items():
        assert group in extras, f"{group} is not an extra in pyproject.toml"
        assert sorted(modules) == sorted(extras[group]), group
    assert set(extras) - set(GROUPS) == {"dev"}  # dev tools are never imported by the package


def test_require_returns_the_module_or_names_the_extra(monkeypatch):
    assert require("json", "serve").dumps([]) == "[]"
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if it were not installed
    with pytest.raises(MissingDependencyError, match=r'promptft serve needs the `fastapi` package, which is '
                       r'not installed: pip install "promptft\[serve\]"'):  # fmt: skip
        require("fastapi", "serve", feature="promptft serve")
    assert issubclass(MissingDependencyError, PromptFTError)  # the CLI prints it as `error: ...`, exit 2
    assert not is_available("fastapi") and is_available("json")
    with pytest.raises(ValueError, match="unknown optional group"):
        install_hint("nope")


def test_setfit_method_without_setfit_names_the_extra(monkeypatch):
    from promptft.bench.methods import setfit

    monkeypatch.setitem(sys.modules, "setfit", None)
    with pytest.raises(MissingDependencyError, match=r"promptft\[setfit\]"):
        setfit(None, None, None, 0, {})  # type: ignore[arg-type]


def test_every_module_imports_with_no_optional_group_installed():
    """A fresh process where every optional package fails to import: all of promptft still imports."""
    blocked = sorted({m for modules in GROUPS.values() for m in modules})
    code = f"""
import importlib, pkgutil, sys
blocked = {blocked!r}

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"blocked for the test: {{name}}", name=name)

sys.meta_path.insert(0, Block())
import promptft
failed = []
for info in pkgutil.walk_packages(promptft.__path__, "promptft."):
    try:
        importlib.import_module(info.name)
    except Exception as exc:
        failed.append(f"{{info.name}}: {{exc!r}}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""
    env_path = str(ROOT / "src")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
