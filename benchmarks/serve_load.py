"""Serving load test (issue 14): start `promptft serve MODEL` as its own process, run N concurrent clients
on loopback for S seconds (each sends one SST-2 test sentence per request and waits for the answer), then a
bounded schemathesis run against the live OpenAPI schema, then SIGTERM and a check that the server exits
cleanly. Writes benchmarks/results/serve_load.json.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/serve_load.py runs/exports/sst2-int8.onnx
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sentences(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[0] for line in lines if line.strip()]


async def client(url: str, texts: list[str], until: float, seed: int, out: list, errors: list) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(timeout=60) as http:
        while time.perf_counter() < until:
            text = rng.choice(texts)
            start = time.perf_counter()
            try:
                response = await http.post(url + "/predict", json={"texts": [text]})
                ok = response.status_code == 200 and len(response.json()["predictions"]) == 1
            except (httpx.HTTPError, ValueError, KeyError) as err:
                ok, response = False, err
            elapsed = time.perf_counter() - start
            if ok:
                out.append(elapsed)
            else:
                errors.append(str(getattr(response, "status_code", response))[:200])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def schemathesis_5xx(url: str, max_examples: int) -> dict:
    """Generated requests (valid and invalid) against the live schema; counts responses >= 500."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    counts = {"requests": 0, "5xx": 0, "statuses": {}}

    def check(operation, mode):
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def run(case):
            response = case.call(base_url=url)
            counts["requests"] += 1
            key = f"{mode.value} {response.status_code}"
            counts["statuses"][key] = counts["statuses"].get(key, 0) + 1
            if response.status_code >= 500:
                counts["5xx"] += 1

        with contextlib.suppress(Unsatisfiable):  # a GET without parameters has no invalid form
            run()

    for result in schema.get_all_operations():
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            check(result.ok(), mode)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "SST-2" / "test.tsv"))
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5)
    parser.add_argument("--schemathesis-examples", type=int, default=50)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serve_load.json"))
    args = parser.parse_args()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "promptft", "serve", args.model, "--port", str(port)]
    command += ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        started = time.perf_counter()
        while True:
            if server.poll() is not None:
                raise SystemExit(f"the server exited: {server.stdout.read()[-3000:]}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.perf_counter() - started > 300:
                raise SystemExit("the server did not start within 300 s")
            time.sleep(0.5)
        startup_s = time.perf_counter() - started
        texts = sentences(Path(args.data))
        latencies: list[float] = []
        errors: list[str] = []
        load_before = os.getloadavg()

        async def run_all() -> float:
            start = time.perf_counter()
            until = start + args.seconds
            await asyncio.gather(
                *(client(url, texts, until, i, latencies, errors) for i in range(args.clients))
            )
            return time.perf_counter() - start

        wall = asyncio.run(run_all())
        info = httpx.get(url + "/info", timeout=10).json()
        st = schemathesis_5xx(url, args.schemathesis_examples)
        server.send_signal(signal.SIGTERM)
        exit_code = server.wait(timeout=60)
        server_log = server.stdout.read()
    finally:
        if server.poll() is None:
            server.kill()
    requests = len(latencies) + len(errors)
    result = {
        "clients": args.clients,
        "seconds": args.seconds,
        "requests": requests,
        "errors": len(errors),
        "p50_ms": round(1000 * percentile(latencies, 50), 1) if latencies else None,
        "p99_ms": round(1000 * percentile(latencies, 99), 1) if latencies else None,
        "throughput_rps": round(len(latencies) / wall, 2),
        "schemathesis_5xx": st["5xx"],
        "schemathesis_requests": st["requests"],
        "schemathesis_statuses": st["statuses"],
        "texts_per_request": 1,
        "wall_s": round(wall, 2),
        "error_samples": errors[:5],
        "server_batching": info.get("batching"),
        "server_model": info.get("model"),
        "server_exit_code_after_sigterm": exit_code,
        "server_shutdown_log": [
            line.strip()
            for line in server_log.splitlines()
            if "shutdown" in line.lower() or "finished server process" in line.lower()
        ],
        "shutdown_note": "uvicorn re-raises SIGTERM after its graceful shutdown, hence exit code -15; the log "
        "lines show the shutdown completed",
        "server_startup_s": round(startup_s, 1),
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "command": "OMP_NUM_THREADS={} PYTHONPATH=src python {}".format(
            os.environ.get("OMP_NUM_THREADS", ""), shlex.join(["benchmarks/serve_load.py", *sys.argv[1:]])
        ),
        "server_command": shlex.join(["promptft", *command[3:]]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
