"""`promptft prompts eval|search-words|search-templates`: flags -> `promptft.recipes.prompts` -> a table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from promptft.cli.app import (
    FieldOpt,
    FormatOpt,
    HeaderOpt,
    LabelColumnOpt,
    LabelMapOpt,
    TextFieldOpt,
    app,
    columns,
    print_result,
)
from promptft.errors import ConfigError

prompts_app = typer.Typer(
    help="Craft prompts: evaluate candidates, search label words (LM-BFF) and templates.\n\n"
    'Example: promptft prompts eval --data dev.tsv --template "{text} It was {mask}." '
    "--template 'Review: {text}\\nSentiment: {mask}' --label-words negative=terrible,positive=great "
    "--label-map 0=negative,1=positive",
    no_args_is_help=True,
)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Offline alias, local model folder or hub id.")]
KindOpt = Annotated[
    Literal["causal", "masked", "seq2seq"] | None,
    typer.Option("--kind", help="Backbone kind (default: detected)."),
]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
MaxLengthOpt = Annotated[int, typer.Option("--max-length", min=8, help="Longest input in tokens.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of fine-tunes, sampling and screening subsets.")]
LabelWordsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--label-words",
        "-w",
        metavar="LABEL=WORD,...",
        help="One label-word set per flag: 'negative=terrible,positive=great|good' (several words as a|b).",
    ),
]
LabelWordsFileOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--label-words-file",
        help="A label-words JSON (written by `prompts search-words`, or {label: word}); one set per flag.",
    ),
]
FinetuneTopOpt = Annotated[
    int,
    typer.Option(
        "--finetune-top", min=0, help="Short LoRA fine-tunes for the top N of the zero-shot ranking."
    ),
]
FinetuneStepsOpt = Annotated[
    int, typer.Option("--finetune-steps", min=1, help="Steps of each short fine-tune.")
]
OverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Replace what an earlier search wrote at --output.")
]


def _data_config(field, text_field, label_column, label_map, header, data_format):
    from promptft.config import DataConfig

    return DataConfig(**columns(field, text_field, label_column, label_map, header, data_format))


def _word_sets(label_words: list[str] | None, files: list[Path] | None) -> list[dict]:
    from promptft.cli.values import parse_label_words
    from promptft.search.label_words import read_label_words_file

    sets = [parse_label_words([item]) for item in label_words or []]
    sets += [read_label_words_file(path) for path in files or []]
    return sets


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


@prompts_app.command("eval")
def eval_command(
    data: Annotated[Path, typer.Option("--data", help="Labelled examples to score the prompts on (dev).")],
    template: Annotated[
        list[str],
        typer.Option("--template", "-t", help="A candidate template (repeatable); \\n is a newline."),
    ],
    label_words: LabelWordsOpt = None,
    label_words_file: LabelWordsFileOpt = None,
    train: Annotated[
        Path | None, typer.Option("--train", help="Training examples for --finetune-steps.")
    ] = None,
    finetune_steps: Annotated[
        int, typer.Option("--finetune-steps", min=0, help="Also score each after N LoRA steps on --train.")
    ] = 0,
    calibrate: Annotated[
        Literal["none", "contextual"],
        typer.Option("--calibrate", help="contextual: also score after contextual calibration; rank by it."),
    ] = "none",
    field: FieldOpt = None,
    text_field: TextFieldOpt = None,
    label_column: LabelColumnOpt = None,
    label_map: LabelMapOpt = None,
    header: HeaderOpt = None,
    data_format: FormatOpt = None,
    model: ModelOpt = "smollm2-135m",
    kind: KindOpt = None,
    device: DeviceOpt = None,
    max_length: MaxLengthOpt = 256,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Examples per forward pass.")] = 32,
    seed: SeedOpt = 42,
    as_json: JsonOpt = False,
) -> None:
    """Score candidate prompts (templates x label words) and rank them: accuracy, macro-F1, expected
    calibration error, and the label the model leans to (most predicted, with its share).

    One --label-words set is shared by all templates; one template is tried with every set; or give one set
    per template (paired in order).
    """
    from promptft.recipes.prompts import evaluate_prompt_files

    console = Console(stderr=True)
    with console.status("scoring prompts") as status:
        result = evaluate_prompt_files(
            data,
            template,
            _word_sets(label_words, label_words_file),
            data=_data_config(field, text_field, label_column, label_map, header, data_format),
            train_file=train,
            model=model,
            finetune_steps=finetune_steps,
            calibrate=calibrate,
            kind=kind,
            device=device,
            max_length=max_length,
            batch_size=batch_size,
            seed=seed,
            on_progress=status.update,
        )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    table = Table(title=f"prompts on {data} ({result.n} examples), ranked by {result.ranked_by}")
    for name in ("#", "template", "label words", "acc", "F1", "ECE", "leans to"):
        table.add_column(name, overflow="fold")
    extra = []
    if result.calibrate:
        extra.append("calibrated")
    if result.finetune_steps:
        extra.append(f"after {result.finetune_steps} steps")
    for name in extra:
        table.add_column(f"acc / ECE {name}")
    for i, row in enumerate(result.rows, 1):
        words = ", ".join(
            f"{k}={v if isinstance(v, str) else '|'.join(v)}" for k, v in row.label_words.items()
        )
        cells = [
            str(i),
            repr(row.template)[1:-1],
            words,
            _pct(row.accuracy),
            _pct(row.macro_f1),
            f"{row.ece:.3f}",
            f"{row.lean_label} ({_pct(row.lean_share)}%)",
        ]
        for numbers in (row.calibrated, row.finetuned):
            if numbers is not None:
                cells.append(f"{_pct(numbers['accuracy'])} / {numbers['ece']:.3f}")
        table.add_row(*cells)
    print_result(table)
    for note in result.notes:
        Console(stderr=True).print(f"note: {note}", highlight=False)


@prompts_app.command("search-words")
def search_words_command(
    train: Annotated[
        Path, typer.Option("--train", help="Training examples: the vocabulary is ranked on them.")
    ],
    dev: Annotated[Path, typer.Option("--dev", help="Dev examples: assignments are chosen on them.")],
    template: Annotated[str, typer.Option("--template", "-t", help="The template with one {mask} slot.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The label-words JSON file to write.")],
    k: Annotated[int, typer.Option("--k", min=1, help="Candidate words kept per class.")] = 10,
    top_n: Annotated[
        int, typer.Option("--top-n", min=1, help="Assignments kept from the zero-shot screen.")
    ] = 10,
    rank: Annotated[
        Literal["lmbff", "contrast"],
        typer.Option(
            "--rank",
            help="lmbff: a word's summed log-probability over the class's examples (LM-BFF); contrast: minus "
            "its mean over the other classes.",
        ),
    ] = "lmbff",
    screen: Annotated[
        Literal["dev", "train"],
        typer.Option("--screen", help="Split that screens assignments zero-shot (LM-BFF: train)."),
    ] = "dev",
    finetune_top: FinetuneTopOpt = 3,
    finetune_steps: FinetuneStepsOpt = 30,
    field: FieldOpt = None,
    text_field: TextFieldOpt = None,
    label_column: LabelColumnOpt = None,
    label_map: LabelMapOpt = None,
    header: HeaderOpt = None,
    data_format: FormatOpt = None,
    model: ModelOpt = "smollm2-135m",
    kind: KindOpt = None,
    device: DeviceOpt = None,
    max_length: MaxLengthOpt = 256,
    seed: SeedOpt = 42,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Automatic label-word search (LM-BFF): rank the vocabulary per class at the slot, keep the top --k
    clean words, screen assignments zero-shot, fine-tune the --finetune-top best briefly, write the winner.

    Example: promptft prompts search-words --train train.tsv --dev dev.tsv --template 'Review: {text}\\nSentiment: {mask}' --label-map 0=negative,1=positive --output words.json
    """
    from promptft.recipes.prompts import search_words_files

    console = Console(stderr=True)
    with console.status("searching label words") as status:
        result = search_words_files(
            train,
            dev,
            template,
            output,
            data=_data_config(field, text_field, label_column, label_map, header, data_format),
            model=model,
            k=k,
            top_n=top_n,
            rank=rank,
            screen=screen,
            finetune_top=finetune_top,
            finetune_steps=finetune_steps,
            seed=seed,
            overwrite=overwrite,
            kind=kind,
            device=device,
            max_length=max_length,
            on_progress=status.update,
        )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    table = Table(title=f"label-word assignments for {result.template!r}, best first")
    for name in ("#", "label words", f"zero-shot acc ({screen})", "margin", "dev acc tuned"):
        table.add_column(name)
    for i, a in enumerate(result.assignments, 1):
        tuned = _pct(a.finetuned["accuracy"]) if a.finetuned else "-"
        words = ", ".join(f"{k}={v}" for k, v in a.label_words.items())
        table.add_row(str(i), words, _pct(a.screen_accuracy), f"{a.screen_margin:.2f}", tuned)
    print_result(table)
    cands = "; ".join(f"{label}: {', '.join(c.word for c in cs)}" for label, cs in result.candidates.items())
    console.print(f"candidates ({rank}): {cands}", highlight=False, markup=False)
    console.print(
        f"chosen by {result.settings['chosen_by']}; written to {output}", highlight=False, markup=False
    )


@prompts_app.command("search-templates")
def search_templates_command(
    train: Annotated[
        Path, typer.Option("--train", help="Training examples: generate and pre-screen on them.")
    ],
    dev: Annotated[Path, typer.Option("--dev", help="Dev examples: templates are ranked on them.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for template_search.json.")],
    label_words: LabelWordsOpt = None,
    label_words_file: LabelWordsFileOpt = None,
    task_type: Annotated[
        str | None,
        typer.Option(
            "--task-type",
            help="Library patterns to try: sentiment, topic, question_type, subjectivity, nli, paraphrase "
            "(default: every type that fits the data's fields).",
        ),
    ] = None,
    template: Annotated[
        list[str] | None, typer.Option("--template", "-t", help="Also try this template (repeatable).")
    ] = None,
    library: Annotated[
        bool, typer.Option("--library/--no-library", help="Try the built-in patterns.")
    ] = True,
    generate: Annotated[
        bool, typer.Option("--generate/--no-generate", help="Generate templates with a causal LM.")
    ] = True,
    generator: Annotated[
        str | None,
        typer.Option("--generator", help="Causal LM that generates (default: the model, if causal)."),
    ] = None,
    keep_generated: Annotated[
        int, typer.Option("--keep-generated", min=0, help="Generated templates kept after the train screen.")
    ] = 10,
    finetune_top: FinetuneTopOpt = 3,
    finetune_steps: FinetuneStepsOpt = 30,
    max_minutes: Annotated[
        float | None,
        typer.Option(
            "--max-minutes",
            min=0,
            help="Stop scoring candidates after this many minutes (--template ones first, then the library's; "
            "at least one is scored; the rest are listed as unscored). The --finetune-top runs still follow.",
        ),
    ] = None,
    field: FieldOpt = None,
    text_field: TextFieldOpt = None,
    label_column: LabelColumnOpt = None,
    label_map: LabelMapOpt = None,
    header: HeaderOpt = None,
    data_format: FormatOpt = None,
    model: ModelOpt = "smollm2-135m",
    kind: KindOpt = None,
    device: DeviceOpt = None,
    max_length: MaxLengthOpt = 256,
    seed: SeedOpt = 42,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Automatic template search for fixed label words: library patterns for the task type plus templates
    generated by a causal LM, ranked on dev zero-shot, the --finetune-top best fine-tuned briefly.

    Example: promptft prompts search-templates --train train.tsv --dev dev.tsv --label-words negative=terrible,positive=great --label-map 0=negative,1=positive --task-type sentiment --output runs/templates
    """
    from promptft.recipes.prompts import search_templates_files

    sets = _word_sets(label_words, label_words_file)
    if len(sets) != 1:
        raise ConfigError(
            f"template search takes one label-word set (--label-words or --label-words-file), got {len(sets)}"
        )
    console = Console(stderr=True)
    with console.status("searching templates") as status:
        result = search_templates_files(
            train,
            dev,
            sets[0],
            output,
            data=_data_config(field, text_field, label_column, label_map, header, data_format),
            model=model,
            templates=template or [],
            task_type=task_type,
            use_library=library,
            generate=generate,
            generator=generator,
            keep_generated=keep_generated,
            max_seconds=None if max_minutes is None else max_minutes * 60,
            finetune_top=finetune_top,
            finetune_steps=finetune_steps,
            seed=seed,
            overwrite=overwrite,
            kind=kind,
            device=device,
            max_length=max_length,
            on_progress=status.update,
        )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    table = Table(title="templates on dev, best first")
    for name in ("#", "template", "source", "zero-shot acc", "ECE", "tuned acc"):
        table.add_column(name, overflow="fold")
    for i, c in enumerate(result.ranked, 1):
        zs = c.zero_shot or {}
        table.add_row(
            str(i),
            repr(c.template)[1:-1],
            c.source,
            _pct(zs.get("accuracy")),
            f"{zs['ece']:.3f}" if "ece" in zs else "-",
            _pct(c.finetuned["accuracy"]) if c.finetuned else "-",
        )
    print_result(table)
    unscored = result.settings["unscored"]
    console.print(
        f"chosen by {result.settings['chosen_by']}; written to {Path(output) / 'template_search.json'}"
        + (f"; {len(unscored)} candidate(s) left unscored by --max-minutes" if unscored else ""),
        highlight=False,
        markup=False,
    )


app.add_typer(prompts_app, name="prompts")
