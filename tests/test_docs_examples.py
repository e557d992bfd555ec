"""Every code example in the README and the documentation runs, so the docs cannot drift from the API.

* ```python blocks run in order, one namespace per file, from a scratch folder where `../shared/data` is
  the shared data and `runs/` is fresh. By default the offline aliases (`smollm2-135m`, `gemma3-270m`) are
  tiny random Llamas (through `$PROMPTFT_CACHE`, the real code path) and every training run is cut to 4
  steps: the API is exercised in seconds.
* A file with a block preceded by `<!-- docs-test: real-model -->` runs on the real offline model
  instead (marked slow: the quickstart's 60 LoRA steps, ~1-2 min on a CPU).
* `<!-- docs-test: skip (reason) -->` before a block leaves it out (a sketch with placeholders).
* Every `promptft ...` command in a ```bash block names existing (sub)commands and options, and every
  `make X` an existing Makefile target.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from tiny import tiny_llama

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DOC_FILES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").rglob("*.md"))]
_BLOCK = re.compile(r"(?:<!-- docs-test: ([^>]*?) -->\n)?```(python|bash)\n(.*?)^```", re.S | re.M)


@dataclass
class Block:
    path: Path
    line: int
    lang: str
    code: str
    marker: str


def blocks(path: Path, lang: str) -> list[Block]:
    text = path.read_text()
    out = []
    for match in _BLOCK.finditer(text):
        marker, block_lang, code = match.groups()
        if block_lang == lang:
            line = text.count("\n", 0, match.start(2)) + 2
            out.append(Block(path, line, lang, code, (marker or "").strip()))
    return out


def _pages(mode: str) -> list[Path]:
    pages = []
    for path in DOC_FILES:
        runnable = [b for b in blocks(path, "python") if not b.marker.startswith("skip")]
        real = any(b.marker == "real-model" for b in runnable)
        if runnable and real == (mode == "real"):
            pages.append(path)
    return pages


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _run_page(path: Path) -> None:
    namespace: dict = {"__name__": "__docs__"}
    for block in blocks(path, "python"):
        if block.marker.startswith("skip"):
            continue
        code = compile(block.code, f"{_rel(path)}:{block.line}", "exec")
        exec(code, namespace)  # a failure's traceback names the file and the line in it


def _scratch(tmp_path: Path, monkeypatch) -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip("the shared data (../shared/data) is not here")
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared").symlink_to(SHARED)  # ../shared/data, as from the repository root
    (work / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(work)
    monkeypatch.delenv("PROMPTFT_DATA", raising=False)
    return work


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory) -> Path:
    """A model cache where the offline aliases are a tiny random Llama (same tokenizer interface)."""
    cache = tmp_path_factory.mktemp("tiny-cache")
    model, tok = tiny_llama()
    for alias in ("smollm2-135m", "gemma3-270m"):
        model.save_pretrained(cache / "models" / alias)
        tok.save_pretrained(cache / "models" / alias)
    return cache


def _short_training(monkeypatch, steps: int = 4) -> None:
    """On the tiny model the examples check the API, not what training reaches: every run is cut to a
    few steps (with a dev evaluation in between), whatever its TrainConfig says."""
    from promptft.training.trainer import Trainer

    original = Trainer.__init__

    def short(self, clf, config=None, *args, **kwargs):
        from promptft.training import TrainConfig

        config = config or TrainConfig()
        update = {"max_steps": min(config.max_steps, steps), "eval_every": min(config.eval_every, steps // 2)}
        original(self, clf, config.model_copy(update=update), *args, **kwargs)

    monkeypatch.setattr(Trainer, "__init__", short)


@pytest.mark.parametrize("path", _pages("tiny"), ids=_rel)
def test_python_examples_run_on_a_tiny_model(path, tiny_cache, tmp_path, monkeypatch):
    _scratch(tmp_path, monkeypatch)
    monkeypatch.setenv("PROMPTFT_CACHE", str(tiny_cache))
    _short_training(monkeypatch)
    _run_page(path)


def _smollm_installed() -> bool:
    from promptft.models.registry import REGISTRY, is_ready, package_dir

    return is_ready("smollm2-135m") or package_dir(REGISTRY["smollm2-135m"]) is not None


@pytest.mark.slow
@pytest.mark.skipif(
    not _smollm_installed(), reason="the offline SmolLM2 package is not installed (make setup)"
)
@pytest.mark.parametrize("path", _pages("real"), ids=_rel)
def test_python_examples_run_on_the_real_model(path, tmp_path, monkeypatch):
    _scratch(tmp_path, monkeypatch)
    _run_page(path)


def test_the_quickstart_runs_on_the_real_model_and_the_readme_shows_the_same_code():
    assert ROOT / "docs" / "quickstart.md" in _pages("real")
    quick = blocks(ROOT / "docs" / "quickstart.md", "python")[0].code
    readme = blocks(ROOT / "README.md", "python")[0].code
    assert quick.strip() == readme.strip(), "keep README's example and the quickstart's the same"


# ---------------------------------------------------------------------------------------------------------
# shell commands


def _commands(code: str) -> list[list[str]]:
    """The commands of a bash block: continuation lines joined, comments dropped, split at && ; |."""
    text = code.replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            continue
        current: list[str] = []
        for token in tokens:
            if token in ("&&", ";", "||", "|"):
                out.append(current)
                current = []
            else:
                current.append(token.strip("[]"))
        out.append(current)
    return [c for c in out if c]


def _cli_checks() -> list[tuple[str, list[str]]]:
    found = []
    for path in DOC_FILES:
        for block in blocks(path, "bash"):
            for command in _commands(block.code):
                if "promptft" in command:
                    start = command.index("promptft")
                    found.append((f"{_rel(path)}:{block.line}", command[start + 1 :]))
    return found


def test_documented_commands_and_options_exist():
    import typer.main

    from promptft.cli import app

    root = typer.main.get_command(app)
    checked, problems = 0, []
    for where, args in _cli_checks():
        command, path = root, ["promptft"]
        while args and getattr(command, "commands", None) and args[0] in command.commands:
            command = command.commands[args[0]]
            path.append(args.pop(0))
        if getattr(command, "commands", None) and args and not args[0].startswith("-"):
            problems.append(f"{where}: no command {' '.join(path)} {args[0]}")
            continue
        names = {"--help"} | {
            o for p in command.params for o in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]
        }
        for token in args:
            if token.startswith("-") and token != "-" and not re.fullmatch(r"-\d.*", token):
                flag = token.split("=", 1)[0]
                if flag not in names:
                    problems.append(f"{where}: {' '.join(path)} has no option {flag}")
        checked += 1
    assert not problems, "\n".join(problems)
    assert checked >= 20  # the README and the docs show many commands: the check really ran


def test_documented_make_targets_exist():
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    missing = []
    for path in DOC_FILES:
        for block in blocks(path, "bash"):
            for command in _commands(block.code):
                if command[0] == "make" and len(command) > 1 and command[1] not in targets:
                    missing.append(f"{_rel(path)}:{block.line}: make {command[1]}")
    assert not missing, "\n".join(missing)
