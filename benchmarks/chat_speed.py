"""Training speed, back to back in one process on the same SGD conversations (the machine is shared, so the
three are measured in turn and the order is recorded): promptft's ChatTrainer (length-grouped batches, output
head only at assistant tokens), the same with packing, and TRL's SFTTrainer (same LoRA, batch size and
encoded conversations with assistant masks).

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=src python benchmarks/chat_speed.py

Adds a `speed_check` entry to benchmarks/results/chat_sft.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chat_sft import DATA, trl_tokens_per_s  # noqa: E402


def ours(model, settings, encoded, batch_size, steps, lr, packing, max_length) -> dict:
    from promptft.chat.model import ChatModel
    from promptft.chat.train import ChatTrainer
    from promptft.config.chat import ChatTrainConfig

    chat = ChatModel.from_pretrained(model, adapter=settings)
    config = ChatTrainConfig(
        batch_size=1 if packing else batch_size,
        max_steps=steps,
        eval_every=steps,
        eval_at_start=False,
        packing=packing,
        progress=False,
        warmup_ratio=0.0,
    )
    start = time.perf_counter()
    result = ChatTrainer(chat, config, lr, max_length=max_length).train(encoded)
    seconds = time.perf_counter() - start
    return {
        "tokens": result.train_tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(result.train_tokens / seconds, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--conversations", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--out", default="benchmarks/results/chat_sft.json")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from promptft.adapters import adapter_settings
    from promptft.chat.encoding import encode_all
    from promptft.chat.model import ChatModel
    from promptft.config.chat import ChatJob
    from promptft.recipes.chat_train import load_split

    job = ChatJob.parse(
        {"data": {"train": str(DATA / "train"), "dev_fraction": 0.05, "limit_train": 180, "limit_dev": 12}}
    )
    train, _, _ = load_split(job)
    probe = ChatModel.from_pretrained(args.model)
    encoded, _ = encode_all(probe.tokenizer, probe.format, train[: args.conversations], 512)
    del probe
    steps = args.conversations // args.batch_size
    settings = lambda: adapter_settings("lora", r=args.lora_r, alpha=2 * args.lora_r)  # noqa: E731
    runs = {}
    runs["promptft"] = ours(args.model, settings(), encoded, args.batch_size, steps, args.lr, False, 512)
    print("promptft", runs["promptft"], flush=True)
    runs["trl_sft"] = trl_tokens_per_s(args.model, settings(), encoded, args.batch_size, steps, args.lr, 42)
    print("trl", runs["trl_sft"], flush=True)
    # packed rows of up to 4 x 256 tokens: about the same tokens per step as 4 conversations
    runs["promptft_packed"] = ours(
        args.model, settings(), encoded, args.batch_size, steps, args.lr, True, 1024
    )
    print("packed", runs["promptft_packed"], flush=True)
    out_path = Path(args.out)
    data = json.loads(out_path.read_text()) if out_path.exists() else {}
    data["speed_check"] = {
        "what": f"{len(encoded)} SGD train conversations ({sum(len(x) for x in encoded)} tokens), "
        f"LoRA r={args.lora_r}, batch {args.batch_size}, measured in this order in one process",
        "order": list(runs),
        **runs,
        "command": "OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=src python "
        + " ".join(map(shlex.quote, sys.argv)),
    }
    out_path.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps(data["speed_check"], indent=2))


if __name__ == "__main__":
    main()
