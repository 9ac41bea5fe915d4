"""An HTML view of annotated documents (predictions, or gold against predictions) for people to read.

veille's outputs are JSON; analysts and annotators would rather look. This module builds
one self-contained page (inline CSS and JavaScript, no network, works from ``file://``)
that the three places showing documents share: ``veille predict --format html``, the page
``veille serve`` answers at ``/``, and the ``errors.html`` of ``veille evaluate``. The
browser draws the documents with ``assets/view.js`` from JSON data blocks, so one renderer
serves a prediction file and the live result of ``/v1/extract`` alike.

Article text is data, never markup: it reaches the page only inside JSON (with ``<``
escaped, so no ``</script>`` can close the block) and the renderer only sets text, never
HTML. The page's Content-Security-Policy lets only its own style and script run (by hash)
and lets it connect only to its own origin, so even a missed escape could not load or
send anything elsewhere.

Offsets are code points, as in every veille file; the renderer slices the text by code
point (not by JavaScript's UTF-16 units), so an emoji does not shift the spans after it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Hashable, Iterator
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import IO, Any

from .atomic import atomic_open
from .document import Example
from .schema import Schema
from .scoring import entity_keys, relation_keys

PAGE_SIZE = {"predictions": 20, "live": 20, "errors": 50}  # documents per page section: the DOM holds one page


@cache
def _asset(name: str) -> str:
    return (files("veille.annotation") / "assets" / name).read_text(encoding="utf-8")


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode("ascii") + "'"


def _script_json(value: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: ``<`` escaped, so text can never end the block."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def view_meta(mode: str, schema: Schema, model: dict[str, str], thresholds: dict[str, float] | None = None) -> dict[str, Any]:
    """What the renderer needs besides the documents: ``mode`` is predictions, live (the served page) or errors."""
    titles = {"predictions": "prédictions", "live": "extraction", "errors": "erreurs"}
    name = " ".join(filter(None, (model.get("name"), model.get("version"))))
    return {
        "mode": mode,
        "title": f"veille · {titles[mode]}" + (f" · {name}" if name else ""),
        "model": model,
        "thresholds": thresholds,
        "schema": schema.to_dict(),
        "page_size": PAGE_SIZE[mode],
    }


class PageWriter:
    """Writes one page to ``handle`` with the documents streamed in one at a time.

    The page skeleton is static and the metadata (model, title) comes last, so a run of
    any size is written as it is predicted, holding one document at a time; the browser
    counts the labels for the summary.
    """

    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle
        self.separator = ""
        css, js = _asset("view.css"), _asset("view.js")
        self.script = js
        policy = f"default-src 'none'; style-src {_csp_hash(css)}; script-src {_csp_hash(js)}; connect-src 'self'; img-src data:"
        handle.write(
            "<!doctype html>\n<html lang=\"fr\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{policy}\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<link rel=\"icon\" href=\"data:,\">\n<title>veille</title>\n"
            f"<style>{css}</style>\n</head>\n<body>\n{_asset('view.html')}\n"
            "<script type=\"application/json\" id=\"veille-docs\">["
        )

    def add(self, doc: dict[str, Any]) -> None:
        self.handle.write(self.separator + "\n" + _script_json(doc))
        self.separator = ","

    def finish(self, meta: dict[str, Any]) -> None:
        self.handle.write(
            f"\n]</script>\n<script type=\"application/json\" id=\"veille-meta\">{_script_json(meta)}</script>\n"
            f"<script>{self.script}</script>\n</body>\n</html>\n"
        )
        self.handle.flush()


def render_page(meta: dict[str, Any]) -> str:
    """A page with no documents yet: the served page, whose documents come from ``/v1/extract``."""
    out = io.StringIO()
    PageWriter(out).finish(meta)
    return out.getvalue()


def error_docs(gold: list[Example], predicted: list[Example], schema: Schema) -> Iterator[dict[str, Any]]:
    """One document per gold sentence, each entity and relation marked ``ok``, ``missed`` or ``spurious``.

    Items are compared as the evaluation scorer compares them (:mod:`.scoring`), so the
    marks add up to its false negatives and false positives.
    """
    by_id = {example.id: example for example in predicted}
    for example in gold:
        prediction = by_id.get(example.id, Example(example.id, example.text))
        gold_side = _marked(example, prediction, schema, "missed")
        pred_side = _marked(prediction, example, schema, "spurious")
        yield {
            "id": example.id,
            "text": example.text,
            "sentences": [[0, len(example.text)]],
            **pred_side,
            "gold": gold_side,
            "meta": example.meta,
        }


def _marked(example: Example, other: Example, schema: Schema, absent: str) -> dict[str, list[dict[str, Any]]]:
    """``example``'s items as JSON, each with ``status``: ``absent`` when ``other`` lacks it, else ``ok``."""

    def mark(items: list[dict[str, Any]], keys: list[Hashable], other_keys: list[Hashable]) -> list[dict[str, Any]]:
        present = set(other_keys)
        return [{**item, "status": "ok" if key in present else absent} for item, key in zip(items, keys, strict=True)]

    return {
        "entities": mark([e.to_json(example.text) for e in example.entities], entity_keys(example), entity_keys(other)),
        "relations": mark([r.to_json() for r in example.relations], relation_keys(example, schema), relation_keys(other, schema)),
    }


def write_errors_view(path: Path, gold: list[Example], predicted: list[Example], schema: Schema, model: dict[str, str]) -> None:
    """``errors.html`` of ``veille evaluate``: gold and prediction side by side, written atomically."""
    with atomic_open(path) as handle:
        page = PageWriter(handle)
        for doc in error_docs(gold, predicted, schema):
            page.add(doc)
        page.finish(view_meta("errors", schema, model))
