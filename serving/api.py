"""The HTTP API of ``veille serve``: veille's own JSON API and the Label Studio ML backend protocol.

veille's API (documented by the OpenAPI schema at ``/openapi.json``, browsable at ``/docs``):

- ``POST /v1/extract`` ``{"texts": [...]}`` or ``{"articles": [{"id", "text"}]}`` → one
  result per article, the same JSON as a line of ``veille predict``;
- ``GET /v1/health`` and ``GET /v1/info`` (model, schema, limits, batching counters);
- ``GET /``: a page to paste an article and see the extraction (:mod:`.page`).

Label Studio ML backend (connect the URL in a project's *Model* settings):
``GET /health``, ``POST /setup`` (answers the model version) and ``POST /predict`` (one
prediction per task, in Label Studio's result format with scores and model version).

Requests are limited in bytes (413) and in number and length of texts (422), with
messages that say the limit; concurrent requests share model batches (:mod:`.batcher`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from veille.annotation.articles import Article
from veille.annotation.labelstudio.results import TO_NAME, prediction_task
from veille.annotation.safejson import printable, text_problem
from veille.annotation.sentences import split_sentences

from .batcher import MicroBatcher
from .docs import add_offline_docs
from .limits import DEFAULT_LIMITS, ServeLimits
from .page import add_page
from .pipeline import ArticlePrediction, PredictOptions, SentencePredictor, assemble_article, predict_sentences


def _encodable(text: str) -> str:
    """Refuse a lone surrogate (``"\\ud800"`` in JSON) at the door: the tokenizer raises on it."""
    problem = text_problem(text)
    if problem:
        raise ValueError(problem)
    return text


Text = Annotated[str, AfterValidator(_encodable)]
Threshold = Annotated[float | None, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class ArticleIn(BaseModel):
    id: Annotated[Text, Field(min_length=1, max_length=512)]
    text: Text


class ExtractRequest(BaseModel):
    """Either ``texts`` (ids are their positions) or ``articles`` with ids; thresholds optional."""

    texts: list[Text] | None = None
    articles: list[ArticleIn] | None = None
    relation_threshold: Threshold = None
    min_entity_score: Threshold = None

    @model_validator(mode="after")
    def _one_of(self) -> ExtractRequest:
        if (self.texts is None) == (self.articles is None):
            raise ValueError("give exactly one of 'texts' (a list of strings) or 'articles' (a list of {id, text})")
        return self

    def to_articles(self) -> list[Article]:
        if self.texts is not None:
            return [Article(str(i), text, f"request:{i}") for i, text in enumerate(self.texts)]
        return [Article(a.id, a.text, f"request:{i}") for i, a in enumerate(self.articles or [])]


class ExtractResponse(BaseModel):
    model: dict[str, str]
    results: list[dict[str, Any]]


class LabelStudioTaskData(BaseModel):
    model_config = ConfigDict(extra="allow")

    text: Text | None = None  # None: checked by the endpoint, which names the task


class LabelStudioTask(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int | str | None = None
    data: LabelStudioTaskData


class LabelStudioPredictRequest(BaseModel):
    """What Label Studio posts to ``/predict`` (extra keys such as ``label_config`` are ignored)."""

    tasks: list[LabelStudioTask]


def create_app(predictor: SentencePredictor, options: PredictOptions = PredictOptions(), limits: ServeLimits = DEFAULT_LIMITS) -> FastAPI:
    """The FastAPI application serving ``predictor``; the batcher lives as long as the app."""
    batcher = MicroBatcher(
        lambda texts, opts: predict_sentences(predictor, texts, opts),
        max_sentences=limits.max_batch_sentences,
        max_wait_s=limits.max_wait_ms / 1000,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.stop()  # in-flight requests have finished; drain anything still queued

    app = FastAPI(
        title="veille",
        version=predictor.model_version,
        description="French entity and relation extraction from tech/AI business news.",
        lifespan=lifespan,
        docs_url=None,  # served from the package by add_offline_docs: no CDN
        redoc_url=None,
    )
    add_offline_docs(app)
    app.add_middleware(BodyLimit, limit=limits.max_request_bytes)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    model = {"name": predictor.model_name, "version": predictor.model_version}
    add_page(app, predictor.schema, model, options)

    async def extract_articles(articles: list[Article], request_options: PredictOptions) -> list[ArticlePrediction]:
        split = [split_sentences(article.text) for article in articles]
        examples = iter(await batcher.predict([s.text for sentences in split for s in sentences], request_options))
        return [assemble_article(a, sentences, [next(examples) for _ in sentences], model) for a, sentences in zip(articles, split)]

    @app.post("/v1/extract", response_model=ExtractResponse, summary="Extract entities and relations from articles")
    async def extract(request: ExtractRequest) -> dict[str, Any]:
        articles = request.to_articles()
        what = "texts" if request.texts is not None else "articles"
        for index, article in enumerate(articles):
            if not article.text.strip():
                raise HTTPException(422, f"{what}[{index}] (id {article.id!r}) is empty")
        _check_sizes([a.text for a in articles], limits.max_text_chars, what, max_count=limits.max_texts)
        request_options = PredictOptions(
            batch_size=options.batch_size,
            relation_threshold=_or(request.relation_threshold, options.relation_threshold),
            min_entity_score=_or(request.min_entity_score, options.min_entity_score),
        )
        predictions = await extract_articles(articles, request_options)
        return {"model": model, "results": [p.example.to_json() for p in predictions]}

    @app.get("/v1/health", summary="Liveness: the model is loaded and the batcher runs")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": model}

    @app.get("/v1/info", summary="The model, its schema, the default thresholds and the request limits")
    async def info() -> dict[str, Any]:
        return {
            "model": model,
            "device": str(predictor.device),
            "runtime": predictor.runtime,
            "dtype": predictor.dtype,
            "schema": predictor.schema.to_dict(),
            "defaults": {
                "relation_threshold": options.relation_threshold,
                "relation_thresholds": predictor.relation_thresholds,
                "min_entity_score": options.min_entity_score,
                "batch_size": options.batch_size,
            },
            "limits": asdict(limits),
            "batching": asdict(batcher.stats),
        }

    @app.get("/health", summary="Label Studio ML backend: health check")
    async def ls_health() -> dict[str, Any]:
        return {"status": "UP", "model_class": "veille", "model_version": predictor.model_version}

    @app.post("/setup", summary="Label Studio ML backend: project setup (answers the model version)")
    async def ls_setup() -> dict[str, Any]:
        return {"model_version": predictor.model_version}

    @app.post("/webhook", summary="Label Studio ML backend: project events (acknowledged; veille does not train from them)")
    async def ls_webhook() -> dict[str, Any]:
        return {"status": "ok"}

    @app.post("/predict", summary="Label Studio ML backend: pre-annotations for tasks")
    async def ls_predict(request: LabelStudioPredictRequest) -> dict[str, Any]:
        texts = []
        for index, task in enumerate(request.tasks):
            if task.data.text is None:
                raise HTTPException(422, f"tasks[{index}].data.{TO_NAME}: missing or not a string (the labelling config must show $text)")
            texts.append(task.data.text)
        _check_sizes(texts, limits.max_text_chars, "tasks", max_count=None)  # indices of all tasks, empty ones included
        ids = [str(i if task.id is None else task.id) for i, task in enumerate(request.tasks)]
        articles = [Article(task_id, text, f"task:{task_id}") for task_id, text in zip(ids, texts)]
        predicted = iter(await extract_articles([a for a in articles if a.text.strip()], options))
        results = []
        for article in articles:
            if not article.text.strip():  # Label Studio wants one prediction per task, even an empty one
                results.append({"result": [], "score": 0.0, "model_version": predictor.model_version})
            else:
                results.append(prediction_task(next(predicted).example, predictor.schema, predictor.model_version)["predictions"][0])
        return {"results": results, "model_version": predictor.model_version}

    return app


async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
    """422 listing each error's location, message and type, without echoing the input back.

    FastAPI's own handler returns the offending input, and an input of ``NaN`` or with a
    lone surrogate cannot be written as JSON: the client got a 500 instead of the 422.
    """
    detail = [
        {"loc": [printable(part) if isinstance(part, str) else part for part in error["loc"]], "msg": printable(error["msg"]), "type": error["type"]}
        for error in exc.errors()
    ]
    return JSONResponse(status_code=422, content={"detail": detail})


def _or(value: float | None, default: float | None) -> float | None:
    return default if value is None else value


def _check_sizes(texts: list[str], max_chars: int, what: str, max_count: int | None) -> None:
    """Texts per request (``max_count``) and characters per text. Label Studio's tasks get no count
    limit (None), because it sends every selected task in one request and cannot split on a 422."""
    if max_count is not None and len(texts) > max_count:
        raise HTTPException(422, f"too many {what}: {len(texts)} in one request, at most {max_count}; split the batch")
    for index, text in enumerate(texts):
        if len(text) > max_chars:
            raise HTTPException(422, f"{what}[{index}] has {len(text)} characters, at most {max_chars}; split the article")


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, whether declared (Content-Length) or streamed.

    The body is read up to the limit before the app sees it (FastAPI would turn an error
    raised while it reads the body into a vague 400), then replayed to the app.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(send)
                return
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        buffered = iter(messages)

        async def replay() -> dict:
            return next(buffered, None) or await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps({"detail": f"request body larger than {self.limit} bytes; send fewer or shorter texts"}).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
