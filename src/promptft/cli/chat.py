"""Chat commands: `promptft chat-train` (fine-tune on conversations), `promptft chat-eval` (perplexity and
the SGD task metrics), `promptft chat RUN_DIR|MODEL` (the terminal chat) and `promptft generate` (JSONL in,
JSONL out, batched)."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from promptft.cli.app import DeviceOpt, app, fmt, print_result

TemperatureOpt = Annotated[float, typer.Option("--temperature", min=0.0, help="0 = greedy.")]
TopPOpt = Annotated[float, typer.Option("--top-p", min=0.0, max=1.0, help="Nucleus sampling mass.")]
MaxNewOpt = Annotated[int, typer.Option("--max-new-tokens", min=1, help="Longest reply in tokens.")]
RepetitionOpt = Annotated[float, typer.Option("--repetition-penalty", min=0.0, help="1 = none.")]
TemplateOpt = Annotated[
    str | None,
    typer.Option(
        "--template",
        help="Chat template: auto, tokenizer, default (built in, for base models), a .jinja file or Jinja text.",
    ),
]
SystemOpt = Annotated[str | None, typer.Option("--system", help="System prompt.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing --output file.")]
ContextOpt = Annotated[
    int | None,
    typer.Option(
        "--context-window",
        min=1,
        help="Tokens of conversation the model reads, the reply included; older turns are dropped to fit "
        "(default: what the model reads, at most 4096).",
    ),
]


def _read_chat_job(config: Path | None, overrides: dict[str, Any], sets: list[str] | None):
    import yaml

    from promptft.config.chat import ChatJob
    from promptft.config.job import parse_assignments, set_dotted
    from promptft.errors import ConfigError

    data: dict[str, Any] = {}
    if config is not None:
        if not config.is_file():
            raise ConfigError(f"no such job file: {config}")
        data = yaml.safe_load(config.read_text()) or {}
    for key, value in [*overrides.items(), *parse_assignments(sets or []).items()]:
        set_dotted(data, key, value)
    if "data" not in data or "train" not in (data.get("data") or {}):
        raise ConfigError("no training data: give --train FILE (or data.train in the job file)")
    return ChatJob.parse(data, where=str(config) if config else "")


@app.command("chat-train")
def chat_train_cmd(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="A chat job YAML file.")] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", metavar="KEY=VALUE", help="Any job field by dotted key."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Base model (alias, folder, hub id).")
    ] = None,
    finetune: Annotated[
        Literal["lora", "full", "ia3"] | None, typer.Option("--finetune", help="Adapter (default lora).")
    ] = None,
    train: Annotated[
        str | None, typer.Option("--train", help="Conversations: JSONL, an SGD folder, a DailyDialog file.")
    ] = None,
    dev: Annotated[
        str | None, typer.Option("--dev", help="Dev conversations (else a share of train).")
    ] = None,
    test: Annotated[
        str | None, typer.Option("--test", help="Test conversations: perplexity of the best model.")
    ] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="Run folder.")] = None,
    template: TemplateOpt = None,
    system: SystemOpt = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1)] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1)] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Learning rate (default: the adapter's).")] = None,
    eval_every: Annotated[int | None, typer.Option("--eval-every", min=1)] = None,
    max_length: Annotated[
        int | None, typer.Option("--max-length", min=8, help="Longest conversation.")
    ] = None,
    overflow: Annotated[
        Literal["truncate", "drop"] | None,
        typer.Option("--overflow", help="Longer conversations: truncate or drop."),
    ] = None,
    packing: Annotated[
        bool | None, typer.Option("--packing/--no-packing", help="Pack conversations in rows.")
    ] = None,
    max_minutes: Annotated[
        float | None, typer.Option("--max-minutes", help="Stop training after this long.")
    ] = None,
    limit_train: Annotated[
        int | None, typer.Option("--limit-train", help="Use this many conversations.")
    ] = None,
    sgd_service_results: Annotated[
        int | None,
        typer.Option(
            "--sgd-service-results",
            min=0,
            help="SGD folders: show each service call's result count and first N rows as a tool message "
            "before the assistant's turn (data.sgd_service_results; 0: utterances only).",
        ),
    ] = None,
    device: DeviceOpt = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Refuse to resume an unfinished run.")] = False,
) -> None:
    """Fine-tune a causal LM on conversations (loss on assistant turns only); the run folder's best/ model
    is what `promptft chat` and `promptft generate` load.

    Example: promptft chat-train --train chats.jsonl --model smollm2-135m --output runs/mychat --max-steps 100
    """
    flags = {
        "model.name": model,
        "model.finetune": finetune,
        "model.template": template,
        "model.system_prompt": system,
        "data.train": train,
        "data.dev": dev,
        "data.test": test,
        "data.max_length": max_length,
        "data.overflow": overflow,
        "data.limit_train": limit_train,
        "data.sgd_service_results": sgd_service_results,
        "train.max_steps": max_steps,
        "train.batch_size": batch_size,
        "train.learning_rate": lr,
        "train.eval_every": eval_every,
        "train.packing": packing,
        "train.max_minutes": max_minutes,
        "train.progress": progress,
        "output": output,
        "device": device,
    }
    job = _read_chat_job(config, {k: v for k, v in flags.items() if v is not None}, sets)
    from promptft.recipes.chat_train import chat_train

    result = chat_train(job, resume=not fresh)
    result.pop("model", None)
    table = Table(title="chat fine-tuning")
    table.add_column("")
    table.add_column("value")
    table.add_row("steps", str(result["steps"]))
    table.add_row("best step", str(result["best_step"]))
    table.add_row("best dev loss", fmt(result["best_dev_loss"]))
    table.add_row("train tokens/s", f"{result['tokens_per_s']:.1f}")
    table.add_row("stopped by", result["stopped"])
    if "test" in result:
        table.add_row("test perplexity", fmt(result["test"]["perplexity"]))
    if result.get("run_dir"):
        table.add_row("run folder", result["run_dir"])
    print_result(table)


@app.command("chat-eval")
def chat_eval_cmd(
    model: Annotated[str, typer.Argument(help="A run folder, a saved chat model, or a base model.")],
    test: Annotated[str, typer.Option("--test", help="Test conversations (JSONL, or an SGD folder).")],
    seen_from: Annotated[
        str | None, typer.Option("--seen-from", help="SGD training folder: which services count as seen.")
    ] = None,
    conversations: Annotated[
        int | None,
        typer.Option("--conversations", min=1, help="Perplexity on a seeded sample of this many."),
    ] = None,
    turns: Annotated[
        int,
        typer.Option("--turns", min=0, help="Generated turns (SGD: per group, seen and unseen) to score."),
    ] = 0,
    max_new_tokens: MaxNewOpt = 48,
    context_window: ContextOpt = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report (JSON) here.")
    ] = None,
    sgd_service_results: Annotated[
        int | None,
        typer.Option(
            "--sgd-service-results",
            min=0,
            help="SGD folders: result rows shown as tool messages (default: what the run was trained with; "
            "0 for a base model).",
        ),
    ] = None,
    before: Annotated[
        bool,
        typer.Option(
            "--before/--no-before",
            help="Also evaluate the run's base model on the same sample; write samples.md (side by side) and "
            "eval.json into the run folder.",
        ),
    ] = False,
    overwrite: OverwriteOpt = False,
    device: DeviceOpt = None,
) -> None:
    """Assistant-token perplexity; with --turns N, generated turns scored against the reference (SGD:
    slot-value recall for seen and unseen services, and ROUGE-L; other data: ROUGE-L of the last turn)."""
    from promptft.chat.generate import GenerationSettings
    from promptft.chat.model import ChatModel
    from promptft.recipes.chat_eval import chat_evaluate, compare_with_base, trained_service_results
    from promptft.recipes.run_dir import check_new_file

    if output is not None:
        check_new_file(output, "the report", overwrite)  # before the evaluation, not after
    options: dict[str, Any] = {
        "seen_from": seen_from,
        "ppl_conversations": conversations,
        "turns_per_group": turns,
        "settings": GenerationSettings(max_new_tokens=max_new_tokens, context_window=context_window),
        "sgd_service_results": (
            sgd_service_results if sgd_service_results is not None else trained_service_results(model)
        ),
    }
    if before:
        both = compare_with_base(model, test, **options)
        report, base_report = both["after"], both["before"]
        print_result(f"base model: perplexity {fmt(base_report['perplexity']['perplexity'])}")
        for group, metrics in base_report.get("turns", {}).items():
            print_result(
                f"base model ({group}): slot-value recall {fmt(metrics['slot_value_recall'])} "
                f"(in context {fmt(metrics['slot_value_recall_in_context'])}, not in context "
                f"{fmt(metrics['slot_value_recall_not_in_context'])}), ROUGE-L {fmt(metrics['rouge_l'])}"
            )
        change = both.get("change")
    else:
        change = None
        report = chat_evaluate(ChatModel.from_pretrained(model, device=device), test, **options)
    cases, generated = report.pop("cases", []), report.pop("generated", [])
    table = Table(title=f"chat evaluation of {model}")
    table.add_column("metric")
    table.add_column("value")
    table.add_row("perplexity", fmt(report["perplexity"]["perplexity"]))
    table.add_row("assistant tokens", str(report["perplexity"]["tokens"]))
    for group, metrics in report.get("turns", {}).items():
        if metrics["slot_value_recall"] is not None:
            table.add_row(
                f"slot-value recall ({group}, {metrics['turns']} turns)", fmt(metrics["slot_value_recall"])
            )
            for kind, label in (("in_context", "in context"), ("not_in_context", "not in context")):
                table.add_row(
                    f"  of {metrics[f'values_{kind}']} values {label}",
                    fmt(metrics[f"slot_value_recall_{kind}"]),
                )
        table.add_row(f"ROUGE-L ({group})", fmt(metrics["rouge_l"]))
    print_result(table)
    if change:
        print_result(change_table(change))
    if output is not None:
        if change:
            report["change"] = change
        report["generations"] = [
            {"id": c.id, "reference": c.reference, "generated": g, "values": c.values, "seen": c.seen}
            for c, g in zip(cases, generated, strict=True)
        ]
        output.write_text(json.dumps(report, indent=2))


def change_table(change: dict[str, Any]) -> Table:
    """After minus before per group and metric, with the bootstrap interval and whether it excludes 0."""
    table = Table(
        title=f"change after - before ({change['level']:.0%} paired-bootstrap interval, "
        f"{change['resamples']} resamples over turns)"
    )
    for column in ("group", "metric", "change", "interval", "beyond noise"):
        table.add_column(column)
    for group in ("all", "seen", "unseen"):
        for metric, d in change.get(group, {}).items():
            if isinstance(d, dict):
                table.add_row(
                    group,
                    metric.replace("_", " "),
                    f"{d['diff']:+.3f}",
                    f"[{d['low']:+.3f}, {d['high']:+.3f}]",
                    "yes" if d["excludes_zero"] else "no",
                )
    return table


def _settings(
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    repetition_penalty: float,
    seed=None,
    context_window: int | None = None,
):
    from promptft.chat.generate import GenerationSettings

    return GenerationSettings(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        seed=seed,
        context_window=context_window,
    )


@app.command("chat")
def chat_cmd(
    model: Annotated[
        str, typer.Argument(help="A run folder (its best/ model), a saved chat model, or a base model.")
    ],
    system: SystemOpt = None,
    template: TemplateOpt = None,
    temperature: TemperatureOpt = 0.7,
    top_p: TopPOpt = 0.9,
    max_new_tokens: MaxNewOpt = 256,
    repetition_penalty: RepetitionOpt = 1.1,
    context_window: ContextOpt = None,
    merge: Annotated[
        bool, typer.Option("--merge/--no-merge", help="Fold a LoRA adapter into the weights.")
    ] = True,
    device: DeviceOpt = None,
) -> None:
    """Chat in the terminal: replies stream as they are generated; /reset, /system, /save FILE, /set, /help."""
    from promptft.chat.model import ChatModel
    from promptft.chat.repl import ChatSession, run_repl

    chat = ChatModel.from_pretrained(
        model, template=template, system_prompt=system, device=device, merge=merge
    )
    settings = _settings(
        max_new_tokens, temperature, top_p, repetition_penalty, context_window=context_window
    )
    session = ChatSession(chat, settings)
    raise typer.Exit(run_repl(session))


@app.command("generate")
def generate_cmd(
    model: Annotated[str, typer.Argument(help="A run folder, a saved chat model, or a base model.")],
    input_file: Annotated[
        str,
        typer.Option(
            "--input", "-i", help="JSONL: {'messages': [...]} or {'prompt': ...} per line; - = stdin."
        ),
    ] = "-",
    output: Annotated[str, typer.Option("--output", "-o", help="JSONL out; - = stdout.")] = "-",
    system: SystemOpt = None,
    template: TemplateOpt = None,
    temperature: TemperatureOpt = 0.0,
    top_p: TopPOpt = 1.0,
    max_new_tokens: MaxNewOpt = 128,
    repetition_penalty: RepetitionOpt = 1.0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 8,
    seed: Annotated[int | None, typer.Option("--seed", help="For sampling (temperature > 0).")] = None,
    context_window: ContextOpt = None,
    overwrite: OverwriteOpt = False,
    device: DeviceOpt = None,
) -> None:
    """The next assistant turn for each input record, batched: each output line is the input record plus
    "response". A record's messages may end with the user (or hold a "prompt" string)."""
    from promptft.chat.data import read_generation_requests
    from promptft.chat.generate import generate
    from promptft.chat.model import ChatModel
    from promptft.errors import DataError, PromptFTError
    from promptft.recipes.run_dir import check_new_file

    if output != "-":
        check_new_file(output, "the responses file", overwrite)
    if input_file != "-" and not Path(input_file).is_file():
        raise DataError(
            f"input file not found: {input_file} (looked at {Path(input_file).resolve()}): check --input"
        )
    source = sys.stdin if input_file == "-" else open(input_file, encoding="utf-8")  # noqa: SIM115
    with source:
        records, conversations = read_generation_requests(source, input_file)
    # The responses go to a partial file opened before the model loads (so a place that cannot be written
    # fails now, not after the generation) and take --output's name once all are written.
    partial = Path(output).with_name(Path(output).name + ".partial") if output != "-" else None
    try:
        sink = open(partial, "w", encoding="utf-8") if partial else nullcontext(sys.stdout)  # noqa: SIM115
    except OSError as error:
        raise PromptFTError(f"cannot write {output}: {error.strerror}; choose another --output") from None
    try:
        with sink as out:
            chat = ChatModel.from_pretrained(
                model, template=template, system_prompt=system, device=device, merge=True
            )
            settings = _settings(max_new_tokens, temperature, top_p, repetition_penalty, seed, context_window)
            replies = generate(chat, conversations, settings, batch_size)
            for record, reply in zip(records, replies, strict=True):
                out.write(json.dumps({**record, "response": reply}, ensure_ascii=False) + "\n")
        if partial:
            partial.replace(output)
    finally:
        if partial:
            partial.unlink(missing_ok=True)
