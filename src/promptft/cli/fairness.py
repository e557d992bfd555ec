"""`promptft fairness`, `promptft bias crows-pairs`: flags -> `promptft.recipes.fairness` / `.bias` -> text."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from promptft.cli.app import DeviceOpt, app

bias_app = typer.Typer(help="Social-bias benchmarks for language models.", no_args_is_help=True)
app.add_typer(bias_app, name="bias")


def merge_json(path: Path, key: str, entries: dict) -> dict:
    """Add `entries` under `key` of the JSON file at `path` (created if missing), keeping other entries."""
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.setdefault(key, {}).update(entries)
    data["command"] = "promptft " + " ".join(sys.argv[1:]) if sys.argv[1:] else data.get("command")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return data


@bias_app.command("crows-pairs")
def crows_pairs_command(
    model: Annotated[
        list[str], typer.Option("--model", "-m", help="Alias, folder or hub id; repeat or comma-separate.")
    ],
    data: Annotated[
        Path | None,
        typer.Option("--data", help="crows_pairs_anonymized.csv (default: in the shared data folder)."),
    ] = None,
    bias_type: Annotated[
        list[str] | None, typer.Option("--bias-type", help="Only these bias types (repeatable).")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N pairs.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 16,
    device: DeviceOpt = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Add the results to this JSON file (under models.<name>)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Score language models on CrowS-Pairs: the share of pairs where the model prefers the more
    stereotyping sentence (50 = no preference), per bias type. Causal LMs: log-likelihood; masked LMs:
    pseudo-log-likelihood of the shared tokens. Read the caveats printed with the result.

    Example: promptft bias crows-pairs --model smollm2-135m --output benchmarks/results/crows_pairs.json
    """
    from promptft.recipes.bias import crows_pairs

    names = [n.strip() for item in model for n in item.split(",") if n.strip()]
    results = {}
    for name in names:
        result = crows_pairs(
            name, data=data, bias_types=bias_type, limit=limit, batch_size=batch_size, device=device
        )
        results[name] = result.to_dict()
        if not as_json:
            typer.echo(result.render_text())
    if output is not None:
        merge_json(output, "models", results)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
