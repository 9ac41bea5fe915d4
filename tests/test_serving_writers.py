"""Article assembly (sentence → article offsets, ids) and the output formats of ``veille predict``."""

from __future__ import annotations

import csv
import io
import json

import pytest

from veille.annotation.articles import Article
from veille.annotation.document import Entity, Example, Relation
from veille.annotation.labelstudio.results import results_to_example
from veille.annotation.schema import load_schema
from veille.annotation.sentences import split_sentences
from veille.serving.pipeline import ArticlePrediction, assemble_article
from veille.serving.writers import open_writers, output_paths

ARTICLE = Article(
    "a1",
    "Arthur Mensch dirige Mistral AI.\n\nLa start-up 🚀 Hugging Face rivalise avec OpenAI.",
    "test.txt",
)
MODEL = {"name": "tiny", "version": "v1"}


def _entity(sentence: str, id_: str, mention: str, label: str, score: float) -> Entity:
    start = sentence.index(mention)
    return Entity(id_, start, start + len(mention), label, score)


@pytest.fixture
def prediction() -> ArticlePrediction:
    """Per-sentence predictions with ids restarting at T1, as the predictor gives them."""
    first, second = split_sentences(ARTICLE.text)
    predicted = [
        Example(
            "x",
            first.text,
            [_entity(first.text, "T1", "Arthur Mensch", "PER", 0.9), _entity(first.text, "T2", "Mistral AI", "ORG", 0.8)],
            [Relation("T1", "T2", "EMPLOYEE_OF", 0.7)],
        ),
        Example(
            "y",
            second.text,
            [_entity(second.text, "T2", "OpenAI", "ORG", 0.6), _entity(second.text, "T1", "Hugging Face", "ORG", 0.95)],
            [Relation("T2", "T1", "COMPETES_WITH", 0.55)],
        ),
    ]
    return assemble_article(ARTICLE, [first, second], predicted, MODEL)


def test_article_offsets_slice_the_original_text_and_ids_are_unique(prediction: ArticlePrediction) -> None:
    example = prediction.example
    assert example.text == ARTICLE.text
    assert [(e.id, example.mention(e), e.label) for e in example.entities] == [
        ("T1", "Arthur Mensch", "PER"),
        ("T2", "Mistral AI", "ORG"),
        ("T3", "Hugging Face", "ORG"),  # renumbered in reading order across sentences
        ("T4", "OpenAI", "ORG"),
    ]
    # The second sentence's relation T2(OpenAI) → T1(Hugging Face) keeps pointing at the same mentions.
    assert [(example.mention(example.entity(r.head)), r.label, example.mention(example.entity(r.tail))) for r in example.relations] == [
        ("Arthur Mensch", "EMPLOYEE_OF", "Mistral AI"),
        ("OpenAI", "COMPETES_WITH", "Hugging Face"),
    ]
    assert example.meta["model"] == "tiny" and example.meta["model_version"] == "v1"
    ids = [s.id for s in prediction.sentences]
    assert ids == ["a1-s000", "a1-s001"]
    for sentence in prediction.sentences:
        assert ARTICLE.text[sentence.meta["start"] : sentence.meta["end"]] == sentence.text


def test_jsonl_line_is_the_gold_format_with_scores(prediction: ArticlePrediction) -> None:
    out = io.StringIO()
    with open_writers(["jsonl"], None, load_schema(), out) as writers:
        writers[0].write(prediction)
    line = json.loads(out.getvalue())
    assert line["id"] == "a1" and line["text"] == ARTICLE.text
    assert all("score" in e for e in line["entities"]) and all("score" in r for r in line["relations"])
    assert Example.from_json(line).entities == prediction.example.entities


def test_labelstudio_tasks_read_back_to_the_same_sentences(prediction: ArticlePrediction) -> None:
    """The tasks are a JSON array whose predictions convert back to the sentence predictions (emoji: UTF-16 offsets)."""
    out = io.StringIO()
    schema = load_schema()
    with open_writers(["labelstudio"], None, schema, out) as writers:
        writers[0].write(prediction)
    tasks = json.loads(out.getvalue())
    assert len(tasks) == 2
    for task, sentence in zip(tasks, prediction.sentences):
        assert task["predictions"][0]["model_version"] == "v1"
        back, issues = results_to_example(task["data"], task["predictions"][0]["result"], schema)
        assert issues == []
        assert {e.span() for e in back.entities} == {e.span() for e in sentence.entities}
        assert back.id == sentence.id and task["data"]["doc"] == "a1"


def test_empty_labelstudio_output_is_still_valid_json() -> None:
    out = io.StringIO()
    with open_writers(["labelstudio"], None, load_schema(), out):
        pass
    assert json.loads(out.getvalue()) == []


def test_csv_and_tsv_have_a_row_per_entity_and_relation(prediction: ArticlePrediction, tmp_path) -> None:
    target = tmp_path / "preds.jsonl"
    with open_writers(["jsonl", "csv", "tsv"], target, load_schema(), io.StringIO()) as writers:
        for writer in writers:
            writer.write(prediction)
    rows = list(csv.DictReader((tmp_path / "preds.csv").open(encoding="utf-8")))
    assert [row["kind"] for row in rows] == ["entity"] * 4 + ["relation"] * 2
    assert rows[4]["head_text"] == "Arthur Mensch" and rows[4]["tail_text"] == "Mistral AI" and rows[4]["label"] == "EMPLOYEE_OF"
    tsv = list(csv.DictReader((tmp_path / "preds.tsv").open(encoding="utf-8"), delimiter="\t"))
    assert tsv == rows
    assert target.exists()


def test_excel_format_opens_in_a_french_spreadsheet(prediction: ArticlePrediction, tmp_path) -> None:
    """BOM (accents), `;` columns, decimal commas, CRLF: what a French Excel reads without an import dialog."""
    target = tmp_path / "preds.jsonl"
    with open_writers(["jsonl", "csv", "excel"], target, load_schema(), io.StringIO()) as writers:
        for writer in writers:
            writer.write(prediction)
    raw = (tmp_path / "preds.excel.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    excel = list(csv.DictReader(raw.decode("utf-8-sig").splitlines(), delimiter=";"))
    plain = list(csv.DictReader((tmp_path / "preds.csv").open(encoding="utf-8")))
    assert [r["score"] for r in excel] == [r["score"].replace(".", ",") for r in plain] and "," in excel[0]["score"]
    assert [{k: v for k, v in r.items() if k != "score"} for r in excel] == [{k: v for k, v in r.items() if k != "score"} for r in plain]


def test_parquet_holds_the_jsonl_lines_and_parquet_table_the_csv_rows_typed(prediction: ArticlePrediction, tmp_path) -> None:
    import pyarrow.parquet as pq

    target = tmp_path / "preds.jsonl"
    with open_writers(["jsonl", "csv", "parquet", "parquet-table"], target, load_schema(), io.StringIO()) as writers:
        for writer in writers:
            writer.write(prediction)
            writer.write(prediction)
    line = json.loads(target.read_text(encoding="utf-8").splitlines()[0])
    articles = pq.read_table(tmp_path / "preds.parquet").to_pylist()
    assert len(articles) == 2
    assert {k: articles[0][k] for k in ("id", "text", "entities", "relations")} == {k: line[k] for k in ("id", "text", "entities", "relations")}
    assert {k: articles[0][k] for k in ("source", "sentences", "model", "model_version")} == line["meta"]
    table = pq.read_table(tmp_path / "preds.table.parquet")
    assert table.schema.field("start").type == "int64" and table.schema.field("score").type == "double"
    plain = list(csv.DictReader((tmp_path / "preds.csv").open(encoding="utf-8")))
    as_text = [{k: "" if v is None else f"{v:.4f}" if k == "score" else str(v) for k, v in row.items()} for row in table.to_pylist()]
    assert as_text == plain


def test_parquet_needs_an_output_file() -> None:
    with pytest.raises(ValueError, match="--format parquet needs -o"):
        output_paths(["parquet"], None)


def test_output_is_atomic_a_failure_keeps_the_previous_file(prediction: ArticlePrediction, tmp_path) -> None:
    target = tmp_path / "preds.jsonl"
    target.write_text("previous run\n", encoding="utf-8")
    with pytest.raises(RuntimeError):
        with open_writers(["jsonl", "csv"], target, load_schema(), io.StringIO()) as writers:
            writers[0].write(prediction)
            raise RuntimeError("crash in the middle")
    assert target.read_text(encoding="utf-8") == "previous run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds.jsonl"]  # no temp file, no partial CSV


def test_output_paths() -> None:
    from pathlib import Path

    assert output_paths(["jsonl"], None) == [None]
    assert output_paths(["labelstudio", "csv"], Path("out/p.json")) == [Path("out/p.json"), Path("out/p.csv")]
    with pytest.raises(ValueError, match="need -o"):
        output_paths(["jsonl", "csv"], None)
    with pytest.raises(ValueError, match="once"):
        output_paths(["csv", "csv"], Path("p.csv"))
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        output_paths(["jsonl", "xml"], Path("p.jsonl"))
