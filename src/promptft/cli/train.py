"""`promptft train`: flags (and `--config`, `--set`) -> a `JobConfig` -> `promptft.recipes.train`.

The common flags are shortcuts for job fields (`--lr` is `train.learning_rate`, ...); `--set key=value`
reaches every field of the schema, adapter options included (`--set model.adapter.num_virtual_tokens=8`).
Precedence: the YAML file, then the flags, then `--set`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from promptft.adapters import ADAPTERS
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


def _rate(x: float) -> str:
    mantissa, exponent = f"{x:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


_DEFAULT_RATES = ", ".join(
    f"{name} {_rate(cls.default_learning_rate)}" for name, cls in ADAPTERS.items() if name != "none"
)


@app.command()
def train(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="A job YAML file; flags given here override it.")
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            metavar="KEY=VALUE",
            help="Set any job field by its dotted key, the value read as YAML (repeatable; wins over the flags "
            "and the file), e.g. --set train.warmup_ratio=0.1 --set model.adapter.num_virtual_tokens=8.",
        ),
    ] = None,
    train_file: Annotated[
        str | None, typer.Option("--train", help="Training file (csv/tsv/jsonl/json).")
    ] = None,
    dev: Annotated[str | None, typer.Option("--dev", help="Dev file: selects the best step.")] = None,
    test: Annotated[
        str | None, typer.Option("--test", help="Test file: the best model is scored on it.")
    ] = None,
    field: FieldOpt = None,
    text_field: TextFieldOpt = None,
    label_column: LabelColumnOpt = None,
    label_map: LabelMapOpt = None,
    header: HeaderOpt = None,
    data_format: FormatOpt = None,
    task: Annotated[
        Literal["single_label", "multi_label", "regression"] | None,
        typer.Option(
            "--task",
            help="single_label (default), multi_label (comma-separated labels; --set task.label_columns=[..] "
            "for one 0/1 column per label) or regression (needs --value-range).",
        ),
    ] = None,
    value_range: Annotated[
        str | None,
        typer.Option("--value-range", metavar="LOW,HIGH", help="Regression: the targets' range, e.g. 0,5."),
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(
            "--template",
            "-t",
            help="Template with fields and one {mask} slot; \\n is a newline, \\t a tab, {{ }} literal braces.",
        ),
    ] = None,
    label_words: Annotated[
        list[str] | None,
        typer.Option(
            "--label-words",
            "-w",
            metavar="LABEL=WORD",
            help="Label -> word(s); repeat or comma-separate, several words as a|b: "
            "'negative=terrible,positive=great|good'.",
        ),
    ] = None,
    token_reduction: Annotated[
        Literal["sum", "mean"] | None,
        typer.Option("--token-reduction", help="Score of a multi-token word: sum or mean of its tokens."),
    ] = None,
    word_reduction: Annotated[
        Literal["logsumexp", "mean"] | None,
        typer.Option("--word-reduction", help="Score of a label with several words."),
    ] = None,
    max_length: Annotated[int | None, typer.Option("--max-length", help="Longest input in tokens.")] = None,
    auto: Annotated[
        bool,
        typer.Option(
            "--auto",
            help="Search label words and templates, fine-tune the finalists, keep the best on dev "
            "(decisions in <output>/auto.json).",
        ),
    ] = False,
    budget_minutes: Annotated[
        float, typer.Option("--budget-minutes", min=0.01, help="--auto: time budget, checked between stages.")
    ] = 30.0,
    auto_ensemble: Annotated[
        bool,
        typer.Option(
            "--auto-ensemble/--no-auto-ensemble",
            help="--auto: also fine-tune the search's next-best template and keep a dev-weighted ensemble of "
            "the finalists if it beats the best single one on dev.",
        ),
    ] = True,
    auto_demonstrations: Annotated[
        Literal["similar", "random"] | None,
        typer.Option(
            "--auto-demonstrations",
            help="--auto: also fine-tune the best prompt with LM-BFF demonstrations in context (chosen by "
            "sentence similarity or at random, 2 sets averaged, context >= 512 tokens) and keep it if it "
            "beats the best prompt on dev. Costs about (labels + 1) / 2 times a plain fine-tune.",
        ),
    ] = None,
    calibrate: Annotated[
        Literal["none", "contextual", "temperature", "contextual+temperature"] | None,
        typer.Option(
            "--calibrate",
            help="contextual: divide out the label bias of content-free inputs (N/A, '', [MASK]) when "
            "predicting; temperature: fit a softmax temperature on --dev (confidence only); "
            "contextual+temperature: both (prompt.calibrate; single-label prompts).",
        ),
    ] = None,
    train_negatives: Annotated[
        int | None,
        typer.Option(
            "--train-negatives",
            min=0,
            help="--method yes_no: each training example asks its positive labels plus this many sampled "
            "negative ones, drawn afresh every step (default: every label); evaluation asks every label.",
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Offline alias, local model folder or hub id.")
    ] = None,
    kind: Annotated[
        Literal["causal", "masked", "seq2seq"] | None,
        typer.Option("--kind", help="Backbone kind (default: detected)."),
    ] = None,
    method: Annotated[
        Literal["prompt", "head", "yes_no", "channel"] | None,
        typer.Option(
            "--method",
            help="prompt; head: standard fine-tuning with a new head (baseline); yes_no (multi-label): a yes/no "
            "question per label, {label} in the template; channel (causal LMs): score P(text | label), the "
            'label word before the text, e.g. --template "Sentiment: {mask}\\nReview: {text}".',
        ),
    ] = None,
    demonstrations: Annotated[
        Literal["random", "similar"] | None,
        typer.Option(
            "--demonstrations",
            help="Show one training example per label (its label word filled in) with every input (LM-BFF): "
            "drawn at random, or from the most similar half of each label (MiniLM embeddings). Options: "
            "--set prompt.demonstrations.KEY=VALUE.",
        ),
    ] = None,
    demo_sets: Annotated[
        int | None,
        typer.Option(
            "--demo-sets", help="With --demonstrations: demonstration sets averaged at inference (default 4)."
        ),
    ] = None,
    finetune: Annotated[
        str | None,
        typer.Option(
            "--finetune",
            metavar="ADAPTER",
            help=f"What trains: {', '.join(ADAPTERS)} (none: zero-shot). Options: --set model.adapter.KEY=VALUE "
            "(LoRA: the --lora-* flags or model.lora.KEY).",
        ),
    ] = None,
    lora_r: Annotated[int | None, typer.Option("--lora-r", help="LoRA rank.")] = None,
    lora_alpha: Annotated[int | None, typer.Option("--lora-alpha", help="LoRA alpha.")] = None,
    lora_dropout: Annotated[float | None, typer.Option("--lora-dropout", help="LoRA dropout.")] = None,
    lora_top_layers: Annotated[
        int | None, typer.Option("--lora-top-layers", help="Adapt only the top N layers (default: all).")
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available).")
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option("--lr", help=f"Learning rate (default: the adapter's: {_DEFAULT_RATES})."),
    ] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Optimizer steps.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Training batch size.")] = None,
    grad_accum: Annotated[int | None, typer.Option("--grad-accum", help="Gradient accumulation.")] = None,
    warmup_ratio: Annotated[float | None, typer.Option("--warmup-ratio", help="Warm-up fraction.")] = None,
    weight_decay: Annotated[float | None, typer.Option("--weight-decay", help="AdamW weight decay.")] = None,
    eval_every: Annotated[
        int | None, typer.Option("--eval-every", help="Steps between dev evaluations.")
    ] = None,
    eval_batch_size: Annotated[
        int | None, typer.Option("--eval-batch-size", help="Batch size for evaluation.")
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option(
            "--patience", help="Stop after this many evaluations without gain; 0 = never stop early."
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric",
            help="Dev metric that picks the best (accuracy, macro_f1; multi-label micro_f1, subset_accuracy; regression pearson, spearman).",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed.")] = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Run folder; an interrupted run there resumes.")
    ] = None,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Show the training progress bar.")
    ] = None,
) -> None:
    """Fine-tune a classifier through a prompt (or the head baseline) and score it.

    The run folder gets job.yaml, train_config.json, metrics.jsonl, final_metrics.json, best/ (the model chosen on dev) and test_metrics.json when --test is given. Run the same command again to resume an interrupted run; a finished run is never overwritten. Relative paths are relative to the current directory. In --template and YAML templates, \\n is a newline and \\t a tab. Every job field can be set with --set KEY=VALUE.

    Example (16-shot SST-2 with LoRA, settings from a file, two of them overridden):

        promptft train --config examples/sst2_prompt_lora.yaml --steps 100 --output runs/sst2

    Example (soft prompt tuning with 8 virtual tokens, all from flags):

        promptft train --train train.tsv --dev dev.tsv --label-map 0=negative,1=positive --label-words negative=terrible,positive=great --finetune prompt_tuning --set model.adapter.num_virtual_tokens=8 --output runs/pt

    Example (multi-label GoEmotions, labels given as indices into a label map; regression STS-B):

        promptft train --train train.tsv --dev dev.tsv --task multi_label --field text=0 --label-column 1 --label-map 0=admiration,1=amusement --label-words admiration=admiration,amusement=funny --output runs/goemo

        promptft train --train train.tsv --dev dev.tsv --task regression --value-range 0,5 --field sentence1=sentence1 --field sentence2=sentence2 --label-column score --template "{sentence1}\n{sentence2}\nSame meaning? {mask}" --label-words low=No,high=Yes --output runs/stsb

    Example (LM-BFF demonstrations chosen by similarity; channel scoring, LoRA):

        promptft train --config examples/sst2_prompt_lora.yaml --demonstrations similar --demo-sets 4 --max-length 256 --output runs/demos

        promptft train --config examples/sst2_prompt_lora.yaml --method channel --template "Sentiment: {mask}\nReview: {text}" --output runs/channel

    Example (zero-shot):

        promptft train --finetune none --dev dev.tsv --label-map 0=negative,1=positive --label-words negative=terrible,positive=great --output runs/zs
    """
    from promptft.cli.values import parse_label_words, parse_range
    from promptft.config import load_job
    from promptft.prompts.template import unescape_template
    from promptft.recipes.train import train as run_train

    data = columns(field, text_field, label_column, label_map, header, data_format)
    given: dict[str, Any] = {
        "data.train": train_file,
        "data.dev": dev,
        "data.test": test,
        **{f"data.{key}": value for key, value in data.items()},
        "task.type": task,
        "task.value_range": None if value_range is None else parse_range(value_range),
        "prompt.template": None if template is None else unescape_template(template),
        "prompt.label_words": parse_label_words(label_words) if label_words else None,
        "prompt.token_reduction": token_reduction,
        "prompt.word_reduction": word_reduction,
        "prompt.calibrate": calibrate,
        "prompt.train_negatives": train_negatives,
        "prompt.max_length": max_length,
        "prompt.demonstrations.selection": demonstrations,
        "prompt.demonstrations.n_sets": demo_sets,
        "model.name": model,
        "model.kind": kind,
        "model.method": method,
        "model.finetune": finetune,
        "model.lora.r": lora_r,
        "model.lora.alpha": lora_alpha,
        "model.lora.dropout": lora_dropout,
        "model.lora.top_layers": lora_top_layers,
        "model.device": device,
        "train.learning_rate": lr,
        "train.max_steps": steps,
        "train.batch_size": batch_size,
        "train.grad_accum": grad_accum,
        "train.warmup_ratio": warmup_ratio,
        "train.weight_decay": weight_decay,
        "train.eval_every": eval_every,
        "train.eval_batch_size": eval_batch_size,
        "train.metric": metric,
        "train.seed": seed,
        "train.progress": progress,
        "output": output,
    }
    overrides = {k: v for k, v in given.items() if v is not None}
    if patience is not None:
        overrides["train.early_stopping_patience"] = patience or None
    job = load_job(config, overrides, sets or ())
    if auto:
        _auto(job, budget_minutes, auto_ensemble, auto_demonstrations)
        return
    try:
        result = run_train(job)
    except KeyboardInterrupt:
        Console(stderr=True).print(
            f"interrupted: run the same command again to resume {job.output} from its last checkpoint",
            style="yellow",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None

    table = Table(title=f"promptft train: {result.run_dir}", title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    metric_name = result.metric
    if result.best_dev is not None:
        table.add_row(f"dev {metric_name} (best, step {result.best_step})", fmt(result.best_dev[metric_name]))
    if result.test is not None:
        for name, value in headline_metrics(result.test):
            table.add_row(f"test {name}", fmt(value))
        table.add_row("test examples", str(result.test["n"]))
    table.add_row("adapter", job.model.finetune)
    steps = "0 (zero-shot)" if result.zero_shot else str(result.steps)
    table.add_row("steps", steps + (" (time limit: train.max_minutes)" if result.time_limited else ""))
    if result.refit:
        refit = result.refit
        table.add_row(
            "refit (the saved model)", f"{refit['steps']} steps on train + dev ({refit['n_examples']})"
        )
    elif result.refit_skipped:
        table.add_row("refit", "skipped (train.max_minutes): the model chosen on dev is kept")
    table.add_row("time", f"{result.train_time_s:.1f} s")
    table.add_row("model", str(Path(result.run_dir) / "best"))
    print_result(table)


def _auto(job, budget_minutes: float, ensemble: bool, demonstrations: str | None) -> None:
    """`promptft train --auto`: the auto recipe, then the choice and the decisions as a table."""
    from promptft.recipes.auto import AUTO_FILE, auto_train

    console = Console(stderr=True)
    with console.status("auto") as status:
        result = auto_train(
            job, budget_minutes, ensemble=ensemble, demonstrations=demonstrations, on_progress=status.update
        )
    table = Table(title=f"promptft train --auto: {result.run_dir}", title_justify="left")
    table.add_column("stage")
    table.add_column("outcome")
    table.add_column("why", overflow="fold")
    for d in result.decisions:
        table.add_row(d.stage, d.outcome, d.reason)
    print_result(table)
    chosen = result.chosen
    if chosen.get("members"):
        lines = [f"chosen: the {chosen['source']}"]
    else:
        lines = [f"chosen: {chosen['template']!r} with {chosen['label_words']} ({chosen['source']})"]
        if chosen.get("demonstrations"):
            lines.append(f"with demonstrations in context: {chosen['demonstrations']}")
    if result.beats_manual is not None:
        lines.append(f"beats the job's own prompt on dev: {'yes' if result.beats_manual else 'no'}")
    if result.test is not None:
        lines += [f"test {name}: {fmt(value)}" for name, value in headline_metrics(result.test)]
    lines.append(f"decisions: {result.run_dir}/{AUTO_FILE}")
    from rich.text import Text

    print_result(Text("\n".join(lines)))
