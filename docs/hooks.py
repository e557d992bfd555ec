"""mkdocs hooks (mkdocs.yml `hooks:`): the pages that are generated at build time, so they cannot drift.

* `<!-- generated: cli-reference -->` becomes the reference of every `promptft` command, walked from the
  Typer app itself (its help texts, usage, arguments and options with types and defaults).
* `<!-- generated: benchmarks -->` becomes the benchmark tables, read from `benchmarks/results/` (the
  report `promptft bench report` wrote, plus the demo and speed JSON files with their commands).
* `<!-- include: FILE -->` becomes the text of a file at the repository root (NOTICE, CONTRIBUTING.md,
  CHANGELOG.md), its first heading dropped.

`python docs/hooks.py cli` prints the CLI reference (what the page shows).
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT / "src") not in sys.path:  # the checkout's package, also when promptft is installed elsewhere
    sys.path.insert(0, str(ROOT / "src"))

_MARKER = re.compile(r"<!-- (generated|include): ([\w.\-]+) -->")


# ---------------------------------------------------------------------------------------------------------
# mkdocs events


def on_page_markdown(markdown: str, page, config, files) -> str:
    def replace(match: re.Match) -> str:
        kind, name = match.groups()
        if kind == "include":
            return include(name)
        return GENERATORS[name]()

    return _MARKER.sub(replace, markdown)


def on_files(files, config):
    """The benchmark plot, from benchmarks/results/, as a file of the site."""
    from mkdocs.structure.files import File

    plot = RESULTS / "fewshot.png"
    if plot.exists():
        files.append(File.generated(config, "assets/fewshot.png", abs_src_path=str(plot)))
    return files


# ---------------------------------------------------------------------------------------------------------
# includes


def include(name: str) -> str:
    text = (ROOT / name).read_text()
    lines = text.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join(lines).strip() + "\n"


# ---------------------------------------------------------------------------------------------------------
# the CLI reference


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def _help_markdown(text: str) -> str:
    """A command's docstring as markdown: paragraphs kept, indented example lines as a bash block."""
    text = inspect.cleandoc(text or "")
    out: list[str] = []
    code: list[str] = []

    def flush() -> None:
        if code:
            out.extend(["", "```bash", *code, "```", ""])
            code.clear()

    for line in text.splitlines():
        if line.startswith("    ") and line.strip():
            code.append(line.strip())
        else:
            flush()
            out.append(line)
    flush()
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()


def _type_name(param, ctx) -> str:
    if getattr(param, "is_flag", False):
        return "flag" if not param.secondary_opts else "flag / negation"
    name = getattr(param, "metavar", None) or param.display_type(ctx).strip("<>")
    return f"`{name}`" if name else ""


def _default(param) -> str:
    default = param.default
    if param.required:
        return "required"
    if default is None or default == () or default is False or callable(default):
        return ""
    return f"`{default}`"


def _command_markdown(command, path: list[str]) -> list[str]:
    name = " ".join(path)
    ctx = command.make_context(name, [], resilient_parsing=True)
    level = "#" * min(len(path) + 1, 4)
    lines = [f"{level} `{name}`", "", _help_markdown(command.help or ""), ""]
    usage = " ".join(command.collect_usage_pieces(ctx))
    usage = re.sub(r"\{(\w+)\}", lambda m: m.group(1).upper(), usage)
    lines += ["```text", f"{name} {usage}".rstrip(), "```", ""]
    params = [p for p in command.params if not getattr(p, "hidden", False)]
    arguments = [p for p in params if p.param_type_name == "argument"]
    options = [p for p in params if p.param_type_name == "option"]
    if arguments:
        lines += ["| argument | type | description |", "|---|---|---|"]
        for p in arguments:
            text = _escape(getattr(p, "help", "") or "")
            lines.append(f"| `{p.name.upper()}` | {_type_name(p, ctx)} | {text} |")
        lines.append("")
    if options:
        lines += ["| option | type | default | description |", "|---|---|---|---|"]
        for p in options:
            flags = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
            lines.append(f"| {flags} | {_type_name(p, ctx)} | {_default(p)} | {_escape(p.help or '')} |")
        lines.append("")
    subcommands = getattr(command, "commands", None) or {}
    for sub_name in subcommands:
        sub = subcommands[sub_name]
        if not getattr(sub, "hidden", False):
            lines += _command_markdown(sub, [*path, sub_name])
    return lines


def cli_reference() -> str:
    import typer.main

    from promptft.cli import app

    root = typer.main.get_command(app)
    lines = [
        "Generated from the `promptft` command itself when the site is built (each command's `--help`",
        "says the same).",
        "",
    ]
    lines += _command_markdown(root, ["promptft"])
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# the benchmark tables


def _json(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def benchmarks() -> str:
    demo = _json("demo.json")
    predict = _json("predict_speed.json")
    lines = [
        "Read from `benchmarks/results/` when the site is built; each number comes from the command",
        "recorded beside it.",
        "",
        "## The demo and speed",
        "",
        "| what | number | command |",
        "|---|---|---|",
        f"| `make demo`: SST-2 16-shot (seed 42), LoRA prompt fine-tuning on {demo['model']} | test accuracy "
        f"**{demo['accuracy']:.1f}** (zero-shot {demo['zero_shot_accuracy']:.1f}) on {demo['n_test']} "
        f"sentences, {demo['wall_s']:.0f} s wall, {demo['peak_rss_mb'] / 1000:.1f} GB peak RSS | "
        f"`{demo['command']}` |",
        f"| prediction throughput vs plain transformers ({predict['model']}) | **{predict['ratio']:.2f}x** "
        f"({predict['promptft_examples_per_s']:.1f} vs {predict['baseline_examples_per_s']:.1f} examples/s) | "
        f"`{predict['command']}` |",
    ]
    for name in sorted(p.name for p in RESULTS.glob("train_speed*.json")):
        train = _json(name)
        layers = (train.get("lora") or {}).get("top_layers")
        where = f"LoRA on the top {layers} layers" if layers else "LoRA on every layer"
        lines.append(
            f"| training step vs transformers + peft, {where} | **{train['ratio']:.2f}x** "
            f"({train['promptft_s_per_step']:.2f} vs {train['baseline_s_per_step']:.2f} s/step) | "
            f"`{train['command']}` |"
        )
    report = (RESULTS / "fewshot.md").read_text().splitlines()
    if report and report[0].startswith("# "):
        report = report[1:]
    lines += ["", "## The few-shot benchmark (LM-BFF protocol)", "", *report, ""]
    if (RESULTS / "fewshot.png").exists():
        lines += ["![Few-shot accuracy per task and method](assets/fewshot.png)", ""]
    return "\n".join(lines)


GENERATORS = {"cli-reference": cli_reference, "benchmarks": benchmarks}


if __name__ == "__main__":
    print(GENERATORS[{"cli": "cli-reference"}.get(sys.argv[1], sys.argv[1])]())
