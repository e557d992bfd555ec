"""The HTTP service behind `promptft serve`: FastAPI, one classifier (PyTorch or ONNX), dynamic batching.

Endpoints: `POST /predict` (a batch of texts -> a prediction each: the label and its probabilities;
multi-label, the label set and each label's probability; regression, the value), `GET /health`,
`GET /info` (model, prompt, labels, task, version, limits) and the OpenAPI schema at `/openapi.json`
(docs at `/docs`). Requests are validated by pydantic models: too many texts, a text too long, a field the
prompt does not have, or a body over the size limit is a 4xx with a message that says what to change.
Concurrent requests are batched together (`batching.DynamicBatcher`); shutting down (Ctrl-C, SIGTERM)
finishes the requests in flight before the process exits.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

from promptft.data import Example
from promptft.deploy.batching import DynamicBatcher, QueueFull, ShuttingDown
from promptft.errors import PromptFTError
from promptft.optional import require

if TYPE_CHECKING:  # fastapi is the optional [serve] group: imported when an app is built
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)


@dataclass
class ServeSettings:
    """Limits and batching of the service (each a `promptft serve` flag)."""

    max_texts: int = 64  # texts per request
    max_text_chars: int = (
        4000  # characters per text (longer prompts are truncated to max_length tokens anyway)
    )
    max_body_bytes: int = 1_000_000  # request body
    max_batch: int = 32  # texts per forward (whole requests are batched together up to this)
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for others
    max_queue: int = 256  # requests waiting; more get 503


class Prediction(BaseModel):
    """One text's prediction; which keys are set depends on the task type (see /info's `task`)."""

    label: str | None = Field(None, description="single-label: the predicted label")
    labels: list[str] | None = Field(None, description="multi-label: the predicted label set (may be empty)")
    value: float | None = Field(None, description="regression: the predicted value")
    probabilities: dict[str, float] | None = Field(
        None, description="label -> probability (single-label: they sum to 1; multi-label: one each)"
    )


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    model: str


class Health(BaseModel):
    status: str


class ErrorResponse(BaseModel):
    error: str
    detail: Any = None


def _predict_request_model(fields: tuple[str, ...], settings: ServeSettings) -> type[BaseModel]:
    """The /predict body, with the limits in its schema: `texts` is a list of strings (one-field prompts)
    or of objects mapping each of the prompt's fields to a string."""
    text = Annotated[str, StringConstraints(max_length=settings.max_text_chars)]
    record = create_model(
        "Record",
        __config__=ConfigDict(extra="forbid"),
        **{name: (text, Field(..., description=f"the {name!r} field")) for name in fields},
    )
    item = text | record if len(fields) == 1 else record
    description = (
        "texts to classify (strings), or objects with the prompt's fields"
        if len(fields) == 1
        else f"objects with the prompt's fields {list(fields)}"
    )
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        texts=(
            list[item],  # type: ignore[valid-type]
            Field(..., min_length=1, max_length=settings.max_texts, description=description),
        ),
    )


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def prediction_records(clf, examples: list[Example], batch_size: int) -> list[dict[str, Any]]:
    """What /predict returns for each example (one forward over all of them)."""
    logits = clf._logits(examples, batch_size)
    objective = clf.objective
    decoded = objective.decode(logits)
    if objective.name == "regression":
        return [{"value": _finite(float(v))} for v in decoded]
    scores = objective.scores(logits).numpy()
    out = []
    for pred, row in zip(decoded, scores, strict=True):
        probabilities = {label: round(float(p), 6) for label, p in zip(clf.labels, row, strict=True)}
        if objective.name == "multi_label":
            out.append({"labels": list(pred), "probabilities": probabilities})
        else:
            out.append({"label": pred, "probabilities": probabilities})
    return out


def model_info(clf, source: str) -> dict[str, Any]:
    from promptft.version import __version__

    info: dict[str, Any] = {
        "model": {
            "source": source,
            "base_model": getattr(clf, "base_model", ""),
            "runtime": "onnxruntime" if type(clf).__name__ == "OnnxClassifier" else "pytorch",
            "classifier": type(clf).__name__,
            "quantization": getattr(clf, "quantization", None)
            or (getattr(clf, "config", {}) or {}).get("quantization"),
        },
        "labels": list(clf.labels),
        "fields": list(clf.fields),
        "task": clf.objective.to_dict(),
        "version": __version__,
    }
    template = getattr(clf, "template", None)
    if template is not None:
        info["prompt"] = {"template": template.text}
        verbalizer = getattr(clf, "verbalizer", None)
        config = getattr(clf, "config", None)
        if verbalizer is not None:
            info["prompt"]["label_words"] = {k: list(v) for k, v in verbalizer.label_words.items()}
        elif config:
            info["prompt"]["label_words"] = config["verbalizer"]["label_words"]
    return info


def create_app(clf, *, source: str = "", settings: ServeSettings | None = None) -> FastAPI:
    """A FastAPI app serving `clf` (any promptft classifier, or an `OnnxClassifier`)."""
    require("fastapi", "serve", feature="promptft serve")
    from fastapi import FastAPI
    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import RequestValidationError

    settings = settings or ServeSettings()
    fields = tuple(clf.fields)
    predict_model = _predict_request_model(fields, settings)
    info = model_info(clf, source)
    info["limits"] = {
        k: getattr(settings, k) for k in ("max_texts", "max_text_chars", "max_body_bytes", "max_batch")
    }

    def run(examples: list[Example]) -> list[dict[str, Any]]:
        return prediction_records(clf, examples, settings.max_batch)

    batcher = DynamicBatcher(
        run, max_batch=settings.max_batch, max_wait_ms=settings.max_wait_ms, max_queue=settings.max_queue
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()  # uvicorn has let in-flight requests finish; anything queued runs too

    app = FastAPI(
        title="promptft",
        version=info["version"],
        description=f"Prompt-based classifier: {clf.describe() if hasattr(clf, 'describe') else source}",
        lifespan=lifespan,
        responses={
            413: {"model": ErrorResponse, "description": "request body too large"},
            422: {"model": ErrorResponse, "description": "invalid request"},
            503: {"model": ErrorResponse, "description": "overloaded or shutting down: retry later"},
        },
    )
    app.state.batcher = batcher
    app.state.settings = settings

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return _error(400, "the Content-Length header is not a number")
            if int(length) > settings.max_body_bytes:
                return _error(
                    413,
                    f"the request body has {int(length)} bytes, more than the limit of {settings.max_body_bytes}: "
                    "send fewer or shorter texts per request",
                )
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = jsonable_encoder(exc.errors())
        parts = []
        for err in errors[:5]:
            where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        hint = (
            '; send {"texts": ["first text", "second text"]}'
            if len(fields) == 1
            else f'; send {{"texts": [{{{", ".join(repr(f) + ": ..." for f in fields)}}}]}}'
        )
        return _error(422, "invalid request: " + "; ".join(parts) + hint, errors)

    async def predict(body) -> dict[str, Any]:
        examples = [
            Example({fields[0]: item}) if isinstance(item, str) else Example(dict(item.model_dump()))
            for item in body.texts  # type: ignore[attr-defined]
        ]
        try:
            records = await batcher.submit(examples)
        except QueueFull as err:
            return _error(503, f"the server is busy ({err}): retry shortly", headers={"Retry-After": "1"})
        except ShuttingDown:
            return _error(503, "the server is shutting down: retry on another instance")
        except PromptFTError as err:
            return _error(422, str(err))
        return {"predictions": records, "model": info["model"]["source"]}

    # The body's model is built at run time (the prompt's fields, the limits): annotate it as an object,
    # not a string (this module's annotations are strings, which FastAPI could not resolve).
    predict.__annotations__["body"] = predict_model
    app.post("/predict", response_model=PredictResponse, response_model_exclude_none=True)(predict)

    @app.get("/health", response_model=Health)
    async def health() -> dict[str, str]:
        if not batcher.running:
            return _error(503, "not ready: the batch worker is not running")  # type: ignore[return-value]
        return {"status": "ok"}

    @app.get("/info")
    async def get_info() -> dict[str, Any]:
        return {**info, "batching": batcher.stats.as_dict()}

    return app


def _error(
    status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    from fastapi.responses import JSONResponse

    body = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(status_code=status, content=body, headers=headers)
