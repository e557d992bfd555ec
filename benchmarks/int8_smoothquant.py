"""SmoothQuant before torch int8 (issue 14): each configuration (SmoothQuant's alpha, or none; MLP down_proj
quantized or kept fp32) against the fp32 prompt model on int8_select.py's selection set (500 SST-2 *train*
sentences outside the few-shot files): agreement with fp32's predictions, accuracy, the largest change in a
probability, the process's CPU time per example (one thread). The activation maxima are measured on a
separate calibration slice of train (`--calibration` sentences, disjoint from the selection set); the test
set is not used.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/int8_smoothquant.py --run /work/runs-prod/demo-bench

-> benchmarks/results/experiments/int8_smoothquant.json. The chosen configuration: highest agreement (ties:
accuracy, then CPU time), int8_select.py's rule; its test accuracy and speed are measured by production.py.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from int8_select import compared_to_fp32, run_variant, selection_set, train_pool  # noqa: E402

# name -> (SmoothQuant alpha or None, layers kept fp32 besides the output head); x86 engine, 8-bit activations
CONFIGS = {
    "no_smooth_keep_down_proj": (None, ("down_proj",)),  # the committed configuration
    **{f"smooth_{a}_keep_down_proj": (a, ("down_proj",)) for a in (0.5, 0.65, 0.8, 0.9)},
    **{f"smooth_{a}_quantize_all": (a, ()) for a in (0.5, 0.65, 0.8, 0.9)},
}


def calibration_set(data: Path, n: int, seed: int, min_words: int, exclude: list) -> list[str]:
    taken = {ex.fields["text"] for ex in exclude}
    pool = [ex.fields["text"] for ex in train_pool(data, min_words) if ex.fields["text"] not in taken]
    return random.Random(seed).sample(pool, n)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", required=True)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "SST-2"))
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-words", type=int, default=6)
    parser.add_argument("--calibration", type=int, default=64)
    parser.add_argument("--calibration-seed", type=int, default=1)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument(
        "--out", default=str(ROOT / "benchmarks" / "results" / "experiments" / "int8_smoothquant.json")
    )
    args = parser.parse_args()

    import torch

    from promptft.classifiers import load_classifier
    from promptft.deploy.onnx_export import merge_adapter
    from promptft.deploy.quantize import cpu_has_vnni, quantize_torch_int8

    threads = int(os.environ.get("OMP_NUM_THREADS", "0")) or os.cpu_count()
    torch.set_num_threads(threads)
    started = time.time()
    data = Path(args.data)
    examples = selection_set(data, args.n, args.seed, args.min_words)
    calibration = calibration_set(data, args.calibration, args.calibration_seed, args.min_words, examples)
    run = Path(args.run)
    fp32 = load_classifier(run / "best" if (run / "best").is_dir() else run, device="cpu")
    merge_adapter(fp32)
    encoded = fp32.encode(examples)
    ref = run_variant(fp32, encoded, examples)
    rows = [
        {
            "config": "fp32",
            "agreement_with_fp32": 1.0,
            "accuracy": round(100 * ref["accuracy"], 2),
            "max_abs_prob_change": 0.0,
            "cpu_ms_per_example": round(ref["cpu_ms"], 1),
        }
    ]
    print(json.dumps(rows[-1]), flush=True)
    for name in args.configs:
        alpha, keep = CONFIGS[name]
        clf = copy.deepcopy(fp32)
        smooth = {} if alpha is None else {"smooth": alpha, "calibration": calibration}
        quantize_torch_int8(clf, engine="x86", reduce_range=False, keep=keep, **smooth)
        out = run_variant(clf, encoded, examples)
        quantization = clf.quantization
        del clf
        rows.append(
            {
                "config": name,
                "alpha": alpha,
                "keep_fp32": list(keep),
                "quantization": quantization,
                **compared_to_fp32(out, ref),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    chosen = max(rows[1:], key=lambda r: (r["agreement_with_fp32"], r["accuracy"], -r["cpu_ms_per_example"]))
    result = {
        "command": "OMP_NUM_THREADS={} PYTHONPATH=src python {}".format(
            os.environ.get("OMP_NUM_THREADS", ""),
            shlex.join(["benchmarks/int8_smoothquant.py", *sys.argv[1:]]),
        ),
        "run": str(run),
        "selection_set": f"{len(examples)} SST-2 train.tsv sentences of >= {args.min_words} words, in no "
        f"16-shot train/dev file, random sample (seed {args.seed}); int8_select.py's set; the test set is not used",
        "calibration_set": f"{len(calibration)} other such train.tsv sentences (seed {args.calibration_seed}), "
        "disjoint from the selection set: SmoothQuant's activation maxima",
        "criterion": "highest agreement with the fp32 predictions, then accuracy, then CPU time",
        "chosen": chosen["config"],
        "cpu_has_vnni": cpu_has_vnni(),
        "threads": threads,
        "torch": torch.__version__,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "seconds": round(time.time() - started, 1),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "note": "cpu_ms_per_example: the process's own CPU time (time.process_time) for one batch-32 pass on "
        "a shared machine; wall-clock speed is measured by benchmarks/production.py",
        "rows": rows,
    }
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"chosen": chosen}, indent=2))


if __name__ == "__main__":
    main()
