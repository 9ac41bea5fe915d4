"""The HTTP API, tested against a real ``veille serve`` process on 127.0.0.1."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from veille.annotation.labelstudio.results import results_to_example
from veille.annotation.schema import parse_schema

TEXTS = [
    "Arthur Mensch, cofondateur de Mistral AI, a annoncé une levée de 600 millions d'euros. La start-up rivalise avec OpenAI.",
    "Meta a investi 14,3 milliards de dollars dans Scale AI.",
]
LIMITS = ["--max-texts", "4", "--max-text-chars", "2000", "--max-request-bytes", "20000"]


@pytest.fixture(scope="module")
def server(tiny_trained_model, veille_serve) -> Iterator[str]:
    with veille_serve(tiny_trained_model, *LIMITS, "--max-wait-ms", "50") as (url, _):
        yield url


@pytest.fixture(scope="module")
def predictor(tiny_trained_model):
    from veille.models.predictor import Predictor

    return Predictor.load(tiny_trained_model, device="cpu")


def test_extract_returns_what_veille_predict_writes(server, predictor) -> None:
    from veille.annotation.articles import Article
    from veille.serving.pipeline import PredictOptions, predict_articles

    response = httpx.post(f"{server}/v1/extract", json={"articles": [{"id": "a", "text": TEXTS[0]}, {"id": "b", "text": TEXTS[1]}]}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": predictor.model_name, "version": predictor.model_version}
    local = [p.example.to_json() for p in predict_articles(predictor, [Article("a", TEXTS[0], "request:0"), Article("b", TEXTS[1], "request:1")], PredictOptions())]
    assert body["results"] == local
    texts = httpx.post(f"{server}/v1/extract", json={"texts": TEXTS}, timeout=30).json()["results"]
    assert [r["id"] for r in texts] == ["0", "1"] and [r["entities"] for r in texts] == [r["entities"] for r in local]


def test_request_thresholds(server) -> None:
    response = httpx.post(f"{server}/v1/extract", json={"texts": TEXTS, "min_entity_score": 1.0}, timeout=30)
    assert response.status_code == 200
    assert all(r["entities"] == [] and r["relations"] == [] for r in response.json()["results"])


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"texts": ["Meta."] * 5}, 422, "too many texts: 5 in one request, at most 4"),
        ({"texts": ["Meta. " * 400]}, 422, "texts[0] has 2400 characters, at most 2000"),
        ({"texts": ["x" * 1999] * 4 + ["y" * 19000]}, 413, "request body larger than 20000 bytes"),
        ({"texts": ["  "]}, 422, "texts[0] (id '0') is empty"),
        ({"articles": [{"id": "a", "text": "Meta."}, {"id": "b", "text": " "}]}, 422, "articles[1] (id 'b') is empty"),
        ({"texts": ["a"], "articles": [{"id": "x", "text": "b"}]}, 422, "exactly one of 'texts'"),
        ({"texts": ["a"], "relation_threshold": 1.5}, 422, "less than or equal to 1"),
        ({"texts": ["a"], "relation_threshold": float("nan")}, 422, "finite number"),
        ({"texts": ["a"], "min_entity_score": float("inf")}, 422, "finite number"),
        ({"texts": ["Meta rachète \ud800 Scale AI."]}, 422, '"loc":["body","texts",0],"msg":"Value error, not valid Unicode: lone surrogate U+D800'),
        ({"articles": [{"id": "a\udfff", "text": "Meta."}]}, 422, '"loc":["body","articles",0,"id"]'),
    ],
)
def test_limits_and_bad_requests_get_clear_4xx(server, body, status, message) -> None:
    """Sent as ASCII JSON, as a client would write NaN or a lone surrogate (``\\ud800``); the error body is JSON too."""
    response = httpx.post(f"{server}/v1/extract", content=json.dumps(body), headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code == status
    assert message in response.text
    assert response.json()


def test_streamed_body_over_the_limit_is_refused(server) -> None:
    """No Content-Length (chunked upload): the limit is enforced while reading."""
    chunks = (b'{"texts": ["' + b"x" * 1000 + b'"' for _ in range(30))
    response = httpx.post(f"{server}/v1/extract", content=chunks, headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code == 413


def test_health_info_and_openapi(server, predictor) -> None:
    assert httpx.get(f"{server}/v1/health").json()["status"] == "ok"
    info = httpx.get(f"{server}/v1/info").json()
    assert parse_schema(info["schema"]).same_labels(predictor.schema)
    assert info["limits"]["max_texts"] == 4 and info["defaults"]["relation_threshold"] is None  # each label's own threshold
    assert info["defaults"]["relation_thresholds"] == predictor.relation_thresholds
    paths = httpx.get(f"{server}/openapi.json").json()["paths"]
    assert {"/v1/extract", "/v1/health", "/v1/info", "/health", "/setup", "/predict", "/webhook"} <= set(paths)


def test_concurrent_requests_share_model_calls(server) -> None:
    before = httpx.get(f"{server}/v1/info").json()["batching"]
    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(lambda i: httpx.post(f"{server}/v1/extract", json={"texts": [f"{TEXTS[1]} ({i})"]}, timeout=60), range(12)))
    assert [r.status_code for r in responses] == [200] * 12
    assert [r.json()["results"][0]["text"] for r in responses] == [f"{TEXTS[1]} ({i})" for i in range(12)]
    after = httpx.get(f"{server}/v1/info").json()["batching"]
    assert after["requests"] - before["requests"] == 12
    assert after["model_calls"] - before["model_calls"] < 12


def test_a_poisoned_request_fails_alone_among_concurrent_ones(server) -> None:
    """8 concurrent requests batched together, one of them with a lone surrogate: it gets 422, the 7 others 200."""
    bodies = [{"texts": [f"{TEXTS[1]} ({i})"]} for i in range(8)]
    bodies[3] = {"texts": ["Meta \ud800 rachète Scale AI."]}
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda body: httpx.post(f"{server}/v1/extract", content=json.dumps(body), headers={"content-type": "application/json"}, timeout=60), bodies))
    assert [r.status_code for r in responses] == [200] * 3 + [422] + [200] * 4
    assert [r.json()["results"][0]["text"] for i, r in enumerate(responses) if i != 3] == [f"{TEXTS[1]} ({i})" for i in range(8) if i != 3]


def test_a_request_that_makes_the_model_fail_does_not_fail_the_others_of_its_call() -> None:
    """The batcher retries the rest of a failed call without the failing request (texts the door let in)."""
    import asyncio

    from veille.annotation.document import Example
    from veille.serving.batcher import MicroBatcher
    from veille.serving.pipeline import PredictOptions

    calls = []

    def run(texts: list[str], options: PredictOptions) -> list[Example]:
        calls.append(len(texts))
        if "poison" in texts:
            raise RuntimeError("the model failed on this text")
        return [Example(str(i), text) for i, text in enumerate(texts)]

    async def scenario() -> list:
        batcher = MicroBatcher(run, max_wait_s=0.2)
        batcher.start()
        try:
            texts = [[f"text {i}", f"more {i}"] for i in range(8)]
            texts[5] = ["poison"]
            return await asyncio.gather(*(batcher.predict(t, PredictOptions()) for t in texts), return_exceptions=True)
        finally:
            await batcher.stop()

    results = asyncio.run(scenario())
    assert isinstance(results[5], RuntimeError)
    assert [[e.text for e in r] for i, r in enumerate(results) if i != 5] == [[f"text {i}", f"more {i}"] for i in range(8) if i != 5]
    assert calls[0] == 15 and len(calls) == 1 + 8  # one shared call, then each request alone


def test_label_studio_ml_backend_protocol(server, predictor) -> None:
    """What Label Studio sends to an ML backend, and predictions it can display (spans, relations, scores, version)."""
    assert httpx.get(f"{server}/health").json()["status"] == "UP"
    setup = httpx.post(f"{server}/setup", json={"project": "1.1700000000", "schema": "<View/>", "hostname": "http://localhost:8080", "access_token": "x", "extra_params": None})
    assert setup.json()["model_version"] == predictor.model_version
    tasks = [{"id": 7, "data": {"text": TEXTS[0], "doc": "d"}, "project": 1}, {"id": 8, "data": {"text": ""}, "project": 1}]
    response = httpx.post(f"{server}/predict", json={"tasks": tasks, "project": "1.1700000000", "label_config": "<View/>", "params": {}}, timeout=30)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 2 and results[1]["result"] == []
    prediction = results[0]
    assert prediction["model_version"] == predictor.model_version
    extracted = httpx.post(f"{server}/v1/extract", json={"texts": [TEXTS[0]]}).json()["results"][0]
    back, issues = results_to_example(tasks[0]["data"] | {"example": "7"}, prediction["result"], predictor.schema)
    assert not [i for i in issues if i.dropped]
    assert [(e.start, e.end, e.label) for e in back.entities] == [(e["start"], e["end"], e["label"]) for e in extracted["entities"]]
    assert all("score" in r for r in prediction["result"])
    assert httpx.post(f"{server}/webhook", json={"action": "ANNOTATION_CREATED", "project": {}}).status_code == 200
    bad = httpx.post(f"{server}/predict", json={"tasks": [{"id": 1, "data": {"image": "x.png"}}]})
    assert bad.status_code == 422 and "data.text" in bad.text
    for data in ([1, 2], "text", None, {"text": 3}):
        bad = httpx.post(f"{server}/predict", json={"tasks": [{"id": 1, "data": data}]})
        assert bad.status_code == 422 and '"loc":["body","tasks",0,"data"' in bad.text
    long = httpx.post(f"{server}/predict", json={"tasks": [{"id": 1, "data": {"text": ""}}, {"id": 2, "data": {"text": "Meta. " * 400}}]})
    assert long.status_code == 422 and "tasks[1] has 2400 characters" in long.text  # the index counts empty tasks too


def test_graceful_shutdown_finishes_the_request_in_flight(tiny_trained_model, veille_serve) -> None:
    """SIGTERM while a request waits in the batcher: it is answered, then the server stops."""
    with veille_serve(tiny_trained_model, "--max-wait-ms", "1500") as (url, process):
        answer: dict = {}
        request = threading.Thread(target=lambda: answer.update(r=httpx.post(f"{url}/v1/extract", json={"texts": TEXTS}, timeout=60)))
        request.start()
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        request.join(timeout=60)
        process.wait(timeout=30)
        log = process.stdout.read()
    assert answer["r"].status_code == 200 and len(answer["r"].json()["results"]) == 2
    assert "Application shutdown complete" in log
    assert process.returncode in (0, -signal.SIGTERM)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_documentation_pages_load_everything_from_the_server(server, page) -> None:
    """/docs and /redoc must work with no internet: every asset they reference is served locally."""
    import re

    html = httpx.get(server + page).text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert assets and not [a for a in assets if re.match(r"(https?:)?//", a)], assets
    for asset in assets:
        response = httpx.get(server + asset)
        assert response.status_code == 200 and len(response.content) > 1000, asset
    assert "/openapi.json" in html
