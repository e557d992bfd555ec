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


def read_calibration(path: str | Path) -> list[str]:
    """SmoothQuant's calibration inputs: a text file, one training input per line (blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise PromptFTError(
            f"calibration file {path} not found: give a text file with one training input a line"
        )
    texts = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise PromptFTError(f"calibration file {path} is empty: give a few dozen training inputs, one a line")
    return texts


def load_for_serving(
    model: str | Path,
    *,
    device: str | None = None,
    int8: bool = False,
    int8_calibration: str | Path | None = None,
):
    """The classifier behind `model` (a run, its best/, an ONNX folder or .onnx file), checked first.
    `int8_calibration`: a text file of training inputs (one a line) for SmoothQuant before torch int8."""
    from promptft.deploy.onnx_runtime import OnnxClassifier, is_onnx
    from promptft.recipes.evaluate import load
    from promptft.recipes.run_dir import classifier_dir

    if int8_calibration is not None and not int8:
        raise PromptFTError("--int8-calibration is for torch int8 quantization: add --int8")
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
        calibration = read_calibration(int8_calibration) if int8_calibration is not None else None
        return quantize_torch_int8(clf, calibration=calibration)
    return load(folder, device)


def build_app(
    model: str | Path,
    *,
    settings: ServeSettings | None = None,
    device: str | None = None,
    int8: bool = False,
    int8_calibration: str | Path | None = None,
):
    clf = load_for_serving(model, device=device, int8=int8, int8_calibration=int8_calibration)
    return create_app(clf, source=str(model), settings=settings)


def serve(
    model: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: ServeSettings | None = None,
    device: str | None = None,
    int8: bool = False,
    int8_calibration: str | Path | None = None,
    graceful_timeout_s: int = 30,
    log_level: str = "info",
) -> None:
    """Serve until interrupted. On Ctrl-C / SIGTERM uvicorn stops accepting connections, lets the requests
    in flight finish (up to `graceful_timeout_s`), then the batcher finishes anything queued."""
    import uvicorn

    app = build_app(model, settings=settings, device=device, int8=int8, int8_calibration=int8_calibration)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=graceful_timeout_s,
        access_log=False,
    )
