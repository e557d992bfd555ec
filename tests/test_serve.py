"""The HTTP service on a tiny Llama: /predict, /health, /info, 4xx for bad input, dynamic batching of
concurrent requests, a clean shutdown that finishes requests in flight, and schemathesis finding no 5xx."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import numpy as np
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from promptft import PromptClassifier
from promptft.deploy.batching import DynamicBatcher, QueueFull
from promptft.deploy.serve import ServeSettings, create_app
from promptft.models import backbone_from_model
from promptft.objectives import MultiLabel, Regression
from tiny import tiny_llama

WORDS = {"negative": "terrible", "positive": "great"}
LIMITS = ServeSettings(max_texts=8, max_text_chars=200, max_body_bytes=4000, max_batch=8, max_wait_ms=5)


def tiny_clf(template="{text} It was {mask}.", words=WORDS, **kw):
    model, tok = tiny_llama()
    return PromptClassifier(backbone_from_model(model, tok), template, words, max_length=64, **kw)


CLF = tiny_clf()
APP = create_app(CLF, source="tiny-llama", settings=LIMITS)


@pytest.fixture(scope="module")
def client():
    with TestClient(APP) as c:
        yield c


def test_predict_returns_labels_and_probabilities_in_order(client):
    texts = ["I loved it", "I hated it", "a wonderful film"]
    response = client.post("/predict", json={"texts": texts})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = CLF.predict_proba(texts)
    assert [p["label"] for p in body["predictions"]] == CLF.predict(texts)
    got = np.array([[p["probabilities"][lab] for lab in CLF.labels] for p in body["predictions"]])
    assert np.abs(got - expected).max() < 1e-5
    # a dict with the prompt's field works as well as a string
    same = client.post("/predict", json={"texts": [{"text": "I loved it"}]}).json()
    assert same["predictions"][0] == body["predictions"][0]


def test_health_and_info(client):
    assert client.get("/health").json() == {"status": "ok"}
    info = client.get("/info").json()
    assert info["labels"] == ["negative", "positive"]
    assert info["prompt"] == {
        "template": "{text} It was {mask}.",
        "label_words": {"negative": ["terrible"], "positive": ["great"]},
    }
    assert info["model"]["runtime"] == "pytorch" and info["model"]["source"] == "tiny-llama"
    assert info["task"]["name"] == "single_label" and info["version"]
    assert info["limits"]["max_texts"] == 8


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"texts": []}, 422, "at least 1 item"),
        ({"texts": ["a"] * 9}, 422, "at most 8 items"),
        ({"texts": ["x" * 201]}, 422, "at most 200 characters"),
        ({"texts": [{"review": "good"}]}, 422, "Field required"),
        ({"texts": [3]}, 422, "valid string"),
        ({"text": ["good"]}, 422, "texts: Field required"),
        ({"texts": ["ok"], "extra": 1}, 422, "Extra inputs are not permitted"),
        ("not json", 422, "JSON decode error"),
        ({"texts": ["y" * 190] * 8 * 3}, 413, "more than the limit of 4000"),
    ],
)
def test_bad_requests_get_a_clear_4xx(client, body, status, fragment):
    if isinstance(body, str):
        response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    else:
        response = client.post("/predict", json=body)
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert fragment in message, message
    if status == 422:
        assert '{"texts": [' in message  # says what a valid request looks like


def test_wrong_method_and_path(client):
    assert client.get("/predict").status_code == 405
    assert client.get("/nope").status_code == 404


def test_openapi_schema_names_the_limits(client):
    schema = client.get("/openapi.json").json()
    assert {"/predict", "/health", "/info"} <= set(schema["paths"])
    body = schema["components"]["schemas"]["PredictRequest"]["properties"]["texts"]
    assert body["maxItems"] == 8 and body["minItems"] == 1


def test_multi_label_and_regression_outputs():
    labels = ["negative", "positive"]
    multi = tiny_clf(objective=MultiLabel(labels, thresholds=[0.0, 1.0]))  # always negative, never positive
    with TestClient(create_app(multi)) as c:
        prediction = c.post("/predict", json={"texts": ["good"]}).json()["predictions"][0]
    assert prediction["labels"] == ["negative"] and set(prediction["probabilities"]) == set(labels)
    regression = tiny_clf(objective=Regression(labels, value_range=(0, 5)))
    with TestClient(create_app(regression)) as c:
        prediction = c.post("/predict", json={"texts": ["good"]}).json()["predictions"][0]
    assert set(prediction) == {"value"} and 0 <= prediction["value"] <= 5
    assert abs(prediction["value"] - regression.predict(["good"])[0]) < 1e-5


def test_two_field_prompts_take_objects():
    clf = tiny_clf("{premise} ? {mask} , {hypothesis}", {"yes": "great", "no": "terrible"})
    with TestClient(create_app(clf)) as c:
        ok = c.post("/predict", json={"texts": [{"premise": "it rains", "hypothesis": "it is wet"}]})
        assert ok.status_code == 200 and ok.json()["predictions"][0]["label"] in ("yes", "no")
        bad = c.post("/predict", json={"texts": ["just a string"]})
        assert bad.status_code == 422 and "premise" in bad.json()["error"]


# ----- dynamic batching


def test_concurrent_requests_are_batched_and_answered_in_order():
    calls: list[list[int]] = []

    def run(items):
        calls.append(list(items))
        time.sleep(0.01)
        return [x * 10 for x in items]

    async def main():
        batcher = DynamicBatcher(run, max_batch=6, max_wait_ms=20)
        await batcher.start()
        requests = [[i, i + 100] for i in range(9)]
        results = await asyncio.gather(*(batcher.submit(r) for r in requests))
        await batcher.stop()
        return requests, results, batcher.stats

    requests, results, stats = asyncio.run(main())
    assert results == [[x * 10 for x in r] for r in requests]  # each request gets its own results
    assert max(len(c) for c in calls) <= 6  # never more than max_batch
    assert len(calls) < len(requests) and stats.largest == 6  # requests were gathered together
    assert [x for c in calls for x in c] == [x for r in requests for x in r]  # arrival order kept


def test_stop_finishes_queued_requests_and_full_queue_is_refused():
    def run(items):
        time.sleep(0.02)
        return items

    async def main():
        batcher = DynamicBatcher(run, max_batch=1, max_wait_ms=0, max_queue=3)
        await batcher.start()
        tasks = [asyncio.create_task(batcher.submit([i])) for i in range(3)]
        await asyncio.sleep(0)
        with pytest.raises(QueueFull):
            await batcher.submit([99])
        await batcher.stop()  # all three were queued: all three are answered
        return [t.result() for t in tasks]

    assert asyncio.run(main()) == [[0], [1], [2]]


def test_errors_reach_every_request_of_the_batch():
    def run(items):
        raise ValueError("boom")

    async def main():
        batcher = DynamicBatcher(run, max_batch=4, max_wait_ms=10)
        await batcher.start()
        results = await asyncio.gather(batcher.submit([1]), batcher.submit([2]), return_exceptions=True)
        await batcher.stop()
        return results

    assert all(isinstance(r, ValueError) for r in asyncio.run(main()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlowClassifier:
    """The tiny classifier with a pause in every forward, so a request is in flight when shutdown starts."""

    def __init__(self, clf, pause: float) -> None:
        self.clf, self.pause = clf, pause
        self.labels, self.fields, self.objective = clf.labels, clf.fields, clf.objective

    def _logits(self, examples, batch_size):
        time.sleep(self.pause)
        return self.clf._logits(examples, batch_size)


def test_shutdown_finishes_requests_in_flight():
    import uvicorn

    port = free_port()
    app = create_app(SlowClassifier(CLF, pause=1.0), source="slow")
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=10)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    result: dict = {}

    def call():
        result["response"] = httpx.post(url + "/predict", json={"texts": ["I loved it"]}, timeout=20)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.3)  # the request is being computed
    server.should_exit = True  # what SIGINT / SIGTERM do
    caller.join(20)
    thread.join(20)
    assert not thread.is_alive()
    response = result["response"]
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["label"] == CLF.predict(["I loved it"])[0]


# ----- schemathesis: generated requests (valid and invalid) never get a 5xx


def test_schemathesis_finds_no_server_error(client):
    """Valid and invalid requests generated from the OpenAPI schema (bounded): none gets a 5xx, and the
    invalid ones get a 4xx."""
    from hypothesis import given
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())  # the app's own schema
    statuses: dict[tuple[str, int], int] = {}

    def check(operation, mode):
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case):
            kwargs = case.as_transport_kwargs(base_url="http://testserver")
            kwargs = {k: v for k, v in kwargs.items() if k in TRANSPORT_KEYS}
            response = client.request(**kwargs)
            key = (mode.value, response.status_code)
            statuses[key] = statuses.get(key, 0) + 1
            assert response.status_code < 500, (kwargs, response.text[:300])

        try:
            call()
        except Unsatisfiable:  # nothing to get wrong in a GET without parameters (/health, /info)
            assert mode == GenerationMode.NEGATIVE

    for result in schema.get_all_operations():
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            check(result.ok(), mode)
    assert any(mode == "positive" and code == 200 for mode, code in statuses), statuses
    assert any(mode == "negative" and 400 <= code < 500 for mode, code in statuses), statuses


TRANSPORT_KEYS = ("method", "url", "headers", "params", "json", "content", "data", "cookies", "files")


def test_cli_serve_checks_the_model_before_starting(tmp_path):
    from typer.testing import CliRunner

    from promptft.cli import app

    result = CliRunner().invoke(app, ["serve", str(tmp_path / "missing"), "--port", "8123"])
    assert result.exit_code == 2 and "no such folder" in result.stderr
    assert "Traceback" not in result.output


def test_cli_serve_int8_calibration_needs_int8(tmp_path):
    from typer.testing import CliRunner

    from promptft.cli import app

    tiny_clf().save_pretrained(tmp_path / "clf")
    (tmp_path / "calibration.txt").write_text("a fine film\n")
    args = ["serve", str(tmp_path / "clf"), "--int8-calibration", str(tmp_path / "calibration.txt")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "add --int8" in result.stderr
    assert "Traceback" not in result.output
