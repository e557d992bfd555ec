"""Seconds per training step and per dev comment of the GoEmotions multi-label methods (issue 10).

Compares the yes/no question per label (approach a) asking all labels, asking the positives plus N sampled
negatives (`train_negatives`), and the one-prompt sigmoid method (b), built as `promptft bench` builds them
(the bench config's LoRA and max_length, the task's prompt and question). Times a few LoRA steps (batch 8,
the same batches for every method) and the evaluation of a few dev comments, then estimates a GoEmotions
cell: 200 steps + a dev evaluation every 20 steps on the seed's dev sample + a 1,000-comment test subset.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/yesno_negatives.py --methods sigmoid,all,4
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

from promptft.bench.methods import job_of
from promptft.bench.task_methods import DEFAULT_QUESTION
from promptft.bench.tasks import load_tasks, read_split, sample_split
from promptft.classifiers import PromptClassifier, YesNoClassifier
from promptft.config.bench import load_bench_config
from promptft.models.loading import load_backbone
from promptft.models.registry import resolve_model
from promptft.training import set_seed

DATA = Path("/work/shared/data")


def build(name: str, task, bench, model: str):
    """`sigmoid`, `all` (yes/no, every label) or an integer N (yes/no, positives + N negatives)."""
    method = "prompt_ft_multilabel_sigmoid" if name == "sigmoid" else "prompt_ft_multilabel_yesno"
    options = {k: v for k, v in bench.method(method, "goemotions").items() if k != "train_negatives"}
    job = job_of(options, 0, "prompt" if name == "sigmoid" else "yes_no", "lora")
    backbone = load_backbone(resolve_model(model))
    if name == "sigmoid":
        spec = task.prompt_for(backbone.kind)
        clf = PromptClassifier(
            backbone,
            spec.template,
            spec.label_words,
            max_length=job.prompt.max_length,
            objective=task.objective(),
        )
        prepare = spec.prepare
    else:
        extra = {} if name == "all" else {"train_negatives": int(name)}
        clf = YesNoClassifier(
            backbone,
            task.question or DEFAULT_QUESTION,
            {x: x for x in task.label_names},
            max_length=job.prompt.max_length,
            objective=task.objective(),
            **extra,
        )
        prepare = list
    clf.set_finetune(job.model.adapter_settings())
    return clf, prepare, job


def cell_estimates(step: float, per_comment: float, cell: dict) -> dict:
    """Seconds of one GoEmotions cell per dev schedule: the bench config's eval_every and every 20 steps."""
    out = {}
    for every in sorted({20, cell["eval_every"]}):
        estimate = {
            "train_s": step * cell["max_steps"],
            "dev_evals_s": per_comment * cell["dev_comments"] * (cell["max_steps"] // every),
            "test_s": per_comment * cell["test_comments"],
        }
        estimate["total_min"] = sum(estimate.values()) / 60
        out[f"eval_every_{every}"] = {k: round(v, 1) for k, v in estimate.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--methods", default="sigmoid,all,4")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up step)")
    parser.add_argument("--dev-comments", type=int, default=16, help="dev comments timed")
    parser.add_argument("--dev-batch", type=int, default=8, help="dev comments per timed batch")
    parser.add_argument("--output", default="benchmarks/results/experiments/yesno_negatives.json")
    args = parser.parse_args()

    task = load_tasks().find("goemotions")
    bench = load_bench_config()
    train = sample_split(task, read_split(task, DATA / task.train), args.seed)
    dev = sample_split(task, read_split(task, DATA / task.dev), args.seed)
    rng = random.Random(args.seed)
    batches = [rng.sample(range(len(train)), 8) for _ in range(args.steps + 1)]
    dev_timed = dev[: args.dev_comments]
    yes_options = bench.method("prompt_ft_multilabel_yesno", "goemotions")
    cell = {
        "max_steps": yes_options["max_steps"],
        "eval_every": yes_options["eval_every"],
        "dev_comments": len(dev),
        "test_comments": 1000,
    }
    # The CPU is shared with other jobs whose load varies: every method is built first, then timed in turns
    # (one step of each, round after round; then dev batches, each method in turn), so each sees the
    # same load; the median of the rounds is reported.
    built = {}
    for name in args.methods.split(","):
        set_seed(args.seed)
        clf, prepare, job = build(name, task, bench, args.model)
        enc = getattr(clf, "encode_for_training", clf.encode)(prepare(train))
        params = [p for p in clf.module.parameters() if p.requires_grad]
        built[name] = {
            "clf": clf,
            "enc": enc,
            "enc_dev": clf.encode(prepare(dev_timed)),
            "targets": clf.objective.targets(train),
            "optimizer": torch.optim.AdamW(params, lr=job.train.learning_rate),
            "times": [],
            "asked": [],
            "dev_times": [],
        }
    for i, batch in enumerate(batches):
        for b in built.values():
            clf, module = b["clf"], b["clf"].module
            module.train()
            set_seed(args.seed + i)
            start = time.perf_counter()
            b["optimizer"].zero_grad(set_to_none=True)
            logits = module([b["enc"][j] for j in batch])
            loss = clf.objective.loss(logits, b["targets"][batch]).mean()
            loss.backward()
            b["optimizer"].step()
            if i:  # the first step warms up
                b["times"].append(time.perf_counter() - start)
                b["asked"].append(int((~logits.isnan()).sum()))
    size = args.dev_batch
    for k in range(0, len(dev_timed) - size + 1, size):
        for b in built.values():
            module = b["clf"].module
            module.eval()
            start = time.perf_counter()
            with torch.inference_mode():
                module(b["enc_dev"][k : k + size])
            b["dev_times"].append((time.perf_counter() - start) / size)
    results = {}
    for name, b in built.items():
        step = statistics.median(b["times"])
        per_comment = statistics.median(b["dev_times"])
        results[name] = {
            "step_s": round(step, 3),
            "step_s_each": [round(t, 3) for t in b["times"]],
            "questions_per_step": b["asked"],  # sigmoid: label scores of the one prompt per comment
            "dev_s_per_comment": round(per_comment, 4),
            "cell_estimate": cell_estimates(step, per_comment, cell),
        }
        print(name, json.dumps(results[name]), flush=True)
    base = results.get("sigmoid", {}).get("step_s")
    for r in results.values():
        if base:
            r["step_vs_sigmoid"] = round(r["step_s"] / base, 2)
    out = {
        "command": "OMP_NUM_THREADS=1 PYTHONPATH=src python " + shlex.join(sys.argv),
        "model": args.model,
        "seed": args.seed,
        "train_comments": len(train),
        "batch_size": 8,
        "threads": torch.get_num_threads(),
        "note": "CPU shared with a background benchmark (2 cores, 1 thread here), so times are noisy: the "
        "methods were timed in turns (a step of each, round after round, on the same batches; then dev batches of "
        "--dev-batch comments, each method in turn) and the medians reported. The cell estimate is "
        "steps x step_s + (max_steps / eval_every) dev evaluations of the seed's dev sample + a 1,000-comment "
        "test subset, both at dev_s_per_comment (model loading and encoding left out).",
        "cell": cell,
        "methods": results,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
