"""The page ``veille serve`` answers at ``/``: paste an article, « Extraire », see what the model finds.

It is the HTML view of ``veille predict --format html`` (:mod:`veille.annotation.view`, one
renderer for both) in its live mode: the browser posts the text to ``/v1/extract`` and draws
the result, with the model's name, version and default thresholds. Everything is inline in
the page, so it works on a machine with no internet.

``/v1/extract`` answers article-level offsets; to list relations under their sentence the page
also asks ``/v1/sentences`` for the splitter's sentence offsets. That call runs no model: the
request body limit bounds its work, so it has no count or length limit of its own.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from veille.annotation.schema import Schema
from veille.annotation.sentences import split_sentences
from veille.annotation.view import render_page, view_meta

from .pipeline import PredictOptions


class SentencesRequest(BaseModel):
    texts: list[str]


def add_page(app: FastAPI, schema: Schema, model: dict[str, str], options: PredictOptions) -> None:
    """Register ``GET /`` (the page, built once) and ``POST /v1/sentences``."""
    thresholds = {"relation_threshold": options.relation_threshold, "min_entity_score": options.min_entity_score}
    page = render_page(view_meta("live", schema, model, thresholds))

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    async def home() -> HTMLResponse:
        return HTMLResponse(page)

    @app.post("/v1/sentences", summary="Sentence offsets of texts, as veille splits them (code points, end exclusive)")
    def sentences(request: SentencesRequest) -> dict[str, Any]:  # sync: FastAPI runs it off the event loop
        return {"sentences": [[[s.start, s.end] for s in split_sentences(text)] for text in request.texts]}
