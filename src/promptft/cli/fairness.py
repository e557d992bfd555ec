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


@app.command("fairness")
def fairness_command(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (or its best/) written by `promptft train`.")],
    data: Annotated[
        str | None, typer.Option("--data", help="Labelled data to audit (csv, tsv, jsonl, json).")
    ] = None,
    group_column: Annotated[
        str | None,
        typer.Option("--group-column", help="Column of --data naming each row's group: group fairness."),
    ] = None,
    positive_label: Annotated[
        str | None,
        typer.Option("--positive-label", help="The outcome whose rate is compared (default: the 2nd label)."),
    ] = None,
    counterfactual: Annotated[
        bool,
        typer.Option("--counterfactual/--no-counterfactual", help="Swap identity terms in the --data texts."),
    ] = True,
    term_group: Annotated[
        list[str] | None,
        typer.Option("--term-group", help="gender, names, religion, nationality (default: all); repeatable."),
    ] = None,
    terms_dir: Annotated[
        Path | None, typer.Option("--terms-dir", help="A folder of your own <term-group>.txt lists.")
    ] = None,
    probe: Annotated[
        bool, typer.Option("--probe", help="Also run the equity probe (templates by gender, race, ...).")
    ] = False,
    hatecheck: Annotated[
        Path | None,
        typer.Option("--hatecheck", help="HateCheck's test_suite_cases.csv: for hate-speech classifiers."),
    ] = None,
    hateful_label: Annotated[
        str | None, typer.Option("--hateful-label", help="The classifier's label for hateful text.")
    ] = None,
    text_field: Annotated[
        str | None, typer.Option("--text-field", metavar="COLUMN", help="The text column of --data.")
    ] = None,
    label_column: Annotated[str | None, typer.Option("--label-column", metavar="COLUMN")] = None,
    label_map: Annotated[list[str] | None, typer.Option("--label-map", metavar="RAW=NAME")] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Folder for fairness.json + fairness.md (default: RUN_DIR/fairness)."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    device: DeviceOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Audit a trained classifier for unequal treatment of groups of people: per-group accuracy, selection
    rates, demographic-parity and equalized-odds differences (fairlearn) over --group-column; how often
    predictions flip when identity terms in the texts are swapped; the equity probe (--probe); HateCheck
    per functionality and target group (--hatecheck). Exit code 1 when something is flagged.

    Example: promptft fairness runs/sst2 --data ../shared/data/SST-2/test.tsv --probe
    """
    from promptft.cli.app import columns
    from promptft.recipes.fairness import FAIRNESS_DIR, fairness_audit
    from promptft.recipes.run_dir import classifier_dir

    result = fairness_audit(
        run_dir,
        data,
        group_column=group_column,
        columns=columns(None, text_field, label_column, label_map),
        positive_label=positive_label,
        counterfactual=counterfactual and data is not None,
        term_groups=term_group,
        terms_dir=terms_dir,
        probe=probe,
        hatecheck=hatecheck,
        hateful_label=hateful_label,
        batch_size=batch_size,
        device=device,
    )
    folder = output
    if folder is None:
        base = classifier_dir(run_dir)
        folder = (base.parent if base.name == "best" else base) / FAIRNESS_DIR
    result.save(folder)
    typer.echo(json.dumps(result.to_dict(), indent=2) if as_json else result.render_markdown())
    if not as_json:
        typer.echo(f"saved: {folder}/fairness.json, fairness.md")
    raise typer.Exit(1 if result.flagged else 0)
