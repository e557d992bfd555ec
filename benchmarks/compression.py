"""Distillation and pruning on SST-2 (issue #14): accuracy, size on disk and speed, each compared with the
prompt model it came from, measured in the same run (one thread: OMP_NUM_THREADS=1).

    python benchmarks/compression.py distill --teacher runs/demo-bench --limit 4000 --output runs/distill-sst2
        # -> benchmarks/results/distill.json
    python benchmarks/compression.py prune --teacher runs/demo-bench --sparsity 0.3,0.5 --output runs/prune-sst2
        # -> benchmarks/results/prune.json

Rows use the issue's production.json keys: variant, accuracy (SST-2 test, %), size_mb (the folder a
user needs to run the model: for the LoRA teacher its merged fp32 model, since the adapter alone cannot
run), latency_ms_b1 (ms per example, one at a time), latency_ms_b32 (ms per example in batches of 32, = 1000 / examples_per_s),
examples_per_s (the whole 872-sentence test set, batch 32, tokenisation included; the same pass gives
the accuracy).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from promptft import load_classifier
from promptft.data import read_examples
from promptft.demo import LABEL_MAP
from promptft.settings import data_dir

RESULTS = Path(__file__).resolve().parent / "results"
N_LATENCY = 64  # examples timed one at a time


def data(path: str):
    root = data_dir()
    if root is None:
        sys.exit("no data: set PROMPTFT_DATA to the shared data folder")
    return root / path


def test_set():
    return read_examples(data("SST-2/test.tsv"), label_map=LABEL_MAP)


def folder_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 2**20, 1)


def runnable_size_mb(clf) -> float:
    """Size on disk of what it takes to run `clf` (merged first: a LoRA adapter alone cannot run)."""
    with tempfile.TemporaryDirectory() as tmp:
        clf.save_pretrained(Path(tmp) / "m")
        return folder_mb(Path(tmp) / "m")


def measure(clf, examples, variant: str, size_mb: float) -> dict:
    """One timed pass over the test set at batch 32 gives accuracy, throughput and the per-example
    latency at batch 32; then N_LATENCY examples one at a time give the batch-1 latency."""
    from promptft.evaluation import classification_metrics

    texts = [ex.fields["text"] for ex in examples]
    clf.predict_proba(texts[:32], batch_size=32)  # warm-up
    start = time.perf_counter()
    probs = clf.predict_proba(texts, batch_size=32)
    whole = time.perf_counter() - start
    predicted = [clf.labels[i] for i in probs.argmax(1)]
    metrics = classification_metrics([ex.label for ex in examples], predicted, clf.labels)
    singles = []
    for text in texts[:N_LATENCY]:
        t0 = time.perf_counter()
        clf.predict_proba([text], batch_size=1)
        singles.append(time.perf_counter() - t0)
    return {
        "variant": variant,
        "accuracy": round(100 * metrics["accuracy"], 2),
        "macro_f1": round(100 * metrics["macro_f1"], 2),
        "size_mb": size_mb,
        "latency_ms_b1": round(1000 * statistics.mean(singles), 2),
        "latency_ms_b32": round(1000 * whole / len(texts), 2),
        "examples_per_s": round(len(texts) / whole, 1),
        "parameters": sum(p.numel() for p in {id(p): p for p in clf.module.parameters()}.values()),
    }


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpu_count": os.cpu_count(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),  # the CPU is shared: see the note
        "torch": torch.__version__,
    }


def write(name: str, result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")


def run_distill(args) -> None:
    from promptft.config import TrainConfig
    from promptft.deploy.prune import merge_adapter
    from promptft.recipes.distill import distill

    started = time.perf_counter()
    cfg = TrainConfig(
        learning_rate=args.lr, batch_size=32, max_steps=args.steps, eval_every=args.eval_every, progress=False
    )
    summary = distill(
        args.teacher,
        data("SST-2/train.tsv"),
        args.output,
        student=args.student,
        temperature=args.temperature,
        train=cfg,
        limit=args.limit,
        device="cpu",
    )
    distill_s = time.perf_counter() - started
    examples = test_set()[: args.n_test]
    teacher = load_classifier(
        Path(args.teacher) / "best" if (Path(args.teacher) / "best").exists() else args.teacher
    )
    merge_adapter(teacher)  # the LoRA folded in: the fp32 prompt model as it would be deployed
    teacher_row = measure(teacher, examples, "prompt_fp32", runnable_size_mb(teacher))
    del teacher
    student_dir = Path(summary["student_dir"])
    student = load_classifier(student_dir, device="cpu")
    student_row = measure(student, examples, "student", folder_mb(student_dir))
    write(
        "distill.json",
        {
            "command": "OMP_NUM_THREADS=1 python " + shlex.join(sys.argv),
            "task": "SST-2 test (872 sentences)",
            "teacher": str(args.teacher),
            "pool": f"SST-2/train.tsv, random sample of {summary['pool_size']} sentences (not the test set)",
            "student_model": args.student,
            "temperature": args.temperature,
            "distill": {
                k: summary[k]
                for k in (
                    "pool_size",
                    "train_size",
                    "dev",
                    "labelling_s",
                    "best_step",
                    "best_dev",
                    "train_time_s",
                )
            },
            "distill_wall_s": round(distill_s, 1),
            "rows": [teacher_row, student_row],
            "student_minus_teacher_points": round(student_row["accuracy"] - teacher_row["accuracy"], 2),
            "speedup_examples_per_s": round(student_row["examples_per_s"] / teacher_row["examples_per_s"], 2),
            "targets": {
                "student_within_3_points": student_row["accuracy"] >= teacher_row["accuracy"] - 3,
                "student_at_least_145_per_s": student_row["examples_per_s"] >= 145,
            },
            "machine": machine(),
        },
    )


def run_prune(args) -> None:
    from promptft.config import TrainConfig
    from promptft.deploy.prune import merge_adapter
    from promptft.recipes.prune import prune

    examples = test_set()[: args.n_test]
    rows, runs = [], []
    started = time.perf_counter()
    for sparsity in [float(x) for x in args.sparsity.split(",")]:
        out = Path(args.output) / f"sparsity-{round(100 * sparsity)}"
        cfg = TrainConfig(
            learning_rate=args.lr,
            batch_size=args.batch_size,
            max_steps=args.steps,
            eval_every=args.eval_every,
            checkpoint_every=args.steps,
            progress=False,
        )
        t0 = time.perf_counter()
        summary = prune(
            args.teacher,
            out,
            dev=data("SST-2/k-shot/16-42/dev.tsv"),
            sparsity=sparsity,
            soft_labels=args.soft_labels,
            soft_limit=args.soft_limit,
            temperature=args.temperature,
            recovery=cfg,
            columns={"label_map": LABEL_MAP},
            device="cpu",
        )
        summary["wall_s"] = round(time.perf_counter() - t0, 1)
        runs.append(summary)
        model_dir = Path(summary["model_dir"])
        pruned = load_classifier(model_dir, device="cpu")
        rows.append(measure(pruned, examples, f"pruned_{round(100 * sparsity)}", folder_mb(model_dir)))
        del pruned
    teacher = load_classifier(Path(args.teacher) / "best", device="cpu")
    merge_adapter(teacher)
    rows.insert(0, measure(teacher, examples, "prompt_fp32", runnable_size_mb(teacher)))
    base = rows[0]
    for row in rows[1:]:
        row["accuracy_minus_fp32"] = round(row["accuracy"] - base["accuracy"], 2)
        row["size_ratio"] = round(row["size_mb"] / base["size_mb"], 3)
        row["speedup_examples_per_s"] = round(row["examples_per_s"] / base["examples_per_s"], 2)
        row["speedup_latency_b1"] = round(base["latency_ms_b1"] / row["latency_ms_b1"], 2)
    write(
        "prune.json",
        {
            "command": "OMP_NUM_THREADS=1 python " + shlex.join(sys.argv),
            "task": "SST-2 test (872 sentences)" if args.n_test is None else f"first {args.n_test} test rows",
            "teacher": str(args.teacher),
            "importance": "first-order Taylor |w * dL/dw| on SST-2 16-shot dev (seed 42, 32 sentences)",
            "recovery": f"full fine-tune, {args.steps} steps of {args.batch_size} at lr {args.lr}, on the "
            f"unpruned model's soft labels ({args.soft_labels}, T={args.temperature}); best step on the dev",
            "rows": rows,
            "runs": runs,
            "wall_s": round(time.perf_counter() - started, 1),
            "machine": machine(),
        },
    )


def run_cputime(args) -> None:
    """Add CPU-time figures to the rows of a result file: on a shared machine the wall clock counts the
    other processes' share of the core too, while the process's own CPU time (one thread) does not."""
    from promptft.deploy.prune import merge_adapter

    path = RESULTS / args.result
    result = json.loads(path.read_text())
    examples = test_set()
    texts = [ex.fields["text"] for ex in examples]
    folders = {run["model_dir"]: run for run in result.get("runs", [])}
    by_variant = {f"pruned_{round(100 * run['sparsity'])}": d for d, run in folders.items()}
    by_variant["student"] = str(Path(args.distill_output) / "student" / "best")
    for row in result["rows"]:
        if row["variant"] == "prompt_fp32":
            clf = load_classifier(Path(result["teacher"]) / "best", device="cpu")
            merge_adapter(clf)
        else:
            clf = load_classifier(by_variant[row["variant"]], device="cpu")
        clf.predict_proba(texts[:32], batch_size=32)
        t0 = time.process_time()
        clf.predict_proba(texts, batch_size=32)
        row["examples_per_cpu_s"] = round(len(texts) / (time.process_time() - t0), 1)
        t0 = time.process_time()
        for text in texts[:N_LATENCY]:
            clf.predict_proba([text], batch_size=1)
        row["cpu_ms_b1"] = round(1000 * (time.process_time() - t0) / N_LATENCY, 2)
        del clf
    base = next((r for r in result["rows"] if r["variant"] == "prompt_fp32"), None)
    for row in result["rows"]:
        if base is not None and row is not base:
            row["speedup_examples_per_cpu_s"] = round(
                row["examples_per_cpu_s"] / base["examples_per_cpu_s"], 2
            )
    result["cpu_time_command"] = "OMP_NUM_THREADS=1 python " + shlex.join(sys.argv)
    result["cpu_time_note"] = (
        "examples_per_cpu_s and cpu_ms_b1: the process's own CPU time (time.process_time, one thread) for "
        "the same passes, measured after the run on the same machine; the wall-clock columns include the "
        "time other processes held the shared core"
    )
    write(args.result, result)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    d = sub.add_parser("distill")
    d.add_argument("--teacher", default="runs/demo-bench")
    d.add_argument("--output", default="runs/distill-sst2")
    d.add_argument("--student", default="minilm-l6")
    d.add_argument("--limit", type=int, default=4000)
    d.add_argument("--temperature", type=float, default=2.0)
    d.add_argument("--steps", type=int, default=300)
    d.add_argument("--eval-every", type=int, default=50)
    d.add_argument("--lr", type=float, default=1e-4)
    d.add_argument("--n-test", type=int, default=None, help="smoke runs only: score the first N test rows")
    p = sub.add_parser("prune")
    p.add_argument("--teacher", default="runs/demo-bench")
    p.add_argument("--output", default="runs/prune-sst2")
    p.add_argument("--sparsity", default="0.3,0.5")
    p.add_argument("--soft-labels", default="runs/distill-sst2")
    p.add_argument("--soft-limit", type=int, default=None)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--eval-every", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--n-test", type=int, default=None, help="smoke runs only: score the first N test rows")
    c = sub.add_parser("cputime")
    c.add_argument("--result", required=True, help="distill.json or prune.json under benchmarks/results")
    c.add_argument("--distill-output", default="runs/distill-sst2")
    args = parser.parse_args()
    {"distill": run_distill, "prune": run_prune, "cputime": run_cputime}[args.what](args)


if __name__ == "__main__":
    main()
