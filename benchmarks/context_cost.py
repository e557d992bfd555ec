"""What demonstrations and channel scoring cost next to plain LoRA prompt FT, measured in one process.

    python benchmarks/context_cost.py --tasks sst-2,trec --repeats 2   # -> results/context_cost.json

For each task (the seed-13 16-shot split, the benchmark's prompts and options): one LoRA training step on the
same batch of 8 training examples, and predicting the same dev examples, for `prompt_ft_lora`,
`demonstrations` (similar, 2 sets, max_length 512: the bench defaults) and `channel`. The methods are
interleaved within each repeat, so load on a shared machine hits them alike; both wall and CPU seconds
(`time.process_time`, all threads of this process) are recorded, and the ratios use CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from promptft.bench.tasks import load_tasks, read_split, split_path
from promptft.classifiers import ChannelClassifier, PromptClassifier, channel_template
from promptft.config.bench import load_bench_config, method_job
from promptft.models.loading import load_backbone
from promptft.settings import data_dir

RESULTS = Path(__file__).resolve().parent / "results"


def split(task, which: str, seed: int = 13):
    root = data_dir()
    if root is None:
        sys.exit("no data: set PROMPTFT_DATA to the shared data folder")
    return read_split(task, split_path(task, which, seed, 16, root))


def build(name: str, task, model: str, options: dict):
    spec = task.prompt_for("causal")
    job = method_job(options, "channel" if name == "channel" else "prompt", "lora")
    backbone = load_backbone(model, kind="causal", device="cpu")
    torch.manual_seed(0)
    if name == "channel":
        clf = ChannelClassifier(
            backbone, channel_template(spec.template), spec.label_words, max_length=job.prompt.max_length
        )
    else:
        clf = PromptClassifier(
            backbone,
            spec.template,
            spec.label_words,
            max_length=job.prompt.max_length,
            demonstrations=job.prompt.demonstrations,
        )
    clf.set_finetune(job.model.adapter_settings())
    return clf, spec


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tasks", default="sst-2,trec")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--n-predict", type=int, default=16)
    parser.add_argument("--out", default=str(RESULTS / "context_cost.json"))
    args = parser.parse_args()
    table = load_tasks()
    bench = load_bench_config()
    methods = ("prompt_ft_lora", "demonstrations", "channel")
    out: dict = {
        "command": "python benchmarks/context_cost.py " + " ".join(sys.argv[1:]),
        "model": args.model,
        "torch_threads": torch.get_num_threads(),
        "load_average_start": os.getloadavg(),
        "tasks": {},
    }
    for key in args.tasks.split(","):
        task = table.find(key)
        train, dev = split(task, "train"), split(task, "dev")[: args.n_predict]
        clfs = {m: build(m, task, args.model, bench.method(m, task.key)) for m in methods}
        batch, encoded, predict_inputs, optimizers = {}, {}, {}, {}
        for m, (clf, spec) in clfs.items():
            prepared = spec.prepare(train)
            encoded_train = clf.encode_for_training(prepared)  # demonstrations: the pool is the train set
            targets = clf.objective.targets(prepared)
            pick = list(range(0, len(prepared), max(1, len(prepared) // 8)))[:8]
            batch[m] = ([encoded_train[i] for i in pick], targets[pick])
            encoded[m] = sum(clf.length_of(encoded_train[i]) for i in pick)
            predict_inputs[m] = spec.prepare(dev)
            optimizers[m] = torch.optim.AdamW(
                [p for p in clf.module.parameters() if p.requires_grad], lr=1e-4
            )
        steps: dict[str, list[tuple[float, float]]] = {m: [] for m in methods}
        predicts: dict[str, list[tuple[float, float]]] = {m: [] for m in methods}
        for _ in range(args.repeats):
            for m, (clf, _spec) in clfs.items():
                inputs, targets = batch[m]

                def step(clf=clf, inputs=inputs, targets=targets, opt=optimizers[m]):
                    clf.module.train()
                    loss = clf.objective.loss(clf.module(inputs), targets).mean()
                    loss.backward()
                    opt.step()
                    opt.zero_grad()

                steps[m].append(timed(step))
                predicts[m].append(
                    timed(lambda clf=clf, inputs=predict_inputs[m]: clf.predict_proba(inputs, 16))
                )
        row = {}
        base_step = statistics.median(c for _, c in steps["prompt_ft_lora"])
        base_pred = statistics.median(c for _, c in predicts["prompt_ft_lora"])
        for m in methods:
            step_cpu = statistics.median(c for _, c in steps[m])
            pred_cpu = statistics.median(c for _, c in predicts[m])
            row[m] = {
                "train_step_cpu_s": round(step_cpu, 3),
                "train_step_wall_s": round(statistics.median(w for w, _ in steps[m]), 3),
                "train_step_tokens": encoded[m],
                "predict_cpu_s_per_example": round(pred_cpu / len(predict_inputs[m]), 4),
                "train_step_cost_vs_prompt_ft_lora": round(step_cpu / base_step, 2),
                "predict_cost_vs_prompt_ft_lora": round(pred_cpu / base_pred, 2),
            }
        out["tasks"][task.key] = {"n_predict": len(dev), "batch": 8, "methods": row}
        print(task.key, json.dumps(row, indent=1), flush=True)
    out["load_average_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
