"""`promptft data audit|sample` and `promptft diagnose`: flags -> `promptft.recipes.audit` / `.sample` /
`.diagnose` -> text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from promptft.cli.app import (
    FieldOpt,
    FormatOpt,
    HeaderOpt,
    LabelColumnOpt,
    LabelMapOpt,
    TextFieldOpt,
    app,
    columns,
)
from promptft.errors import ConfigError

data_app = typer.Typer(help="Look at labelled data before training on it.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("audit")
def audit(
    train: Annotated[str, typer.Argument(help="The training file (csv, tsv, jsonl, json).")],
    dev: Annotated[
        str | None, typer.Option("--dev", help="Dev file: audited too, and checked for overlap.")
    ] = None,
    test: Annotated[
        str | None,
        typer.Option("--test", help="Test file: audited too; overlap with train or dev is an error."),
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="The pool a k-shot sample was drawn from: compared against only."),
    ] = None,
    field: FieldOpt = None,
    text_field: TextFieldOpt = None,
    label_column: LabelColumnOpt = None,
    label_map: LabelMapOpt = None,
    header: HeaderOpt = None,
    data_format: FormatOpt = None,
    template: Annotated[
        str | None,
        typer.Option("--template", help="With --model: report texts this template would truncate."),
    ] = None,
    label_words: Annotated[
        list[str] | None,
        typer.Option("--label-words", help="LABEL=WORD pairs: report labels without a word."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Alias or folder whose tokenizer counts tokens.")
    ] = None,
    max_length: Annotated[
        int, typer.Option("--max-length", min=8, help="The model's context budget in tokens.")
    ] = 256,
    k: Annotated[
        int | None, typer.Option("--k", help="Intended examples per label of a k-shot sample.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON on stdout.")] = False,
) -> None:
    """Audit labelled data: class balance, duplicates and near duplicates, conflicting labels, train/dev/test
    overlap, empty or extreme texts, truncation, labels without words or too rare to learn.

    Each finding has a severity, the rows involved and a fix. Exit code 1 when any finding is an error (for
    pipelines), else 0.

    Example:

        promptft data audit ../shared/data/SST-2/k-shot/16-42/train.tsv --dev ../shared/data/SST-2/k-shot/16-42/dev.tsv --test ../shared/data/SST-2/test.tsv
    """
    from promptft.cli.values import parse_label_words
    from promptft.prompts.template import unescape_template
    from promptft.recipes.audit import audit_files

    report = audit_files(
        train,
        dev=dev,
        test=test,
        reference=reference,
        columns=columns(field, text_field, label_column, label_map, header, data_format),
        template=unescape_template(template) if template else None,
        label_words=parse_label_words(label_words) if label_words else None,
        model=model,
        max_length=max_length,
        k=k,
    )
    typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.render_text())
    raise typer.Exit(report.exit_code)


@data_app.command("sample")
def sample(
    source: Annotated[
        str,
        typer.Argument(
            help="A labelled file (csv, tsv, jsonl, json) or dataset (hf:NAME:SPLIT, a saved folder)."
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the <k>-<seed>/ splits.")],
    k: Annotated[
        int, typer.Option("--k", min=1, help="Training examples per class (multi-label: per label).")
    ] = 16,
    seeds: Annotated[
        str, typer.Option("--seeds", help="Comma-separated seeds: one split per seed, e.g. 13,21,42,87,100.")
    ] = "42",
    dev_k: Annotated[
        int | None,
        typer.Option("--dev-k", min=0, help="Dev examples per class (default: k; 0: no dev file)."),
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option("--labels", help="Comma-separated label names to sample (default: every label)."),
    ] = None,
    task: Annotated[
        Literal["single_label", "multi_label"],
        typer.Option("--task", help="multi_label: comma-separated labels in the label column."),
    ] = "single_label",
    field: FieldOpt = None,
    text_field: TextFieldOpt = None,
    label_column: LabelColumnOpt = None,
    label_map: LabelMapOpt = None,
    header: HeaderOpt = None,
    data_format: FormatOpt = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace splits an earlier run wrote in --output.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the splits' records as JSON.")] = False,
) -> None:
    """Sample few-shot train/dev splits (LM-BFF style: k rows per class in train, dev_k more in dev), one
    folder per seed, each file in the source's format with all its columns, plus sample.json.

    Example:

        promptft data sample reviews.csv --label-column stars --k 16 --seeds 13,21,42,87,100 --output splits
    """
    from rich.table import Table

    from promptft.cli.app import print_result
    from promptft.config import DataConfig
    from promptft.recipes.sample import sample_file

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds takes comma-separated integers, e.g. 13,21,42; got {seeds!r}") from None
    spec = DataConfig(**columns(field, text_field, label_column, label_map, header, data_format))
    records = sample_file(
        source,
        k,
        seed_list,
        output,
        dev_k=dev_k,
        spec=spec.reader_options(),
        task=task,
        labels=[x.strip() for x in labels.split(",") if x.strip()] if labels else None,
        overwrite=overwrite,
    )
    if as_json:
        typer.echo(json.dumps(records, indent=2))
        return
    table = Table(title=f"{k}-shot splits of {source} ({records[0]['source_rows']} rows)")
    for name in ("seed", "train rows", "dev rows", "folder"):
        table.add_column(name)
    for r in records:
        dev_rows = str(r["dev"]["rows"]) if "dev" in r else "-"
        table.add_row(str(r["seed"]), str(r["train"]["rows"]), dev_rows, str(Path(r["train"]["file"]).parent))
    print_result(table)


@app.command("diagnose")
def diagnose(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `promptft train`.")],
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Where to write the learning curves (default: in the run).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the diagnosis as JSON on stdout.")] = False,
) -> None:
    """Say whether a run over- or under-fitted (from its dev history) and what to try; plot its learning curves.

    Example:

        promptft diagnose runs/sst2_prompt_lora
    """
    from promptft.recipes.diagnose import diagnose_run

    diagnosis, path = diagnose_run(run_dir, plot=plot)
    if as_json:
        typer.echo(json.dumps({**diagnosis.to_dict(), "plot": str(path)}, indent=2))
        return
    typer.echo(diagnosis.render_text())
    typer.echo(f"learning curves: {path}")
