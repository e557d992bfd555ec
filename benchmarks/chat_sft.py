"""Benchmark (issue 12): fine-tune SmolLM2-135M-Instruct on SGD train dialogues with promptft's chat path,
evaluate on SGD test before and after (assistant-token perplexity on a seeded subset of test dialogues;
slot-value recall, split into values in the context and not, and ROUGE-L of generated next turns on a seeded
sample of turns from services seen and unseen in training, with paired-bootstrap intervals for each change),
and time TRL's SFTTrainer on the same encoded conversations.

With --sgd-service-results N (default 1) each assistant turn that called a service is preceded by a `tool`
message with the call's name, result count and first N result rows (`read_sgd(service_results=N)`), in
training and in test alike: what a deployed assistant gets from its backend. Without them (0) most values a
reference turn states (prices, times, addresses from the API) are in no message the model sees.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=src python benchmarks/chat_sft.py --fresh

Four stages, run in this order by default or one at a time with --stage (repeatable): eval-before, train,
eval-after, trl. Each writes its part into the results file (--out) as it finishes, and a later call skips
the parts already there, so the benchmark can be split over several sessions or resumed after a stop
(an interrupted train stage resumes from the run folder's checkpoint). The settings are stored in the file;
a call with other settings stops with an error (use --fresh to start over, or another --out).

Writes benchmarks/results/chat_sft.json, chat_sft_generations.jsonl and chat_sft_samples.md (and the samples
into the run folder).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sgd"


def trl_tokens_per_s(model_name, settings, encoded, batch_size, steps, lr, seed) -> dict:
    """TRL SFTTrainer on the same encoded conversations (input_ids + assistant masks), same LoRA, same batch
    size, `steps` optimizer steps; tokens/s over the real (unpadded) tokens it processed."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from promptft.chat.encoding import IGNORE
    from promptft.models.registry import resolve_model

    path = resolve_model(model_name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    items = encoded[: steps * batch_size]
    data = Dataset.from_list(
        [{"input_ids": x.input_ids, "assistant_masks": [int(y != IGNORE) for y in x.labels]} for x in items]
    )
    counted = {"tokens": 0}
    config = SFTConfig(
        output_dir=str(ROOT / "runs" / "_trl_baseline"),
        per_device_train_batch_size=batch_size,
        max_steps=steps,
        learning_rate=lr,
        lr_scheduler_type="linear",
        warmup_steps=0,
        logging_steps=steps,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=seed,
        max_length=None,
        packing=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=settings.peft_config(model, "causal"),
    )
    collator = trainer.data_collator

    def counting(features):
        batch = collator(features)
        counted["tokens"] += (
            int(batch["attention_mask"].sum())
            if "attention_mask" in batch
            else sum(len(f["input_ids"]) for f in features)
        )
        return batch

    trainer.data_collator = counting
    trainer.train_dataset = data
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    shutil.rmtree(ROOT / "runs" / "_trl_baseline", ignore_errors=True)
    return {
        "tokens": counted["tokens"],
        "seconds": round(seconds, 2),
        "tokens_per_s": round(counted["tokens"] / seconds, 2),
    }


STAGES = ("eval-before", "train", "eval-after", "trl")
# the options whose values make the results: a finished stage is reused only under the same values
CONFIG_KEYS = (
    "model",
    "train_dialogues",
    "dev_dialogues",
    "max_steps",
    "batch_size",
    "eval_every",
    "max_minutes",
    "lr",
    "lora_r",
    "max_length",
    "sgd_service_results",
    "ppl_dialogues",
    "turns_per_group",
    "max_new_tokens",
    "trl_steps",
    "bootstrap",
    "run_dir",
)


class StageError(SystemExit):
    """A clear one-line stop (no traceback) naming the fix."""

    def __init__(self, message: str) -> None:
        super().__init__(f"chat_sft.py: {message}")


def load_state(out: Path, config: dict[str, Any], fresh: bool) -> dict[str, Any]:
    """The bookkeeping of a staged run: {"config", "stages": {name: part}}, read from the results file.
    A file from other settings, or one not written by a staged run, is an error unless `fresh`."""
    if fresh or not out.exists():
        return {"config": config, "stages": {}}
    data = json.loads(out.read_text())
    state = data.get("stages_state")
    if not isinstance(state, dict) or "config" not in state:
        raise StageError(
            f"{out} exists but holds no stage bookkeeping (an older single-run result); pass --fresh to "
            "replace it, or --out another file"
        )
    changed = {k: (state["config"].get(k), v) for k, v in config.items() if state["config"].get(k) != v}
    if changed:
        what = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
        raise StageError(
            f"{out} was made with other settings ({what}); pass --fresh to start over, or --out another file"
        )
    return state


def write_report(out: Path, state: dict[str, Any]) -> dict[str, Any]:
    """Rewrite the results file (atomically) from the finished stages and the bookkeeping."""
    report = compose(state)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, out)
    return report


def save_stage(out: Path, state: dict[str, Any], stage: str, part: dict[str, Any]) -> dict[str, Any]:
    """Record a finished stage and rewrite the results file."""
    state["stages"][stage] = part
    return write_report(out, state)


def claim_run_dir(out: Path, state: dict[str, Any], run_dir: Path, command: str) -> None:
    """Before training: a run folder that this results file did not start training into belongs to another
    run (its checkpoint would be resumed under other settings), so stop; else note the start, so that a
    stopped train stage resumes from the folder's checkpoint next time."""
    if state.get("train_started"):
        return
    if run_dir.exists():
        raise StageError(
            f"{run_dir} holds another run, not one {out} started; pass --fresh (removes it) or --run-dir"
        )
    state["train_started"] = command
    write_report(out, state)


def pending(state: dict[str, Any], wanted: list[str]) -> list[str]:
    """The wanted stages not yet finished, in benchmark order."""
    return [s for s in STAGES if s in wanted and s not in state["stages"]]


def _groups(turns: dict[str, Any], key: str) -> dict[str, Any]:
    return {g: turns[g][key] for g in ("all", "seen", "unseen")}


def compose(state: dict[str, Any]) -> dict[str, Any]:
    """The results file: the issue's keys from whichever stages are finished, plus the bookkeeping."""
    config, stages = state["config"], state["stages"]
    before, train, after, trl = (stages.get(s) for s in STAGES)
    out: dict[str, Any] = {}
    if before and after:
        out["ppl_before"] = before["perplexity"]["perplexity"]
        out["ppl_after"] = after["perplexity"]["perplexity"]
        out["task_metric"] = {
            "name": "slot_value_recall",
            "before": _groups(before["turns"], "slot_value_recall"),
            "after": _groups(after["turns"], "slot_value_recall"),
        }
        out["task_metric_by_kind"] = {
            "what": "slot-value recall of values that appear in the earlier messages (in_context: the model "
            "can copy them; with service results shown, the result rows too) and of those that do not "
            "(not_in_context: API results not shown, reformatted values, intent names); reference: the "
            "reference turn scored as if generated, the ceiling of the substring match",
            **{
                kind: {
                    "before": _groups(before["turns"], f"slot_value_recall_{kind}"),
                    "after": _groups(after["turns"], f"slot_value_recall_{kind}"),
                    "reference": _groups(before["reference_turns"], f"slot_value_recall_{kind}"),
                    "values": _groups(before["turns"], f"values_{kind}"),
                    **(
                        {
                            "of_which_in_service_results": _groups(
                                before["turns"], "values_not_in_context_in_results"
                            )
                        }
                        if kind == "not_in_context"
                        and "values_not_in_context_in_results" in before["turns"]["all"]
                        else {}
                    ),
                }
                for kind in ("in_context", "not_in_context")
            },
        }
        out["rouge_l"] = {
            "before": _groups(before["turns"], "rouge_l"),
            "after": _groups(after["turns"], "rouge_l"),
        }
        out["change"] = after.get("change") or before.get("change")
    if train:
        out["train_minutes"] = round(train["training"]["train_time_s"] / 60, 2)
        out["tokens_per_s"] = train["tokens_per_s"]
    if trl:
        out["baseline_tokens_per_s"] = trl["tokens_per_s"]
        out["baseline"] = (
            "trl.SFTTrainer (same LoRA, batch size, learning rate and encoded conversations with assistant "
            "masks; full-vocabulary logits at every position; random batches, padded to the longest)"
        )
        out["ours"] = "promptft ChatTrainer: output head only at assistant tokens, length-grouped batches"
        out["trl_run"] = trl
    out["model"] = config["model"]
    out["adapter"] = {
        "name": "lora",
        "r": config["lora_r"],
        "alpha": 2 * config["lora_r"],
        "target_modules": "all-linear",
    }
    first = before or after
    if first:
        out["data"] = {**first["data"], **(train["data"] if train else {})}
        out["generation"] = first["generation"]
    for name, part in (("turns_before", before), ("turns_after", after)):
        if part:
            out[name] = part["turns"]
    if before:
        out["reference_turns"] = before["reference_turns"]
    for name, part in (("perplexity_before", before), ("perplexity_after", after)):
        if part:
            out[name] = part["perplexity"]
    if train:
        out["training"] = train["training"]
        out["dev_history"] = train["history"]
    for stage, part in stages.items():
        out.setdefault("stage_seconds", {})[stage] = part["seconds"]
    if before:
        out["eval_before_s"] = before["seconds"]
    out["threads"] = sorted({part["threads"] for part in stages.values()})
    commands = [part["command"] for part in stages.values()]
    if "train" not in stages and state.get("train_started"):  # the train stage is running or stopped
        commands.append(state["train_started"])
    out["command"] = " ; ".join(dict.fromkeys(commands))
    if "task_metric" in out:
        targets: dict[str, bool] = {"perplexity_lower_after": out["ppl_after"] < out["ppl_before"]}
        for metric in ("slot_value_recall", "rouge_l"):
            for group in ("seen", "unseen"):
                change = out["change"][group].get(metric)
                if change is not None:
                    targets[f"{metric}_{group}_improved"] = change["diff"] > 0
                    # improved by more than the bootstrap interval's noise (interval above 0)
                    targets[f"{metric}_{group}_improved_beyond_noise"] = change["low"] > 0
        if train:
            targets["within_30_minutes_training"] = out["train_minutes"] <= 30
        out["targets"] = targets
    out["stages_done"] = [s for s in STAGES if s in stages]
    out["stages_state"] = state
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", action="append", choices=STAGES, help="Run only this stage (repeatable).")
    ap.add_argument(
        "--fresh", action="store_true", help="Start over: drop the results file's stages and run dir."
    )
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--train-dialogues", type=int, default=180)
    ap.add_argument("--dev-dialogues", type=int, default=12)
    ap.add_argument("--max-steps", type=int, default=45)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--eval-every", type=int, default=15)
    ap.add_argument("--max-minutes", type=float, default=20.0)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument(
        "--sgd-service-results",
        type=int,
        default=1,
        help="Result rows per service call shown as a tool message before the assistant's turn (0: none).",
    )
    ap.add_argument("--ppl-dialogues", type=int, default=40)
    ap.add_argument(
        "--turns-per-group",
        type=int,
        default=100,
        help="Generated test turns scored per group (seen, unseen services).",
    )
    ap.add_argument("--max-new-tokens", type=int, default=40)
    ap.add_argument("--trl-steps", type=int, default=6)
    ap.add_argument("--bootstrap", type=int, default=1000, help="Paired-bootstrap resamples (seed 0).")
    ap.add_argument("--threads", type=int, default=1, help="torch threads.")
    ap.add_argument("--run-dir", default="runs/chat_sft_sgd")
    ap.add_argument("--out", default="benchmarks/results/chat_sft.json")
    args = ap.parse_args()
    out_path = Path(args.out)
    config = {k: getattr(args, k) for k in CONFIG_KEYS}
    state = load_state(out_path, config, args.fresh)
    run_dir = ROOT / args.run_dir
    if args.fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    todo = pending(state, args.stage or list(STAGES))
    if not todo:
        print(f"{out_path}: stages {', '.join(args.stage or STAGES)} are finished; nothing to do", flush=True)
        return
    command = f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} PYTHONPATH=src python " + " ".join(
        map(shlex.quote, sys.argv)
    )
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    from promptft.chat.data import read_sgd
    from promptft.chat.evaluate import paired_bootstrap, score_turns, sgd_turn_cases
    from promptft.chat.generate import GenerationSettings
    from promptft.chat.model import ChatModel
    from promptft.config.chat import ChatJob
    from promptft.recipes.chat_eval import chat_evaluate, sample, seen_services
    from promptft.recipes.chat_train import chat_train, load_split

    job = ChatJob.parse(
        {
            "model": {
                "name": args.model,
                "finetune": "lora",
                "adapter": {"r": args.lora_r, "alpha": 2 * args.lora_r},
            },
            "data": {
                "train": str(DATA / "train"),
                "dev_fraction": 0.05,
                "limit_train": args.train_dialogues,
                "limit_dev": args.dev_dialogues,
                "max_length": args.max_length,
                "sgd_service_results": args.sgd_service_results,
            },
            "train": {
                "learning_rate": args.lr,
                "batch_size": args.batch_size,
                "max_steps": args.max_steps,
                "eval_every": args.eval_every,
                "eval_batch_size": 8,
                "max_minutes": args.max_minutes,
                "progress": False,
            },
            "output": str(run_dir),
        }
    )
    train, dev, _ = load_split(job)
    seen = seen_services(train)
    print(f"train {len(train)} dialogues, dev {len(dev)}, seen services {sorted(seen)}", flush=True)
    report: dict[str, Any] = {}

    def evaluate(chat: ChatModel) -> dict[str, Any]:
        test = read_sgd(DATA / "test", service_results=args.sgd_service_results)
        ppl_convs = sample(test, args.ppl_dialogues, seed=0)
        cases = sgd_turn_cases(test, seen, args.turns_per_group, seed=0)
        gen = GenerationSettings(max_new_tokens=args.max_new_tokens)
        print(f"test: perplexity on {len(ppl_convs)} dialogues; {len(cases)} generated turns", flush=True)
        result = chat_evaluate(chat, ppl_convs, cases=cases, settings=gen, max_length=args.max_length)
        print(
            "perplexity:", json.dumps(result["perplexity"]), "turns:", json.dumps(result["turns"]), flush=True
        )
        return {
            "perplexity": result["perplexity"],
            "turns": result["turns"],
            "reference_turns": score_turns(cases, [c.reference for c in cases]),
            "generation": gen.to_dict(),
            "ids": [c.id for c in cases],
            "generated": result["generated"],
            "cases": cases,
            "data": {
                "train": f"SGD train ({DATA / 'train'}): {len(train)} dialogues (seeded sample), dev {len(dev)} held out",
                "seen_services": sorted(seen),
                "max_length": args.max_length,
                "service_results": f"{args.sgd_service_results} result row(s) per service call as a tool message "
                "before the assistant's turn (train and test)"
                if args.sgd_service_results
                else "none (utterances only)",
                "test_perplexity": f"{len(ppl_convs)} of {len(test)} SGD test dialogues (seed 0), "
                f"{result['perplexity']['tokens']} assistant tokens",
                "test_turns": f"{len(cases)} assistant turns with annotated slot values, one per dialogue, "
                f"{sum(c.seen for c in cases)} from seen and {sum(not c.seen for c in cases)} from unseen "
                "services (seed 0)",
            },
        }

    def finish(stage: str, part: dict[str, Any], t0: float) -> None:
        nonlocal report
        part.pop("cases", None)
        # threads are recorded per stage, not compared: a resumed stage may use another count
        part.update(
            {"seconds": round(time.perf_counter() - t0, 1), "command": command, "threads": args.threads}
        )
        report = save_stage(out_path, state, stage, part)
        print(f"{stage}: done in {part['seconds']:.0f} s, written to {out_path}", flush=True)

    def compare(part: dict[str, Any], other_stage: str) -> None:
        """With both evaluations done: the paired-bootstrap changes and the side-by-side samples."""
        other = state["stages"].get(other_stage)
        if other is None:
            return
        if other["ids"] != part["ids"]:
            raise StageError(f"{other_stage} in {out_path} scored other turns; pass --fresh")
        before, after = (other, part) if other_stage == "eval-before" else (part, other)
        part["change"] = paired_bootstrap(
            part["cases"], before["generated"], after["generated"], resamples=args.bootstrap, seed=0
        )
        write_samples(out_path, run_dir, part["cases"], before["generated"], after["generated"], args)

    for stage in todo:
        t0 = time.perf_counter()
        if stage == "eval-before":
            part = evaluate(ChatModel.from_pretrained(args.model))
            compare(part, "eval-after")
            finish(stage, part, t0)
        elif stage == "train":
            claim_run_dir(out_path, state, run_dir, command)
            result = chat_train(job)  # resumes an interrupted run from run_dir's checkpoint
            result.pop("model")
            part = {
                "training": {
                    k: result[k]
                    for k in (
                        "best_step",
                        "best_dev_loss",
                        "steps",
                        "train_time_s",
                        "train_tokens",
                        "stopped",
                    )
                },
                "tokens_per_s": result["tokens_per_s"],
                "history": result["history"],
                "data": {
                    "train_tokens": result["data"]["train_tokens"],
                    "train_assistant_tokens": result["data"]["train_assistant_tokens"],
                    "truncated_to_max_length": result["data"]["train"]["truncated"],
                },
            }
            print("trained:", json.dumps(part["training"]), flush=True)
            finish(stage, part, t0)
        elif stage == "eval-after":
            if "train" not in state["stages"]:
                raise StageError("eval-after needs the train stage first: run --stage train")
            part = evaluate(ChatModel.from_pretrained(run_dir, merge=True))  # the best checkpoint
            compare(part, "eval-before")
            finish(stage, part, t0)
        elif stage == "trl":
            from promptft.adapters import adapter_settings
            from promptft.chat.encoding import encode_all

            base = ChatModel.from_pretrained(args.model)
            enc, _ = encode_all(base.tokenizer, base.format, train, args.max_length)
            del base
            trl = trl_tokens_per_s(
                args.model,
                adapter_settings("lora", r=args.lora_r, alpha=2 * args.lora_r),
                enc,
                args.batch_size,
                args.trl_steps,
                args.lr,
                42,
            )
            print("trl:", json.dumps(trl), flush=True)
            finish(stage, trl, t0)
    summary = (
        "ppl_before",
        "ppl_after",
        "task_metric",
        "train_minutes",
        "tokens_per_s",
        "baseline_tokens_per_s",
    )
    print(json.dumps({k: report[k] for k in summary if k in report}, indent=2))


def write_samples(out_path: Path, run_dir: Path, cases, before: list[str], after: list[str], args) -> None:
    """The side-by-side markdown and every generation (JSONL) beside the results file and in the run folder."""
    from promptft.chat.evaluate import samples_markdown, value_in_context

    md = samples_markdown(
        cases,
        before,
        after,
        f"SGD test turns: {args.model} before and after chat fine-tuning (greedy, max {args.max_new_tokens} new tokens)",
        n=16,
    )
    out_path.with_name(out_path.stem + "_samples.md").write_text(md)
    (run_dir / "samples.md").write_text(md)
    rows = [
        {
            "id": c.id,
            "service": c.service,
            "seen": c.seen,
            "values": c.values,
            "in_context": value_in_context(c),
            "reference": c.reference,
            "before": b,
            "after": a,
        }
        for c, b, a in zip(cases, before, after, strict=True)
    ]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    out_path.with_name(out_path.stem + "_generations.jsonl").write_text(text)
    (run_dir / "generations.jsonl").write_text(text)


if __name__ == "__main__":
    main()
