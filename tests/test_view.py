"""The HTML view: ``veille predict --format html``, the page ``veille serve`` answers at ``/``, and
the ``errors.html`` of ``veille evaluate`` (annotation/view.py and its assets).

The data tests read the pages' JSON and policy; the ``browser`` tests open them in headless
Chromium (Playwright) on a tiny trained model and check what a person sees against the JSON.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from veille.annotation.document import Entity, Example, Relation
from veille.annotation.schema import load_schema
from veille.annotation.scoring import score_entities, score_relations
from veille.annotation.sentences import split_sentences
from veille.annotation.view import error_docs, write_errors_view
from veille.cli import app

ARTICLE = (
    "Alexandr Wang, PDG de Scale AI, rejoint Meta. Arthur Mensch, cofondateur de Mistral AI, a annoncé une levée de 600 millions d'euros.\n\n"
    "La start-up parisienne rivalise avec OpenAI. Meta investit 14,3 milliards de dollars dans Scale AI et prend 49 % du capital."
)
# Markup, entities, quotes and emoji that must all show as typed: article text is data.
HOSTILE = (
    'Titre <script>window.__pwned = 1; alert("script")</script> & <img src=x onerror="window.__pwned = 2"> '
    "« Mistral AI » l'a dit : \"d'accord\" &amp; &lt;b&gt; 🚀🇫🇷 Meta investit 14,3 milliards de dollars.\n\n"
    "<b>Arthur Mensch</b> rejoint OpenAI </textarea></script><!-- fin --> 😀 Scale AI prend 49 %."
)


def data_block(html: str, name: str) -> Any:
    """The JSON of one of the page's data blocks (``docs`` or ``meta``)."""
    match = re.search(rf'<script type="application/json" id="veille-{name}">(.*?)</script>', html, flags=re.S)
    assert match, name
    return json.loads(match.group(1))


# --- a real prediction run and a real evaluation, on the tiny trained model ---


@pytest.fixture(scope="module")
def run(tiny_trained_model, mini_gold, tmp_path_factory) -> tuple[list[dict[str, Any]], Path]:
    """``veille predict -f jsonl -f html`` over 29 articles (two page sections): the JSONL lines and the page."""
    folder = tmp_path_factory.mktemp("view-run")
    articles = [{"id": f"mini-{i:02d}", "text": json.loads(line)["text"]} for i, line in enumerate(mini_gold.read_text(encoding="utf-8").splitlines())]
    articles += [{"id": "article", "text": ARTICLE}, {"id": "hostile", "text": HOSTILE}, {"id": "court", "text": "Meta rachète Scale AI."}]
    source = folder / "articles.jsonl"
    source.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in articles), encoding="utf-8")
    out = folder / "preds.jsonl"
    args = ["predict", str(source), "--model", str(tiny_trained_model), "-o", str(out), "-f", "jsonl", "-f", "html", "--relation-threshold", "0.0", "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 29 and sum(len(line["entities"]) for line in lines) > 20 and sum(len(line["relations"]) for line in lines) > 10
    return lines, folder / "preds.html"


@pytest.fixture(scope="module")
def evaluation(tiny_trained_model, mini_gold, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("view-eval")
    args = ["evaluate", "--model", str(tiny_trained_model), "--data", str(mini_gold), "-o", str(out), "--device", "cpu", "--relation-threshold", "0.0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def server(tiny_trained_model, veille_serve) -> Iterator[str]:
    with veille_serve(tiny_trained_model, "--relation-threshold", "0.0") as (url, _):
        yield url


# --- the data in the pages ---


def test_html_format_holds_each_jsonl_line_and_its_sentences(run) -> None:
    lines, page = run
    html = page.read_text(encoding="utf-8")
    docs = data_block(html, "docs")
    assert [{k: v for k, v in doc.items() if k != "sentences"} for doc in docs] == lines
    for doc in docs:
        assert doc["sentences"] == [[s.start, s.end] for s in split_sentences(doc["text"])]
    meta = data_block(html, "meta")
    assert meta["mode"] == "predictions" and meta["schema"] == load_schema().to_dict()
    assert meta["model"] == {"name": lines[0]["meta"]["model"], "version": lines[0]["meta"]["model_version"]}


def test_article_text_cannot_close_its_data_block(run) -> None:
    html = run[1].read_text(encoding="utf-8")
    assert html.count("<script") == 3  # the two data blocks and the renderer, nothing from the articles
    assert "<script>window.__pwned" not in html and "\\u003cscript>window.__pwned" in html
    assert next(doc for doc in data_block(html, "docs") if doc["id"] == "hostile")["text"] == HOSTILE


def test_page_loads_nothing_and_runs_only_its_own_code(run) -> None:
    """The Content-Security-Policy allows exactly the page's inline style and script (by hash)."""
    html = run[1].read_text(encoding="utf-8")
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    style = re.search(r"<style>(.*?)</style>", html, flags=re.S).group(1)
    script = re.findall(r"<script>(.*?)</script>", html, flags=re.S)[-1]

    def digest(source: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"

    assert policy == f"default-src 'none'; style-src {digest(style)}; script-src {digest(script)}; connect-src 'self'; img-src data:"
    assert re.findall(r"\b(?:src|href)=\"[^\"]*\"", html) == ['href="data:,"']


def gold_and_prediction() -> tuple[Example, Example]:
    """A sentence with one entity and two relations missed, one entity and one relation spurious."""
    text = "Arthur Mensch quitte OpenAI pour Mistral AI à Paris."

    def entity(id_: str, mention: str, label: str, score: float | None = None) -> Entity:
        return Entity(id_, text.index(mention), text.index(mention) + len(mention), label, score)

    gold = Example(
        "s1", text,
        [entity("T1", "Arthur Mensch", "PER"), entity("T2", "OpenAI", "ORG"), entity("T3", "Mistral AI", "ORG"), entity("T4", "Paris", "LOC")],
        [Relation("T1", "T3", "EMPLOYEE_OF"), Relation("T1", "T2", "FORMER_EMPLOYEE_OF"), Relation("T2", "T3", "COMPETES_WITH"), Relation("T3", "T4", "LOCATED_IN")],
    )
    pred = Example(
        "s1", text,
        [entity("T1", "Arthur Mensch", "PER", 0.9), entity("T2", "OpenAI", "ORG", 0.8), entity("T3", "Mistral AI", "ORG", 0.7), entity("T4", "Paris", "ORG", 0.4)],
        [Relation("T1", "T3", "EMPLOYEE_OF", 0.9), Relation("T3", "T2", "COMPETES_WITH", 0.6), Relation("T1", "T3", "FOUNDED", 0.55)],
    )
    return gold, pred


def test_error_docs_mark_what_the_scorer_counts() -> None:
    schema = load_schema()
    gold, pred = gold_and_prediction()
    (doc,) = error_docs([gold], [pred], schema)
    assert [(e["text"], e["status"]) for e in doc["gold"]["entities"]] == [("Arthur Mensch", "ok"), ("OpenAI", "ok"), ("Mistral AI", "ok"), ("Paris", "missed")]
    assert [(e["text"], e["label"], e["status"]) for e in doc["entities"]][-1] == ("Paris", "ORG", "spurious")
    assert [r["status"] for r in doc["gold"]["relations"]] == ["ok", "missed", "ok", "missed"]  # COMPETES_WITH matches either way
    assert [(r["label"], r["status"]) for r in doc["relations"]] == [("EMPLOYEE_OF", "ok"), ("COMPETES_WITH", "ok"), ("FOUNDED", "spurious")]
    assert doc["entities"][0]["score"] == 0.9 and doc["sentences"] == [[0, len(gold.text)]]
    entities, relations = score_entities([gold], [pred]).micro, score_relations([gold], [pred], schema).micro
    assert (entities.fn, entities.fp, relations.fn, relations.fp) == (1, 1, 2, 1)


def test_evaluate_writes_errors_html_marked_like_its_metrics(evaluation) -> None:
    metrics = json.loads((evaluation / "metrics.json").read_text(encoding="utf-8"))
    docs = data_block((evaluation / "errors.html").read_text(encoding="utf-8"), "docs")
    assert len(docs) == metrics["sentences"]
    for kind in ("entities", "relations"):
        missed = sum(item["status"] == "missed" for doc in docs for item in doc["gold"][kind])
        spurious = sum(item["status"] == "spurious" for doc in docs for item in doc[kind])
        assert (missed, spurious) == (metrics[kind]["micro"]["fn"], metrics[kind]["micro"]["fp"]), kind
        assert spurious > 0


def test_served_page_and_sentence_offsets(server) -> None:
    response = httpx.get(f"{server}/", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    meta = data_block(response.text, "meta")
    assert meta["mode"] == "live" and meta["thresholds"] == {"relation_threshold": 0.0, "min_entity_score": 0.0}
    assert meta["model"] == httpx.get(f"{server}/v1/health", timeout=10).json()["model"] and data_block(response.text, "docs") == []
    answer = httpx.post(f"{server}/v1/sentences", json={"texts": [ARTICLE, HOSTILE]}, timeout=10).json()
    assert answer["sentences"] == [[[s.start, s.end] for s in split_sentences(text)] for text in (ARTICLE, HOSTILE)]


# --- in a real browser ---


@dataclass
class Tab:
    """A page of a fresh browser context, recording every request, script error and dialog."""

    page: Any
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def shown(self) -> list[dict[str, Any]]:
        """The documents as drawn: marks, relations and sentences, read from the DOM."""
        return self.page.evaluate(READ_DOCS)

    def check_nothing_leaked(self, allowed: str) -> None:
        """Every request stayed on ``allowed`` (file:// or the server); no script error, no dialog."""
        assert self.requests and all(url.startswith(allowed) or url.startswith("data:") for url in self.requests), self.requests
        assert self.errors == [] and self.dialogs == []


READ_DOCS = """() => {
  const range = (node) => { const s = node.closest('.sentence'); return [Number(s.dataset.start), Number(s.dataset.end)]; };
  const side = (node) => (node.closest('.side') ? node.closest('.side').classList[1] : 'pred');
  return [...document.querySelectorAll('article.doc')].map((doc) => ({
    id: doc.dataset.id,
    marks: [...doc.querySelectorAll('mark.ent')].map((m) => ({ ...m.dataset, text: m.textContent, sentence: range(m), side: side(m) })),
    relations: [...doc.querySelectorAll('li.rel')].map((li) => ({
      ...li.dataset, args: [...li.querySelectorAll('.arg')].map((a) => a.textContent),
      shown_score: li.querySelector('.score') ? li.querySelector('.score').textContent : null, sentence: range(li), side: side(li) })),
    sentences: [...doc.querySelectorAll('.sentence')].map((s) => ({ range: range(s), text: s.querySelector('p.text').textContent, side: side(s) })),
    markup: doc.querySelectorAll('script, img, b, iframe').length,
  }));
}"""


@pytest.fixture
def tab(chromium) -> Iterator[Tab]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    tab = Tab(page)
    context.on("request", lambda request: tab.requests.append(request.url))
    page.on("pageerror", lambda error: tab.errors.append(str(error)))
    page.on("console", lambda message: tab.errors.append(message.text) if message.type == "error" else None)
    page.on("dialog", lambda dialog: (tab.dialogs.append(dialog.message), dialog.dismiss()))
    yield tab
    context.close()


def shown_score(score: float) -> str:
    """The page's ``score.toFixed(2)``: the exact binary value rounded, a tie upwards (0.125 → « 0.13 »,
    where Python's format rounds a tie to even: « 0.12 »). Scores are written with 4 decimals, so ties are common."""
    return str(Decimal(score).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def check_doc(shown: dict[str, Any], line: dict[str, Any], sentences: list[list[int]], min_score: float = 0.0, hidden: frozenset[str] = frozenset()) -> None:
    """What the page shows of one article is exactly the JSON, less what the filters hide."""
    text = line["text"]
    entities = {e["id"]: e for e in line["entities"]}

    def visible(item: dict[str, Any]) -> bool:
        return item["label"] not in hidden and item["score"] >= min_score

    expected = [(e["id"], e["label"], e["start"], e["end"], e["score"]) for e in line["entities"] if visible(e)]
    assert [(m["id"], m["label"], int(m["start"]), int(m["end"]), float(m["score"])) for m in shown["marks"]] == expected
    for mark in shown["marks"]:
        assert mark["text"] == text[int(mark["start"]) : int(mark["end"])] == entities[mark["id"]]["text"]
        assert mark["sentence"][0] <= int(mark["start"]) < mark["sentence"][1]
    relations = [r for r in line["relations"] if visible(r) and visible(entities[r["head"]]) and visible(entities[r["tail"]])]
    expected_relations = Counter(
        (r["head"], r["label"], r["tail"], shown_score(r["score"]), entities[r["head"]]["text"], entities[r["tail"]]["text"]) for r in relations
    )
    assert Counter((r["head"], r["label"], r["tail"], r["shown_score"], *r["args"]) for r in shown["relations"]) == expected_relations
    for relation in shown["relations"]:  # listed under the sentence of its head
        assert relation["sentence"][0] <= entities[relation["head"]]["start"] < relation["sentence"][1]
    assert [s["range"] for s in shown["sentences"]] == sentences
    assert [s["text"] for s in shown["sentences"]] == [text[start:end] for start, end in sentences]  # verbatim, markup included
    assert shown["markup"] == 0


def check_filters(tab: Tab, line: dict[str, Any], sentences: list[list[int]]) -> None:
    """Unchecking a label hides its spans (and their relations), checking it shows them again; same for the minimum score."""
    page = tab.page
    label = Counter(e["label"] for e in line["entities"]).most_common(1)[0][0]
    relation = line["relations"][0]["label"]
    page.uncheck(f'input[data-filter="e:{label}"]')
    page.uncheck(f'input[data-filter="r:{relation}"]')
    check_doc(next(d for d in tab.shown() if d["id"] == line["id"]), line, sentences, hidden=frozenset({label, relation}))
    page.check(f'input[data-filter="e:{label}"]')
    page.check(f'input[data-filter="r:{relation}"]')
    check_doc(next(d for d in tab.shown() if d["id"] == line["id"]), line, sentences)
    scores = sorted(e["score"] for e in line["entities"])
    threshold = scores[len(scores) // 2]
    page.fill("#veille-min-score", str(threshold))
    shown = next(d for d in tab.shown() if d["id"] == line["id"])
    check_doc(shown, line, sentences, min_score=threshold)
    assert 0 < len(shown["marks"]) < len(line["entities"])
    page.fill("#veille-min-score", "0")
    check_doc(next(d for d in tab.shown() if d["id"] == line["id"]), line, sentences)


@pytest.mark.browser
def test_prediction_file_in_the_browser(run, tab, tmp_path) -> None:
    lines, html = run
    by_id = {line["id"]: line for line in lines}
    docs = {doc["id"]: doc for doc in data_block(html.read_text(encoding="utf-8"), "docs")}
    page = tab.page
    page.goto(html.as_uri())
    model = lines[0]["meta"]
    assert f"modèle {model['model']} ({model['model_version']})" in page.text_content("#veille-facts")
    assert page.text_content(".counts") == f"29 articles, {sum(len(d['sentences']) for d in docs.values())} phrases"
    counts = page.evaluate("() => Object.fromEntries([...document.querySelectorAll('#veille-summary tbody tr[data-label]')]"
                           ".map((tr) => [tr.closest('tbody').dataset.kind + ':' + tr.dataset.label, Number(tr.querySelector('td.count').textContent)]))")
    expected = Counter(f"{kind}:{item['label']}" for line in lines for kind in ("entities", "relations") for item in line[kind])
    assert {key: n for key, n in counts.items() if n} == expected

    seen = []
    for page_number in (1, 2):
        assert page.text_content(".veille-pages .page-info") == f"page {page_number} / 2"
        shown = tab.shown()
        assert len(shown) == (20 if page_number == 1 else 9)
        for doc in shown:
            check_doc(doc, by_id[doc["id"]], docs[doc["id"]]["sentences"])
        seen += [doc["id"] for doc in shown]
        if page_number == 1:
            page.screenshot(path=str(tmp_path / "predictions.png"), full_page=True)
            page.click(".veille-pages >> nth=0 >> .next")
    assert seen == [line["id"] for line in lines]
    assert page.evaluate("() => window.__pwned") is None

    page.click(".veille-pages >> nth=0 >> .prev")
    richest = max(lines[:20], key=lambda line: (len(line["relations"]) > 0, len(line["entities"])))
    check_filters(tab, richest, docs[richest["id"]]["sentences"])
    tab.check_nothing_leaked("file://")
    assert (tmp_path / "predictions.png").stat().st_size > 10_000


@pytest.mark.browser
def test_served_page_in_the_browser(server, tab, tmp_path) -> None:
    page = tab.page
    page.goto(f"{server}/")
    health = httpx.get(f"{server}/v1/health", timeout=10).json()["model"]
    assert page.text_content("#veille-facts") == f"modèle {health['name']} ({health['version']}) · seuils : relation ≥ 0, entité ≥ 0"
    page.fill("#veille-text", " \n ")
    page.click("#veille-submit")
    assert page.text_content("#veille-status") == "Le texte est vide." and tab.shown() == []
    for text in (HOSTILE, ARTICLE):  # the last one stays on the page for the filters
        page.fill("#veille-text", text)
        with page.expect_response(lambda response: response.url.endswith("/v1/extract")) as answer:
            page.click("#veille-submit")
        result = answer.value.json()["results"][0]
        page.wait_for_function("() => / relations$/.test(document.getElementById('veille-status').textContent)")
        sentences = [[s.start, s.end] for s in split_sentences(text)]
        (shown,) = tab.shown()
        check_doc(shown, result, sentences)
        assert page.evaluate("() => window.__pwned") is None
    assert result["entities"] and result["relations"]
    page.screenshot(path=str(tmp_path / "served.png"), full_page=True)
    check_filters(tab, result, sentences)
    tab.check_nothing_leaked(server + "/")


@pytest.mark.browser
def test_errors_view_in_the_browser(evaluation, tab, tmp_path) -> None:
    metrics = json.loads((evaluation / "metrics.json").read_text(encoding="utf-8"))
    docs = {doc["id"]: doc for doc in data_block((evaluation / "errors.html").read_text(encoding="utf-8"), "docs")}
    page = tab.page
    page.goto((evaluation / "errors.html").as_uri())
    flagged = [doc["id"] for doc in docs.values() if any(x["status"] != "ok" for side in (doc, doc["gold"]) for kind in ("entities", "relations") for x in side[kind])]
    assert [doc["id"] for doc in tab.shown()] == flagged
    page.uncheck("#veille-errors-only")
    shown = tab.shown()
    assert [doc["id"] for doc in shown] == list(docs)
    marks = Counter((m["side"], m.get("status")) for doc in shown for m in doc["marks"])
    relations = Counter((r["side"], r.get("status")) for doc in shown for r in doc["relations"])
    assert marks["gold", "missed"] == metrics["entities"]["micro"]["fn"] and marks["pred", "spurious"] == metrics["entities"]["micro"]["fp"]
    assert relations["gold", "missed"] == metrics["relations"]["micro"]["fn"] and relations["pred", "spurious"] == metrics["relations"]["micro"]["fp"]
    for doc in shown:
        for mark in doc["marks"]:
            assert mark["text"] == docs[doc["id"]]["text"][int(mark["start"]) : int(mark["end"])]
    missed = page.evaluate("() => [...document.querySelectorAll('#veille-summary tbody[data-kind=entities] tr[data-label]')]"
                           ".reduce((n, tr) => n + Number(tr.querySelectorAll('td.count')[2].textContent), 0)")
    assert missed == metrics["entities"]["micro"]["fn"]
    page.screenshot(path=str(tmp_path / "errors.png"), full_page=True)
    tab.check_nothing_leaked("file://")


@pytest.mark.browser
def test_errors_view_shows_only_sentences_with_errors_until_asked(tab, tmp_path) -> None:
    gold, pred = gold_and_prediction()
    right = Example("s2", "Meta rachète Scale AI.", [Entity("T1", 0, 4, "ORG"), Entity("T2", 13, 21, "ORG")], [Relation("T1", "T2", "ACQUIRES")])
    guessed = Example(right.id, right.text, [Entity("T1", 0, 4, "ORG", 0.9), Entity("T2", 13, 21, "ORG", 0.8)], [Relation("T1", "T2", "ACQUIRES", 0.7)])
    page_file = tmp_path / "errors.html"
    write_errors_view(page_file, [gold, right], [pred, guessed], load_schema(), {"name": "m", "version": "v"})
    tab.page.goto(page_file.as_uri())
    (shown,) = tab.shown()
    assert shown["id"] == "s1"
    assert [(m["side"], m["text"], m.get("status")) for m in shown["marks"] if m.get("status") != "ok"] == [("gold", "Paris", "missed"), ("pred", "Paris", "spurious")]
    assert sorted((r["side"], r["label"], r["status"]) for r in shown["relations"] if r["status"] != "ok") == [
        ("gold", "FORMER_EMPLOYEE_OF", "missed"), ("gold", "LOCATED_IN", "missed"), ("pred", "FOUNDED", "spurious")
    ]
    tab.page.uncheck("#veille-errors-only")
    assert [doc["id"] for doc in tab.shown()] == ["s1", "s2"]
    tab.page.check("#veille-errors-only")
    assert [doc["id"] for doc in tab.shown()] == ["s1"]
    tab.page.screenshot(path=str(tmp_path / "errors.png"), full_page=True)
    tab.check_nothing_leaked("file://")
