"""Output formats of ``veille predict``, written as predictions arrive and renamed into place at the end.

- ``jsonl``: one line per article, the gold format with ``score`` on entities and relations
  and the model name/version in ``meta``.
- ``labelstudio``: a JSON array of Label Studio tasks, one per sentence, with the
  predictions as pre-annotations (``veille annotate push --predictions``, or the import
  dialog of Label Studio). Written element by element, so it streams like JSONL.
- ``csv`` / ``tsv``: one row per entity and per relation, for spreadsheets.
- ``excel``: the same table as a French Excel opens it with a double click: UTF-8 with a
  byte-order mark (else accents are garbled), ``;`` between columns (``,`` is the
  decimal separator there), decimal commas in scores, CRLF line ends.
- ``parquet``: one row per article (id, text, entities and relations as lists of structs,
  source, sentences, model, model_version), what a data team loads next (pandas,
  DuckDB, Spark); ``parquet-table``: the csv table's rows, typed (ints, float scores,
  nulls where a column does not apply). Both written a row group at a time.
- ``html``: one self-contained page for people to read (:mod:`veille.annotation.view`):
  entities highlighted in the schema's colours, relations under each sentence, filters,
  a summary; 20 articles per page section, so the browser draws one section at a time.

Every file is written through :func:`veille.annotation.atomic.atomic_open`: a temp file
next to the target while predicting, renamed onto it only when all input was processed.
A crash or Ctrl-C leaves the previous file (if any) untouched and no partial output.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Protocol

from veille.annotation.atomic import atomic_open
from veille.annotation.document import Example
from veille.annotation.labelstudio.results import prediction_task
from veille.annotation.schema import Schema
from veille.annotation.view import PageWriter, view_meta

from .pipeline import ArticlePrediction

FORMATS = ("jsonl", "labelstudio", "csv", "tsv", "excel", "html", "parquet", "parquet-table")
SUFFIXES = {
    "jsonl": ".jsonl", "labelstudio": ".labelstudio.json", "csv": ".csv", "tsv": ".tsv", "excel": ".excel.csv", "html": ".html",
    "parquet": ".parquet", "parquet-table": ".table.parquet",
}
BINARY_FORMATS = ("parquet", "parquet-table")
TABLE_COLUMNS = ("article", "kind", "id", "label", "start", "end", "text", "score", "head", "head_text", "tail", "tail_text")
ARTICLE_META = ("source", "sentences", "model", "model_version")
PARQUET_ROW_GROUP = 1000  # articles buffered per Parquet row group: memory stays flat, files stay few-grouped


class Writer(Protocol):
    def write(self, prediction: ArticlePrediction) -> None: ...

    def finish(self) -> None:
        """Complete the file (closing brackets); only called when every article was written."""


class JsonlWriter:
    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle

    def write(self, prediction: ArticlePrediction) -> None:
        self.handle.write(json.dumps(prediction.example.to_json(), ensure_ascii=False) + "\n")

    def finish(self) -> None:
        self.handle.flush()


class LabelStudioWriter:
    """Tasks with pre-annotations, one per sentence, as a JSON array streamed element by element."""

    def __init__(self, handle: IO[str], schema: Schema) -> None:
        self.handle, self.schema = handle, schema
        self.separator = "[\n"

    def write(self, prediction: ArticlePrediction) -> None:
        version = prediction.model.get("version", "")
        for sentence in prediction.sentences:
            task = prediction_task(sentence, self.schema, version)
            self.handle.write(self.separator + json.dumps(task, ensure_ascii=False))
            self.separator = ",\n"

    def finish(self) -> None:
        self.handle.write("[]\n" if self.separator == "[\n" else "\n]\n")
        self.handle.flush()


class TableWriter:
    """Entities and relations as rows of one flat table (CSV, TSV, or CSV for a French Excel)."""

    def __init__(self, handle: IO[str], delimiter: str, excel: bool = False) -> None:
        self.handle = handle
        self.decimal = "," if excel else "."
        if excel:
            handle.write("\ufeff")
        self.rows = csv.writer(handle, delimiter=delimiter, lineterminator="\r\n" if excel else "\n")
        self.rows.writerow(TABLE_COLUMNS)

    def write(self, prediction: ArticlePrediction) -> None:
        for row in table_rows(prediction.example):
            self.rows.writerow(["" if value is None else self._score(value) if column == "score" else value for column, value in zip(TABLE_COLUMNS, row)])

    def finish(self) -> None:
        self.handle.flush()

    def _score(self, score: float) -> str:
        return f"{score:.4f}".replace(".", self.decimal)


def table_rows(example: Example) -> Iterator[tuple[str | int | float | None, ...]]:
    """The article's entities, then its relations, as typed rows of :data:`TABLE_COLUMNS` (None: not applicable)."""
    doc = example.id
    for entity in example.entities:
        yield (doc, "entity", entity.id, entity.label, entity.start, entity.end, example.mention(entity), entity.score, None, None, None, None)
    for relation in example.relations:
        head, tail = example.entity(relation.head), example.entity(relation.tail)
        yield (doc, "relation", None, relation.label, None, None, None, relation.score, relation.head, example.mention(head), relation.tail, example.mention(tail))


class ParquetWriter:
    """``parquet`` (one row per article) or ``parquet-table`` (the csv table, typed), a row group per
    :data:`PARQUET_ROW_GROUP` articles so that a long run holds one group in memory."""

    def __init__(self, handle: IO[bytes], table: bool) -> None:
        import pyarrow.parquet as pq

        self.table = table
        self.schema = parquet_schema(table)
        self.writer = pq.ParquetWriter(handle, self.schema)
        self.rows: list[dict] = []
        self.articles = 0

    def write(self, prediction: ArticlePrediction) -> None:
        example = prediction.example
        if self.table:
            self.rows.extend(dict(zip(TABLE_COLUMNS, row)) for row in table_rows(example))
        else:
            line = example.to_json()  # the JSONL line's values (rounded scores, mention texts)
            self.rows.append({"id": line["id"], "text": line["text"], "entities": line["entities"], "relations": line["relations"]} | {key: example.meta.get(key) for key in ARTICLE_META})
        self.articles += 1
        if self.articles % PARQUET_ROW_GROUP == 0:
            self._flush()

    def finish(self) -> None:
        self._flush()
        self.writer.close()

    def _flush(self) -> None:
        import pyarrow as pa

        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows = []


def parquet_schema(table: bool):
    """The Arrow schema of ``parquet-table`` (``table``) or of ``parquet``: fixed, so that every shard of a run has the same."""
    import pyarrow as pa

    string, integer, score = pa.string(), pa.int64(), pa.float64()
    if table:
        types = {"start": integer, "end": integer, "score": score}
        return pa.schema([(column, types.get(column, string)) for column in TABLE_COLUMNS])
    entity = pa.struct([("id", string), ("start", integer), ("end", integer), ("label", string), ("text", string), ("score", score)])
    relation = pa.struct([("head", string), ("tail", string), ("label", string), ("score", score)])
    meta = {"sentences": integer}
    return pa.schema(
        [("id", string), ("text", string), ("entities", pa.list_(entity)), ("relations", pa.list_(relation))]
        + [(key, meta.get(key, string)) for key in ARTICLE_META]
    )


class HtmlWriter:
    """The run as one HTML page: each article is the JSONL line plus its sentence offsets (to list relations under their sentence)."""

    def __init__(self, handle: IO[str], schema: Schema) -> None:
        self.page, self.schema = PageWriter(handle), schema
        self.model: dict[str, str] = {}

    def write(self, prediction: ArticlePrediction) -> None:
        self.model = prediction.model
        sentences = [[s.meta["start"], s.meta["end"]] for s in prediction.sentences]
        self.page.add({**prediction.example.to_json(), "sentences": sentences})

    def finish(self) -> None:
        self.page.finish(view_meta("predictions", self.schema, self.model))


def make_writer(fmt: str, handle: IO, schema: Schema) -> Writer:
    """The writer of a format already checked by :func:`output_paths` (a binary handle for :data:`BINARY_FORMATS`)."""
    if fmt in BINARY_FORMATS:
        return ParquetWriter(handle, table=fmt == "parquet-table")
    if fmt == "labelstudio":
        return LabelStudioWriter(handle, schema)
    if fmt == "html":
        return HtmlWriter(handle, schema)
    if fmt in ("csv", "tsv", "excel"):
        return TableWriter(handle, {"csv": ",", "tsv": "\t", "excel": ";"}[fmt], excel=fmt == "excel")
    return JsonlWriter(handle)


def output_paths(formats: list[str], output: Path | None) -> list[Path | None]:
    """Where each format goes: the first to ``output`` (None: stdout), the others beside it.

    ``-o preds.jsonl --format jsonl --format csv`` writes ``preds.jsonl`` and ``preds.csv``.
    Raises ``ValueError`` for an unknown, repeated or unplaceable format.
    """
    unknown = [fmt for fmt in formats if fmt not in FORMATS]
    if unknown:
        raise ValueError(f"unknown format {unknown[0]!r} (choose from {', '.join(FORMATS)})")
    if len(set(formats)) != len(formats):
        raise ValueError("each --format may be given once")
    if output is None and len(formats) > 1:
        raise ValueError("several --format need -o/--output (the extra formats are written beside it)")
    if output is None and formats[0] in BINARY_FORMATS:
        raise ValueError(f"--format {formats[0]} needs -o/--output (a binary file, not for a terminal)")
    if output is None:
        return [None]
    stem = output.name[: -len(output.suffix)] if output.suffix else output.name
    return [output] + [output.with_name(stem + SUFFIXES[fmt]) for fmt in formats[1:]]


@contextlib.contextmanager
def open_writers(formats: list[str], output: Path | None, schema: Schema, stdout: IO[str]) -> Iterator[list[Writer]]:
    """Open one writer per format; files appear (atomically) only if the block completes."""
    paths = output_paths(formats, output)
    with contextlib.ExitStack() as stack:
        writers = []
        for fmt, path in zip(formats, paths):
            handle = stdout if path is None else stack.enter_context(atomic_open(path, "wb" if fmt in BINARY_FORMATS else "w"))
            writers.append(make_writer(fmt, handle, schema))
        yield writers
        for writer in writers:
            writer.finish()
