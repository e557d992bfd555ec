"""Production benchmark (issue 14): accuracy, size on disk, latency per example (batch 1 and 32) and
throughput of one trained SST-2 prompt model as PyTorch fp32, torch int8 (dynamic), ONNX fp32, ONNX int8 and
ONNX int4 (weight-only), and of saved models derived from it (`--model pruned_30=DIR student=DIR`), all in
one process on the same examples, with ratios to PyTorch fp32.

    # export the ONNX variants once (slow), outside the timed run:
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/production.py --run RUN --onnx-dir DIR --export-only
    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/production.py --run RUN --onnx-dir DIR \
        --model pruned_30=PRUNED30 pruned_50=PRUNED50 student=STUDENT

Rows are merged into benchmarks/results/production.json by variant (rows of variants not measured here are
kept). Every variant runs the same examples in the same order; the LoRA adapter is merged into the weights
first (what one deploys). latency_ms_b1: mean over the first `--b1` examples, one at a time;
latency_ms_b32: the batch-32 pass's time per example (= 1000 / examples_per_s; the whole pass, tokenisation
excluded, is also the accuracy pass); batch32_ms (details file): the time of one batch of 32.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from promptft.data import read_examples  # noqa: E402


def size_mb(path: Path) -> float:
    total = (
        path.stat().st_size
        if path.is_file()
        else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    )
    return round(total / 2**20, 2)


def measure(clf, examples, b1_examples, repeats: int = 1) -> dict:
    """Accuracy and timings: one pass at batch 32 over all examples (throughput, per-batch latency), and
    batch-1 latency over the first `b1_examples`."""
    encoded = clf.encode(examples)
    clf.logits_encoded(encoded[:32], batch_size=32)  # warm-up (onnxruntime and torch allocate on first run)
    best = None
    for _ in range(repeats):
        start = time.perf_counter()
        logits = clf.logits_encoded(encoded, batch_size=32)
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    predictions = clf.objective.decode(logits)
    accuracy = sum(p == ex.label for p, ex in zip(predictions, examples, strict=True)) / len(examples)
    one = encoded[:b1_examples]
    start = time.perf_counter()
    for item in one:
        clf.logits_encoded([item], batch_size=1)
    b1 = (time.perf_counter() - start) / len(one)
    batches = -(-len(examples) // 32)
    return {
        "accuracy": round(accuracy, 4),
        "latency_ms_b1": round(1000 * b1, 2),
        "latency_ms_b32": round(1000 * best / len(examples), 2),
        "batch32_ms": round(1000 * best / batches, 2),
        "examples_per_s": round(len(examples) / best, 2),
        "_predictions": predictions,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", default=str(ROOT.parent / "main" / "runs" / "demo-bench"))
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "SST-2" / "test.tsv"))
    parser.add_argument("--limit", type=int, default=None, help="first N test sentences (default: all)")
    parser.add_argument("--b1", type=int, default=64, help="sentences timed one at a time")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "production.json"))
    parser.add_argument("--details", default=str(ROOT / "benchmarks" / "results" / "production_quant.json"))
    parser.add_argument(
        "--model",
        nargs="*",
        default=[],
        metavar="VARIANT=DIR",
        help="saved classifiers measured alongside (e.g. pruned_30=runs/prune/sparsity-30/best student=...)",
    )
    parser.add_argument(
        "--onnx-dir",
        default=None,
        help="keep the ONNX exports here and reuse them (default: a temporary folder)",
    )
    parser.add_argument(
        "--export-only", action="store_true", help="write the ONNX exports to --onnx-dir and stop"
    )
    parser.add_argument(
        "--int8-compare",
        nargs="*",
        default=["int8_7bit", "int8_no_smooth"],
        choices=["int8_7bit", "int8_no_smooth"],
        help="extra torch int8 rows in the details file: int8_7bit = torch's stock 7-bit activations (no "
        "SmoothQuant), int8_no_smooth = 8-bit activations without SmoothQuant",
    )
    parser.add_argument(
        "--int8-calibration",
        type=int,
        default=64,
        help="SST-2 train sentences (outside the few-shot files and int8_select.py's selection set) whose "
        "activation maxima SmoothQuant uses for the int8 row; 0: no SmoothQuant",
    )
    args = parser.parse_args()
    if args.export_only and not args.onnx_dir:
        parser.error("--export-only needs --onnx-dir")
    extra = {}
    for item in args.model:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_dir():
            parser.error(f"--model {item!r}: expected VARIANT=DIR with an existing saved classifier folder")
        extra[name] = Path(path)

    import torch

    from promptft.classifiers import load_classifier
    from promptft.deploy.onnx_export import export_onnx, merge_adapter
    from promptft.deploy.onnx_runtime import ONNX_MODEL, OnnxClassifier
    from promptft.deploy.quantize import quantize_torch_int8, state_size_bytes

    threads = int(os.environ.get("OMP_NUM_THREADS", "0")) or os.cpu_count()
    torch.set_num_threads(threads)
    examples = read_examples(args.data, label_map={"0": "negative", "1": "positive"}, limit=args.limit)
    load_before = os.getloadavg()
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    started = time.time()
    rows, details = [], {}
    run = Path(args.run)
    best = run / "best" if (run / "best").is_dir() else run

    fp32 = load_classifier(best, device="cpu")
    merge_adapter(fp32)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        exports = Path(args.onnx_dir) if args.onnx_dir else tmp
        onnx_variants = (("onnx", {}), ("onnx_int8", {"int8": True}), ("onnx_int4", {"int4": True}))
        for name, quantization in onnx_variants:
            if not (exports / name / ONNX_MODEL).is_file():
                start = time.perf_counter()
                export_onnx(copy.deepcopy(fp32), exports / name, **quantization)
                details[f"{name}_export_s"] = round(time.perf_counter() - start, 1)
        if args.export_only:
            print(f"exports in {exports}", file=sys.stderr)
            return
        fp32.backbone.model.save_pretrained(tmp / "fp32")  # safetensors: what a merged fp32 model takes
        variants = {"prompt_fp32": (fp32, size_mb(tmp / "fp32"))}
        calibration = None
        if args.int8_calibration:
            # train sentences, never test ones: int8_smoothquant.py's calibration slice
            sys.path.insert(0, str(ROOT / "benchmarks"))
            from int8_select import selection_set
            from int8_smoothquant import calibration_set

            train = Path(args.data).parent
            calibration = calibration_set(
                train, args.int8_calibration, 1, 6, exclude=selection_set(train, 500, 0, 6)
            )
        int8 = quantize_torch_int8(copy.deepcopy(fp32), calibration=calibration)
        details["int8_quantization"] = int8.quantization
        details["int8_calibration_sentences"] = len(calibration or [])
        variants["int8"] = (int8, round(state_size_bytes(int8.backbone.model) / 2**20, 2))
        if "int8_no_smooth" in args.int8_compare and calibration is not None:
            plain = quantize_torch_int8(copy.deepcopy(fp32))
            variants["int8_no_smooth"] = (plain, round(state_size_bytes(plain.backbone.model) / 2**20, 2))
        if "int8_7bit" in args.int8_compare:
            old = quantize_torch_int8(copy.deepcopy(fp32), reduce_range=True)
            variants["int8_7bit"] = (old, round(state_size_bytes(old.backbone.model) / 2**20, 2))
        for name, _ in onnx_variants:
            variants[name] = (OnnxClassifier(exports / name), size_mb(exports / name / ONNX_MODEL))
        for name, path in extra.items():
            variants[name] = (load_classifier(path, device="cpu"), size_mb(path))
            details[f"{name}_dir"] = str(path)
        reference = None
        for name, (clf, size) in variants.items():
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            result = measure(clf, examples, args.b1, args.repeats)
            predictions = result.pop("_predictions")
            if reference is None:
                reference = predictions
            agreement = sum(a == b for a, b in zip(predictions, reference, strict=True)) / len(reference)
            rows.append(
                {"variant": name, **result, "size_mb": size, "agreement_with_fp32": round(agreement, 4)}
            )
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    base = rows[0]
    for row in rows:
        row["accuracy_delta_pts"] = round(100 * (row["accuracy"] - base["accuracy"]), 2)
        row["speedup_vs_fp32"] = round(row["examples_per_s"] / base["examples_per_s"], 3)
        row["b1_speedup_vs_fp32"] = round(base["latency_ms_b1"] / row["latency_ms_b1"], 3)
        row["size_ratio_vs_fp32"] = round(row["size_mb"] / base["size_mb"], 3)
    meta = {
        "command": "OMP_NUM_THREADS={} PYTHONPATH=src python {}".format(
            os.environ.get("OMP_NUM_THREADS", ""), shlex.join(["benchmarks/production.py", *sys.argv[1:]])
        ),
        "run": str(run),
        "data": args.data,
        "n_examples": len(examples),
        "b1_examples": args.b1,
        "threads": threads,
        "loadavg_before": [round(x, 2) for x in load_before],
        "uptime_before": uptime_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "torch": torch.__version__,
        "onnxruntime": __import__("onnxruntime").__version__,
        "seconds": round(time.time() - started, 1),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "notes": "LoRA merged into the weights for every variant; torch int8 = quantize_dynamic with per-channel "
        "int8 weights on every Linear except the output head and the MLP down_proj (kept fp32, see "
        "promptft.deploy.quantize.KEEP_FP32), 8-bit activations where the CPU has VNNI, after SmoothQuant "
        "(alpha promptft.deploy.quantize.SMOOTH_ALPHA, activation maxima of --int8-calibration SST-2 train "
        "sentences; int8_no_smooth: without it; int8_7bit: torch's stock 7-bit activations without it); pruned/student: the saved folders given with "
        "--model, size = the folder; ONNX int8 = onnxruntime quantize_dynamic (per-channel int8 weights, "
        "uint8 embedding gather; output head and down_proj MatMuls kept fp32); ONNX int4 = onnxruntime "
        "MatMulNBits weight-only int4, symmetric blocks of 32, accuracy_level 4 (same nodes kept fp32; embedding "
        "gather fp32); size: merged safetensors (fp32), torch.save of the quantized state (int8), the .onnx file "
        "(onnx; the tied embedding is stored twice, as the gather table and the transposed head)",
        **details,
    }
    by = {r["variant"]: r for r in rows}
    targets = {}
    if "student" in by:
        targets["student_within_3_points"] = by["student"]["accuracy_delta_pts"] >= -3
        targets["student_at_least_145_per_s"] = by["student"]["examples_per_s"] >= 145
    targets["int8_within_1_point"] = abs(by["int8"]["accuracy_delta_pts"]) <= 1
    targets["int8_at_least_1.5x_throughput"] = by["int8"]["speedup_vs_fp32"] >= 1.5
    meta["targets"] = targets
    out = Path(args.out)
    existing = json.loads(out.read_text()) if out.exists() else []
    # the details file keeps the comparisons
    main_rows = [r for r in rows if r["variant"] not in ("int8_7bit", "int8_no_smooth")]
    mine = {r["variant"] for r in main_rows}
    keys = ("variant", "accuracy", "size_mb", "latency_ms_b1", "latency_ms_b32", "examples_per_s")
    merged = [r for r in existing if r.get("variant") not in mine]
    merged += [
        {
            **{k: r[k] for k in keys},
            "source": "benchmarks/results/production_quant.json",
            "command": meta["command"],
        }
        for r in main_rows
    ]
    order = ["prompt_fp32", "int8", "pruned_30", "pruned_50", "onnx", "onnx_int8", "onnx_int4", "student"]
    merged.sort(key=lambda r: order.index(r["variant"]) if r["variant"] in order else len(order))
    out.write_text(json.dumps(merged, indent=2) + "\n")
    Path(args.details).write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
