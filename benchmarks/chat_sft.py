"""Benchmark (issue 12): fine-tune SmolLM2-135M-Instruct on SGD train dialogues with promptft's chat path,
evaluate on SGD test before and after (assistant-token perplexity on a seeded subset of test dialogues;
slot-value recall and ROUGE-L of generated next turns on a seeded sample of turns from services seen and
unseen in training), and time TRL's SFTTrainer on the same encoded conversations in the same process.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/chat_sft.py

Writes benchmarks/results/chat_sft.json and chat_sft_samples.md (and the samples into the run folder).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import sys
import time
from pathlib import Path

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


def main() -> None:
    ap = argparse.ArgumentParser()
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
    ap.add_argument("--ppl-dialogues", type=int, default=40)
    ap.add_argument("--turns-per-group", type=int, default=30)
    ap.add_argument("--max-new-tokens", type=int, default=40)
    ap.add_argument("--trl-steps", type=int, default=6)
    ap.add_argument("--run-dir", default="runs/chat_sft_sgd")
    ap.add_argument("--out", default="benchmarks/results/chat_sft.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    from promptft.chat.data import read_sgd
    from promptft.chat.evaluate import samples_markdown, sgd_turn_cases
    from promptft.chat.generate import GenerationSettings
    from promptft.chat.model import ChatModel
    from promptft.config.chat import ChatJob
    from promptft.recipes.chat_eval import chat_evaluate, sample, seen_services
    from promptft.recipes.chat_train import chat_train, load_split

    run_dir = ROOT / args.run_dir
    if run_dir.exists():
        shutil.rmtree(run_dir)
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
    test = read_sgd(DATA / "test")
    ppl_convs = sample(test, args.ppl_dialogues, seed=0)
    cases = sgd_turn_cases(test, seen, args.turns_per_group, seed=0)
    gen = GenerationSettings(max_new_tokens=args.max_new_tokens)
    print(f"train {len(train)} dialogues, dev {len(dev)}, seen services {sorted(seen)}", flush=True)
    print(f"test: perplexity on {len(ppl_convs)} dialogues; {len(cases)} generated turns", flush=True)

    t0 = time.perf_counter()
    base = ChatModel.from_pretrained(args.model)
    before = chat_evaluate(base, ppl_convs, cases=cases, settings=gen, max_length=args.max_length)
    before_s = time.perf_counter() - t0
    print(
        "before:",
        json.dumps(before["perplexity"]),
        json.dumps(before["turns"]),
        f"{before_s:.0f} s",
        flush=True,
    )
    del base

    result = chat_train(job)
    chat = result.pop("model")
    print("trained:", json.dumps({k: v for k, v in result.items() if k != "history"}), flush=True)
    after = chat_evaluate(chat, ppl_convs, cases=cases, settings=gen, max_length=args.max_length)
    print("after:", json.dumps(after["perplexity"]), json.dumps(after["turns"]), flush=True)

    # TRL on the same encoded training conversations, same LoRA and batch size.
    from promptft.adapters import adapter_settings
    from promptft.chat.encoding import encode_all

    enc, _ = encode_all(chat.tokenizer, chat.format, train, args.max_length)
    del chat
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

    md = samples_markdown(
        cases,
        before["generated"],
        after["generated"],
        f"SGD test turns: {args.model} before and after chat fine-tuning (greedy, max {args.max_new_tokens} new tokens)",
        n=16,
    )
    samples_path = Path(args.out).with_name("chat_sft_samples.md")
    samples_path.write_text(md)
    (run_dir / "samples.md").write_text(md)
    generations = [
        {
            "id": c.id,
            "service": c.service,
            "seen": c.seen,
            "values": c.values,
            "reference": c.reference,
            "before": b,
            "after": a,
        }
        for c, b, a in zip(cases, before["generated"], after["generated"], strict=True)
    ]
    (run_dir / "generations.jsonl").write_text("".join(json.dumps(g) + "\n" for g in generations))
    recall = lambda r: {k: r["turns"][k]["slot_value_recall"] for k in ("all", "seen", "unseen")}  # noqa: E731
    rouge = lambda r: {k: r["turns"][k]["rouge_l"] for k in ("all", "seen", "unseen")}  # noqa: E731
    out = {
        "ppl_before": before["perplexity"]["perplexity"],
        "ppl_after": after["perplexity"]["perplexity"],
        "task_metric": {"name": "slot_value_recall", "before": recall(before), "after": recall(after)},
        "rouge_l": {"before": rouge(before), "after": rouge(after)},
        "train_minutes": round(result["train_time_s"] / 60, 2),
        "tokens_per_s": result["tokens_per_s"],
        "baseline_tokens_per_s": trl["tokens_per_s"],
        "baseline": "trl.SFTTrainer (same LoRA, batch size, learning rate and encoded conversations with assistant "
        "masks; full-vocabulary logits at every position; random batches, padded to the longest)",
        "ours": "promptft ChatTrainer: output head only at assistant tokens, length-grouped batches",
        "trl_run": trl,
        "model": args.model,
        "adapter": {
            "name": "lora",
            "r": args.lora_r,
            "alpha": 2 * args.lora_r,
            "target_modules": "all-linear",
        },
        "data": {
            "train": f"SGD train ({DATA / 'train'}): {len(train)} dialogues (seeded sample), dev {len(dev)} held out",
            "train_tokens": result["data"]["train_tokens"],
            "train_assistant_tokens": result["data"]["train_assistant_tokens"],
            "truncated_to_max_length": result["data"]["train"]["truncated"],
            "max_length": args.max_length,
            "seen_services": sorted(seen),
            "test_perplexity": f"{len(ppl_convs)} of {len(test)} SGD test dialogues (seed 0), "
            f"{before['perplexity']['tokens']} assistant tokens",
            "test_turns": f"{len(cases)} assistant turns with annotated slot values, one per dialogue, "
            f"{sum(c.seen for c in cases)} from seen and {sum(not c.seen for c in cases)} from unseen services (seed 0)",
        },
        "turns_before": before["turns"],
        "turns_after": after["turns"],
        "perplexity_before": before["perplexity"],
        "perplexity_after": after["perplexity"],
        "generation": gen.to_dict(),
        "training": {
            k: result[k]
            for k in ("best_step", "best_dev_loss", "steps", "train_time_s", "train_tokens", "stopped")
        },
        "dev_history": result["history"],
        "eval_before_s": round(before_s, 1),
        "threads": torch.get_num_threads(),
        "command": "OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=src python "
        + " ".join(map(shlex.quote, sys.argv)),
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: out[k]
                for k in (
                    "ppl_before",
                    "ppl_after",
                    "task_metric",
                    "train_minutes",
                    "tokens_per_s",
                    "baseline_tokens_per_s",
                )
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
