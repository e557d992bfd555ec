"""`promptft export` and `promptft serve`: flags -> `promptft.recipes.export` / `.serve`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from promptft.cli.app import DeviceOpt, app


@app.command()
def export(
    model_dir: Annotated[Path, typer.Argument(help="A saved classifier (a run's best/ folder, or the run).")],
    onnx: Annotated[
        Path,
        typer.Option("--onnx", help="Folder to write: model.onnx, the prompt/labels JSON and the tokenizer."),
    ],
    int8: Annotated[
        bool, typer.Option("--int8", help="Quantize the weights to int8 (onnxruntime dynamic quantization).")
    ] = False,
    int4: Annotated[
        bool, typer.Option("--int4", help="Weight-only int4 (onnxruntime MatMulNBits, blocks of 32).")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing folder.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Export a classifier (prompt or head; LoRA is merged) to ONNX, checked against PyTorch on two sentences.

    The folder runs on its own: `promptft predict DIR ...`, `promptft eval DIR ...`, `promptft serve DIR`.

    Example:

        promptft export runs/sst2 --onnx exports/sst2.onnx --int8
    """
    from promptft.recipes.export import export as run_export

    summary = run_export(model_dir, onnx, int8=int8, int4=int4, overwrite=overwrite)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    diff = summary.get("max_abs_diff")
    check = f"; max |ONNX - PyTorch| = {diff:.2g}" if diff is not None else ""
    Console(stderr=True).print(
        f"wrote {summary['folder']} ({summary['size_mb']} MB, {summary['quantization'] or 'fp32'}) "
        f"in {summary['seconds']} s{check}",
        markup=False,
        highlight=False,
    )


@app.command()
def serve(
    model: Annotated[
        Path, typer.Argument(help="A run, its best/ folder, or an ONNX export (folder or model.onnx).")
    ],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="Port to listen on.")] = 8000,
    max_texts: Annotated[int, typer.Option("--max-texts", min=1, help="Most texts per request.")] = 64,
    max_text_chars: Annotated[
        int, typer.Option("--max-text-chars", min=1, help="Most characters per text.")
    ] = 4000,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", min=1, help="Largest request body (bytes).")
    ] = 1_000_000,
    max_batch: Annotated[
        int,
        typer.Option(
            "--max-batch", min=1, help="Most texts per forward (concurrent requests batch together)."
        ),
    ] = 32,
    max_wait_ms: Annotated[
        float, typer.Option("--max-wait-ms", min=0, help="How long a request waits for others to batch with.")
    ] = 5.0,
    int8: Annotated[
        bool, typer.Option("--int8", help="PyTorch models: int8 dynamic quantization at load (CPU).")
    ] = False,
    int8_calibration: Annotated[
        Path | None,
        typer.Option(
            "--int8-calibration",
            help="With --int8: a text file of a few dozen training inputs, one a line; SmoothQuant measures "
            "their activations and rescales the weights before quantizing (closer to fp32).",
        ),
    ] = None,
    device: DeviceOpt = None,
) -> None:
    """Serve a classifier over HTTP: POST /predict, GET /health, GET /info, OpenAPI at /docs.

    Ctrl-C or SIGTERM stops taking connections and finishes the requests in flight first.

    Example:

        promptft serve exports/sst2.onnx --port 8000
        curl -s localhost:8000/predict -H 'content-type: application/json' -d '{"texts": ["a great film"]}'
    """
    from promptft.deploy.serve import ServeSettings
    from promptft.recipes.serve import serve as run_serve

    settings = ServeSettings(
        max_texts=max_texts,
        max_text_chars=max_text_chars,
        max_body_bytes=max_body_bytes,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
    )
    run_serve(
        model,
        host=host,
        port=port,
        settings=settings,
        device=device,
        int8=int8,
        int8_calibration=int8_calibration,
    )
