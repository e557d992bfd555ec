"""Optional dependencies: one helper that imports them or says which extra to install.

promptft's core (`pip install promptft`) trains, evaluates and serves predictions from the command line.
Features that need more are grouped by use in `pyproject.toml`'s `[project.optional-dependencies]`:

| extra | for | packages (import names) |
|---|---|---|
| `setfit` | the SetFit and MiniLM baselines of the benchmark | `setfit`, `sentence_transformers` |
| `chat` | chat fine-tuning (SFT) and its metrics | `trl`, `rouge_score` |
| `serve` | the HTTP prediction server | `fastapi`, `uvicorn`, `httpx` |
| `onnx` | ONNX export, quantisation, pruning | `onnx`, `onnxruntime`, `onnx_ir`, `torch_pruning` |
| `fairness` | fairness audits | `fairlearn` |
| `docs` | building the documentation site | `mkdocs`, `material`, `mkdocstrings` |

Code that needs one of them imports it *inside the function that uses it* (never at module top, so that
`import promptft.<anything>` works with the core alone) and goes through `require`:

    from promptft.optional import require

    def serve(model_dir, port):
        fastapi = require("fastapi", "serve", feature="promptft serve")
        uvicorn = require("uvicorn", "serve", feature="promptft serve")
        ...

A missing package is a `MissingDependencyError` (a `PromptFTError`, so the CLI prints `error: ...` and exits
with code 2): ``promptft serve needs the `fastapi` package, which is not installed: pip install
"promptft[serve]"``. `tests/test_optional.py` checks that every module of the package imports with all
optional groups missing, and that this table matches `pyproject.toml`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from promptft.errors import PromptFTError

# extra -> the import names of its packages (pyproject.toml's distribution names, as Python imports them)
GROUPS: dict[str, tuple[str, ...]] = {
    "setfit": ("setfit", "sentence_transformers"),
    "chat": ("trl", "rouge_score"),
    "serve": ("fastapi", "uvicorn", "httpx"),
    "onnx": ("onnx", "onnxruntime", "onnx_ir", "torch_pruning"),
    "fairness": ("fairlearn",),
    "docs": ("mkdocs", "material", "mkdocstrings"),
}


class MissingDependencyError(PromptFTError):
    """An optional package is not installed; the message names the extra that brings it."""


def install_hint(group: str) -> str:
    """The command that installs an extra: `pip install "promptft[serve]"`."""
    if group not in GROUPS:
        raise ValueError(f"unknown optional group {group!r}; known: {', '.join(GROUPS)}")
    return f'pip install "promptft[{group}]"'


def require(module: str, group: str, *, feature: str | None = None) -> ModuleType:
    """Import `module` (e.g. "fastapi", or a submodule "fairlearn.metrics") and return it, or raise
    `MissingDependencyError` saying which extra installs it. `feature` names what needed it in the message
    (default: "this feature")."""
    hint = install_hint(group)
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        missing = getattr(exc, "name", None) or top
        what = feature or "this feature"
        if missing.split(".")[0] != top:  # the package is there but one of its own dependencies is not
            raise MissingDependencyError(
                f"{what} needs `{module}`, which failed to import ({exc}); reinstall its extra: {hint}"
            ) from None
        raise MissingDependencyError(
            f"{what} needs the `{top}` package, which is not installed: {hint}"
        ) from None


def is_available(module: str) -> bool:
    """Whether `module` can be imported (without raising), e.g. to skip an optional step."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
