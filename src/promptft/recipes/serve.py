"""The serve recipe: load a classifier (a run, its best/, or an ONNX export) and serve it over HTTP.

from promptft.recipes.serve import build_app, serve
app = build_app("runs/sst2")             # a FastAPI app (e.g. for your own ASGI server or tests)
serve("exports/sst2-onnx", port=8000)    # blocks; Ctrl-C / SIGTERM finish in-flight requests first
"""

from __future__ import annotations

import logging
from pathlib import Path

from promptft.deploy.serve import ServeSettings, create_app
from promptft.errors import PromptFTError

log = logging.getLogger(__name__)


def load_for_serving(model: str | Path, *, device: str | None = None, int8: bool = False):
    """The classifier behind `model` (a run, its best/, an ONNX folder or .onnx file), checked first."""
    from promptft.deploy.onnx_runtime import OnnxClassifier, is_onnx
    from promptft.recipes.evaluate import load
    from promptft.recipes.run_dir import classifier_dir

    if is_onnx(model):
        if int8:
            raise PromptFTError(
                "--int8 quantizes a PyTorch model at load time; an ONNX export is quantized when exported: "
                "use `promptft export RUN --onnx DIR --int8` and serve DIR"
            )
        return OnnxClassifier(model)
    folder = classifier_dir(model)
    if int8:
        from promptft.deploy.quantize import quantize_torch_int8

        clf = load(folder, device or "cpu")
        return quantize_torch_int8(clf)
    return load(folder, device)


def build_app(
    model: str | Path, *, settings: ServeSettings | None = None, device: str | None = None, int8: bool = False
):
    clf = load_for_serving(model, device=device, int8=int8)
    return create_app(clf, source=str(model), settings=settings)


def serve(
    model: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: ServeSettings | None = None,
    device: str | None = None,
    int8: bool = False,
    graceful_timeout_s: int = 30,
    log_level: str = "info",
) -> None:
    """Serve until interrupted. On Ctrl-C / SIGTERM uvicorn stops accepting connections, lets the requests
    in flight finish (up to `graceful_timeout_s`), then the batcher finishes anything queued."""
    import uvicorn

    app = build_app(model, settings=settings, device=device, int8=int8)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=graceful_timeout_s,
        access_log=False,
    )
