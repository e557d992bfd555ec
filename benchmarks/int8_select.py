"""Choose the torch int8 configuration without the test set (issue 14): each variant (quantized engine,
7- or 8-bit activations, layers kept fp32) against the fp32 prompt model on SST-2 *train* sentences that
are not in the few-shot split: agreement with fp32's predictions, accuracy, the largest change in a
probability, and the process's CPU time per example (one thread; robust to other jobs on the machine).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/int8_select.py --run /work/runs-prod/demo-bench

-> benchmarks/results/int8_select.json. The chosen variant is the one with the highest agreement (ties:
accuracy, then CPU time); its test accuracy is measured once, by benchmarks/production.py.
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

from promptft.data import read_examples  # noqa: E402
from promptft.demo import LABEL_MAP  # noqa: E402

# name -> keyword arguments of quantize_torch_int8 (keep: layers kept fp32 besides the output head)
VARIANTS = {
    "x86_7bit": {"engine": "x86", "reduce_range": True},  # the committed configuration (torch's stock module)
    "fbgemm_7bit": {"engine": "fbgemm", "reduce_range": True},
    "onednn_7bit": {"engine": "onednn", "reduce_range": True},
    "qnnpack_7bit": {"engine": "qnnpack", "reduce_range": True},
    "x86_8bit": {"engine": "x86", "reduce_range": False},
    "fbgemm_8bit": {"engine": "fbgemm", "reduce_range": False},
    "onednn_8bit": {"engine": "onednn", "reduce_range": False},
    "x86_8bit_quantize_down_proj": {"engine": "x86", "reduce_range": False, "keep": ()},
    "x86_7bit_keep_o_proj": {"engine": "x86", "reduce_range": True, "keep": ("down_proj", "o_proj")},
    "x86_7bit_keep_first_last_layers": {
        "engine": "x86",
        "reduce_range": True,
        "keep": ("down_proj", "layers.0.", "layers.29."),
    },
}


def selection_set(data: Path, n: int, seed: int, min_words: int) -> list:
    """`n` train.tsv sentences (at least `min_words` words: SST-2's train file also holds short phrases)
    that are in neither the 16-shot train nor dev file of any seed."""
    return random.Random(seed).sample(train_pool(data, min_words), n)


def train_pool(data: Path, min_words: int) -> list:
    """train.tsv sentences of at least `min_words` words in no 16-shot train or dev file (file order)."""
    few_shot = set()
    for folder in (data / "k-shot").glob("16-*"):
        for split in ("train.tsv", "dev.tsv"):
            few_shot.update(ex.fields["text"] for ex in read_examples(folder / split, label_map=LABEL_MAP))
    return [
        ex
        for ex in read_examples(data / "train.tsv", label_map=LABEL_MAP)
        if ex.fields["text"] not in few_shot and len(ex.fields["text"].split()) >= min_words
    ]


def run_variant(clf, encoded, examples) -> dict:
    clf.logits_encoded(encoded[:8], batch_size=8)  # warm-up
    start = time.process_time()
    logits = clf.logits_encoded(encoded, batch_size=32)
    cpu = time.process_time() - start
    predictions = clf.objective.decode(logits)
    accuracy = sum(p == ex.label for p, ex in zip(predictions, examples, strict=True)) / len(examples)
    return {
        "logits": logits,
        "predictions": predictions,
        "accuracy": accuracy,
        "cpu_ms": 1000 * cpu / len(encoded),
    }


def compared_to_fp32(out: dict, ref: dict) -> dict:
    """A quantized variant's scores beside the fp32 reference's (both from run_variant)."""
    import torch

    agree = sum(a == b for a, b in zip(out["predictions"], ref["predictions"], strict=True))
    change = (torch.softmax(out["logits"], -1) - torch.softmax(ref["logits"], -1)).abs().max().item()
    return {
        "agreement_with_fp32": round(agree / len(ref["predictions"]), 4),
        "accuracy": round(100 * out["accuracy"], 2),
        "max_abs_prob_change": round(change, 4),
        "cpu_ms_per_example": round(out["cpu_ms"], 1),
        "cpu_speedup_vs_fp32": round(ref["cpu_ms"] / out["cpu_ms"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", required=True)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "SST-2"))
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-words", type=int, default=6)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "int8_select.json"))
    args = parser.parse_args()

    import torch

    from promptft.classifiers import load_classifier
    from promptft.deploy.onnx_export import merge_adapter
    from promptft.deploy.quantize import cpu_has_vnni, quantize_torch_int8

    threads = int(os.environ.get("OMP_NUM_THREADS", "0")) or os.cpu_count()
    torch.set_num_threads(threads)
    started = time.time()
    examples = selection_set(Path(args.data), args.n, args.seed, args.min_words)
    run = Path(args.run)
    fp32 = load_classifier(run / "best" if (run / "best").is_dir() else run, device="cpu")
    merge_adapter(fp32)
    encoded = fp32.encode(examples)
    ref = run_variant(fp32, encoded, examples)
    rows = [
        {
            "variant": "fp32",
            "agreement_with_fp32": 1.0,
            "accuracy": round(100 * ref["accuracy"], 2),
            "max_abs_prob_change": 0.0,
            "cpu_ms_per_example": round(ref["cpu_ms"], 1),
        }
    ]
    print(json.dumps(rows[-1]), flush=True)
    default_engine = torch.backends.quantized.engine
    for name in args.variants:
        kwargs = VARIANTS[name]
        clf = copy.deepcopy(fp32)
        try:
            quantize_torch_int8(clf, **kwargs)
            out = run_variant(clf, encoded, examples)
        except Exception as err:  # an engine this CPU or build cannot run: recorded, not fatal
            rows.append(
                {
                    "variant": name,
                    **{k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()},
                    "error": f"{type(err).__name__}: {str(err)[:300]}",
                }
            )
            print(json.dumps(rows[-1]), flush=True)
            continue
        finally:
            torch.backends.quantized.engine = default_engine
            del clf
        rows.append(
            {
                "variant": name,
                **{k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()},
                **compared_to_fp32(out, ref),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    ok = [r for r in rows[1:] if "error" not in r]
    chosen = max(ok, key=lambda r: (r["agreement_with_fp32"], r["accuracy"], -r["cpu_ms_per_example"]))
    result = {
        "command": "OMP_NUM_THREADS={} PYTHONPATH=src python {}".format(
            os.environ.get("OMP_NUM_THREADS", ""), shlex.join(["benchmarks/int8_select.py", *sys.argv[1:]])
        ),
        "run": str(run),
        "selection_set": f"{len(examples)} SST-2 train.tsv sentences of >= {args.min_words} words, in no "
        f"16-shot train/dev file, random sample (seed {args.seed}); the test set is not used",
        "criterion": "highest agreement with the fp32 predictions, then accuracy, then CPU time",
        "chosen": chosen["variant"],
        "cpu_has_vnni": cpu_has_vnni(),
        "threads": threads,
        "torch": torch.__version__,
        "supported_engines": list(torch.backends.quantized.supported_engines),
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "seconds": round(time.time() - started, 1),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "note": "cpu_ms_per_example: the process's own CPU time (time.process_time) for one batch-32 pass; "
        "the machine was shared, so wall-clock speeds are measured by benchmarks/production.py instead",
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"chosen": chosen}, indent=2))


if __name__ == "__main__":
    main()
