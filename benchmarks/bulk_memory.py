"""Bulk prediction memory (issue 14): peak RSS of `promptft predict` on growing prefixes of SST-2/train.tsv,
streamed (`--chunk-size`) and in memory, each size in a fresh process. Streamed, the peak should stay flat
as the file grows; in memory it grows with the rows held.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bulk_memory.py MODEL --sizes 1000 4000

MODEL: any saved classifier or ONNX export (the issue asks for the distilled student; without one at hand,
`--make-minilm DIR` saves the offline MiniLM-L6 with an untrained 2-label head: the student's architecture
and speed, meaningless labels).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PEAK = """
import resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
if done.returncode:
    sys.exit(done.stderr[-2000:])
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - start)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--chunk-size", type=int, default=512)
    parser.add_argument(
        "--in-memory-max",
        type=int,
        default=None,
        help="sizes above this run streamed only (an in-memory run of the whole file takes as long again)",
    )
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "SST-2" / "train.tsv"))
    parser.add_argument(
        "--make-minilm", action="store_true", help="first save MiniLM-L6 + an untrained head to MODEL"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bulk_memory.json"))
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    if args.make_minilm and not Path(args.model).exists():
        sys.path.insert(0, str(ROOT / "src"))
        from promptft import HeadClassifier

        HeadClassifier.from_model(
            "minilm-l6", ["negative", "positive"], device="cpu", seed=0
        ).save_pretrained(args.model)
    lines = Path(args.data).read_text(encoding="utf-8").splitlines()
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    # a size past the file's rows means the whole file
    args.sizes = [min(n, len(lines) - 1) for n in args.sizes]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            data = Path(tmp) / f"train_{n}.tsv"
            data.write_text("\n".join(lines[: n + 1]) + "\n", encoding="utf-8")
            modes = ["streamed"]
            if args.in_memory_max is None or n <= args.in_memory_max:
                modes.append("in_memory")
            for mode in modes:
                out = Path(tmp) / f"pred_{n}_{mode}.jsonl"
                command = [
                    sys.executable,
                    "-m",
                    "promptft",
                    "predict",
                    args.model,
                    "-i",
                    str(data),
                    "-o",
                    str(out),
                ]
                if mode == "streamed":
                    command += ["--chunk-size", str(args.chunk_size)]
                done = subprocess.run(
                    [sys.executable, "-c", PEAK, *command],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                peak_kb, seconds = done.stdout.split()
                written = sum(1 for _ in out.open())
                rows.append(
                    {
                        "rows": n,
                        "mode": mode,
                        "peak_rss_mb": round(int(peak_kb) / 1024, 1),
                        "seconds": round(float(seconds), 1),
                        "rows_per_s": round(n / float(seconds), 1),
                        "written": written,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    result = {
        "model": args.model,
        "minilm_untrained_head": args.make_minilm,
        "chunk_size": args.chunk_size,
        "rows": rows,
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "uptime_before": uptime_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "command": "OMP_NUM_THREADS={} PYTHONPATH=src python {}".format(
            os.environ.get("OMP_NUM_THREADS", ""), shlex.join(["benchmarks/bulk_memory.py", *sys.argv[1:]])
        ),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "note": "seconds include process start and model load; peak RSS of the predict process (its largest child)",
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
