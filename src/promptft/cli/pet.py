"""`promptft pet`: flags -> a job + PET settings -> `promptft.recipes.pet` -> a summary table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

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
    fmt,
    headline_metrics,
    print_result,
)


@app.command()
def pet(
    pool: Annotated[
        str | None,
        typer.Option(
            "--pool",
            "-u",
            help="Unlabelled texts (csv/tsv/jsonl/json, read with the job's columns; labels are ignored). "
            "Train, dev and test texts are left out of it.",
        ),
    ] = None,
    template: Annotated[
        list[str] | None,
        typer.Option(
            "--template",
            "-t",
            help="A pattern's template (repeat: one model per template). The first pattern, also the final "
            "classifier's, is the --config job's template, else the first --template. \\n is a newline. "
            "All take --label-words.",
        ),
    ] = None,
    label_words: Annotated[
        list[str] | None,
        typer.Option(
            "--label-words",
            "-w",
            metavar="LABEL=WORD",
            help="Label -> word(s) of every --template: 'negative=terrible,positive=great|good'.",
        ),
    ] = None,
    patterns_file: Annotated[
        Path | None,
        typer.Option(
            "--patterns",
            help="A YAML list of more patterns, each {template: ..., label_words: {label: word}} (its own "
            "verbalizer) or a template (the --label-words).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="A job YAML file (data, model, train, prompt = first pattern)."),
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set", "-s", metavar="KEY=VALUE", help="Any job field by its dotted key (as in train)."
        ),
    ] = None,
    train_file: Annotated[str | None, typer.Option("--train", help="Labelled training file.")] = None,
    dev: Annotated[
        str | None, typer.Option("--dev", help="Dev file: selects every model's step and weighs them.")
    ] = None,
    test: Annotated[
        str | None, typer.Option("--test", help="Test file: the final classifier is scored on it.")
    ] = None,
    field: FieldOpt = None,
    text_field: TextFieldOpt = None,
    label_column: LabelColumnOpt = None,
    label_map: LabelMapOpt = None,
    header: HeaderOpt = None,
    data_format: FormatOpt = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Offline alias, folder or hub id.")
    ] = None,
    finetune: Annotated[
        str | None,
        typer.Option(
            "--finetune", metavar="ADAPTER", help="What trains in each pattern model (default lora)."
        ),
    ] = None,
    lora_r: Annotated[int | None, typer.Option("--lora-r", help="LoRA rank.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="cpu, cuda, cuda:1, ...")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Learning rate of the pattern models.")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Optimizer steps per pattern model.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Training batch size.")] = None,
    eval_every: Annotated[
        int | None, typer.Option("--eval-every", help="Steps between dev evaluations.")
    ] = None,
    max_length: Annotated[int | None, typer.Option("--max-length", help="Longest input in tokens.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed: training and the pool sample.")] = None,
    ipet: Annotated[
        bool, typer.Option("--ipet", help="iPET: 3 generations unless --generations says otherwise.")
    ] = False,
    generations: Annotated[
        int | None,
        typer.Option("--generations", min=1, help="Generations of pattern models (1 = PET, >= 2 = iPET)."),
    ] = None,
    scale_factor: Annotated[
        float | None, typer.Option("--scale-factor", help="iPET: training set growth per generation (5).")
    ] = None,
    weighting: Annotated[
        Literal["dev", "train", "uniform"] | None,
        typer.Option(
            "--weighting",
            help="Ensemble weights: each model's dev score (default), its train accuracy before training "
            "(PET), or uniform.",
        ),
    ] = None,
    combine: Annotated[
        Literal["logits", "probabilities"] | None,
        typer.Option("--combine", help="Average the models' logits (PET, default) or probabilities."),
    ] = None,
    temperature: Annotated[
        float | None, typer.Option("--temperature", "-T", help="Soft labels and KL temperature (2).")
    ] = None,
    pool_limit: Annotated[
        int | None, typer.Option("--pool-limit", min=1, help="Use a seeded sample of this many pool texts.")
    ] = None,
    final_steps: Annotated[
        int | None,
        typer.Option("--final-steps", min=1, help="Steps of the final classifier (default --steps)."),
    ] = None,
    final_lr: Annotated[
        float | None, typer.Option("--final-lr", help="Learning rate of the final classifier (default --lr).")
    ] = None,
    final: Annotated[
        Literal["prompt", "head"] | None,
        typer.Option(
            "--final",
            help="The final classifier: prompt (the first pattern, default) or head (a new head on "
            "--final-model, full fine-tuning).",
        ),
    ] = None,
    final_model: Annotated[
        str | None, typer.Option("--final-model", help="--final head: the encoder (default minilm-l6).")
    ] = None,
    labelled: Annotated[
        bool,
        typer.Option(
            "--labelled/--no-labelled", help="The final classifier also learns the labelled examples."
        ),
    ] = True,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Run folder; an interrupted run there resumes.")
    ] = None,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Show the training progress bars.")
    ] = None,
) -> None:
    """PET / iPET: fine-tune one prompt model per pattern (template + label words), ensemble them weighted by dev score, label an unlabelled pool with the ensemble's soft labels and train a final classifier on them (KL at temperature T). With --ipet (or --generations N >= 2) each generation retrains every pattern model on the labelled examples plus pool examples labelled by the other patterns' models, growing 5x per generation.

    The run folder's best/ is the final classifier (promptft eval, predict); pet.json holds per-model dev scores and weights, each generation's sizes, the ensemble's dev score, the pool size and the times. Run the same command again to resume an interrupted run.

    Example (PET with two patterns on 16-shot SST-2, 1000 pool sentences):

        promptft pet --train train.tsv --dev dev.tsv --pool ../shared/data/SST-2/train.tsv --label-map 0=negative,1=positive --template "Review: {text}\\nSentiment: {mask}" --template "Text: {text}\\nSentiment: {mask}" --label-words negative=negative,positive=positive --pool-limit 1000 --output runs/pet

    Example (iPET, two generations):

        promptft pet --config job.yaml --template "{text} All in all, it was {mask}." --pool pool.tsv --ipet --generations 2 --output runs/ipet
    """
    from promptft.cli.values import parse_label_words
    from promptft.config import load_job, read_job_file
    from promptft.errors import ConfigError
    from promptft.prompts.template import unescape_template
    from promptft.recipes.pet import pet as run_pet

    if pool is None:
        raise ConfigError(
            "PET labels an unlabelled pool: pass --pool FILE (e.g. the task's full training file; its labels "
            "are not used)"
        )
    templates = [unescape_template(t) for t in template or []]
    data = columns(field, text_field, label_column, label_map, header, data_format)
    file_job = read_job_file(config) if config is not None else {}
    given_finetune = finetune
    if given_finetune is None and "finetune" not in (file_job.get("model") or {}):
        given_finetune = "lora"  # PET trains many models: LoRA by default
    # The first pattern is the job's: the config's template when it has one (every --template then adds
    # a pattern), else the first --template.
    first = None if "template" in (file_job.get("prompt") or {}) or not templates else templates.pop(0)
    given: dict[str, Any] = {
        "data.train": train_file,
        "data.dev": dev,
        "data.test": test,
        **{f"data.{key}": value for key, value in data.items()},
        "prompt.template": first,
        "prompt.label_words": parse_label_words(label_words) if label_words else None,
        "prompt.max_length": max_length,
        "model.name": model,
        "model.finetune": given_finetune,
        "model.lora.r": lora_r,
        "model.device": device,
        "train.learning_rate": lr,
        "train.max_steps": steps,
        "train.batch_size": batch_size,
        "train.eval_every": eval_every,
        "train.seed": seed,
        "train.progress": progress,
        "output": output,
    }
    job = load_job(config, {k: v for k, v in given.items() if v is not None}, sets or ())
    more: list[Any] = list(templates)
    if patterns_file is not None:
        more += _read_patterns(patterns_file)
    options = {
        "generations": generations if generations is not None else (3 if ipet else None),
        "scale_factor": scale_factor,
        "weighting": weighting,
        "combine": combine,
        "temperature": temperature,
        "pool_limit": pool_limit,
        "final_steps": final_steps,
        "final_learning_rate": final_lr,
        "final": final,
        "final_model": final_model,
        "include_labelled": labelled,
    }
    if ipet and generations is not None and generations < 2:
        raise ConfigError(f"--ipet needs --generations 2 or more, got {generations}: drop --ipet to run PET")
    console = Console(stderr=True)
    try:
        with console.status("pet") as status:
            result = run_pet(
                job,
                more,
                pool=pool,
                on_progress=status.update,
                **{k: v for k, v in options.items() if v is not None},
            )
    except KeyboardInterrupt:
        console.print(
            f"interrupted: run the same command again to resume {job.output}",
            style="yellow",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(130) from None

    summary = result.summary
    metric = job.train.metric if job.train.metric in ("accuracy", "macro_f1") else "accuracy"
    table = Table(title=f"promptft pet: {result.run_dir}", title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    for m in summary["models"]:
        dev_score = (m["dev"] or {}).get(metric)
        table.add_row(
            f"gen {m['generation']} pattern {m['pattern'] + 1} dev {metric} ({m['n_train']} train)",
            fmt(dev_score),
        )
    if result.ensemble_dev is not None:
        table.add_row(f"ensemble dev {metric}", fmt(result.ensemble_dev.get(metric)))
    if result.final_dev is not None:
        table.add_row(f"final classifier dev {metric}", fmt(result.final_dev.get(metric)))
    if result.test is not None:
        for name, value in headline_metrics(result.test):
            table.add_row(f"test {name}", fmt(value))
    table.add_row("pool examples", str(result.pool_size))
    table.add_row("time", f"{summary['seconds']:.1f} s")
    table.add_row("model", str(Path(result.run_dir) / "best"))
    print_result(table)


def _read_patterns(path: Path) -> list[Any]:
    from promptft.config.job import read_yaml
    from promptft.errors import ConfigError
    from promptft.prompts.template import unescape_template

    if not path.is_file():
        raise ConfigError(f"--patterns file not found: {path} (looked at {path.resolve()})")
    data = read_yaml(path)
    if not isinstance(data, list) or not data:
        raise ConfigError(
            f"{path}: --patterns takes a YAML list of patterns, e.g.\n- template: '{{text}} It was {{mask}}.'\n"
            "  label_words: {negative: terrible, positive: great}"
        )
    out: list[Any] = []
    for item in data:
        if isinstance(item, dict) and isinstance(item.get("template"), str):
            item = {**item, "template": unescape_template(item["template"])}
        elif isinstance(item, str):
            item = unescape_template(item)
        out.append(item)
    return out
