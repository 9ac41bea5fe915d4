"""Reading articles to annotate or to predict on: ``.txt`` files, folders of them, JSONL
``{"id", "text"}`` lines, Parquet files with ``id`` and ``text`` columns, and ``-`` for
standard input.

Articles stream one at a time so that memory stays flat over large inputs. A bad
article (binary, not UTF-8, not JSON, no text) is yielded as a :class:`Problem` naming
the file, line and field, so callers can report it and go on with the rest.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .document import Example
from .safejson import JsonInputError, loads
from .sentences import split_sentences
from .validate import Problem

TEXT_SUFFIXES = (".txt",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
INPUT_SUFFIXES = TEXT_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES


@dataclass(frozen=True)
class Article:
    id: str
    text: str
    source: str


def sentence_examples(article: Article) -> list[Example]:
    """The article's sentences as unannotated examples: ids ``<doc>-sNNN``, article offsets in ``meta``.

    Annotation tasks and ``veille corpus split`` share this, so a sentence id means the
    same sentence everywhere.
    """
    return [
        Example(
            f"{article.id}-s{i:03d}",
            sentence.text,
            meta={"doc": article.id, "source": article.source, "start": sentence.start, "end": sentence.end},
        )
        for i, sentence in enumerate(split_sentences(article.text))
    ]


def missing_inputs(inputs: Iterable[str | Path]) -> list[Problem]:
    """The inputs that are neither ``-`` nor an existing file or folder: checked before any slow start-up.

    ``veille predict`` looks here before it loads a model, so a mistyped path is said at
    once, and a run with nothing to read stops there.
    """
    return [Problem(str(item), 0, "<file>", "no such file or folder") for item in inputs if not is_uri(item) and str(item) != "-" and not Path(item).exists()]


def read_articles(inputs: Iterable[str | Path], stdin: BinaryIO | None = None) -> Iterator[Article | Problem]:
    """Yield every article of the inputs, in order, or a :class:`Problem` for each bad one."""
    for item in inputs:
        if str(item) == "-":
            yield from _read_stream(stdin or sys.stdin.buffer, "<stdin>")
            continue
        for found in input_files([item]):
            if isinstance(found, Problem):
                yield found
            else:
                yield from from_path(*found)


def input_files(inputs: Iterable[str | Path]) -> Iterator[tuple[Path, str] | Problem]:
    """Each input file (not ``-``) with its article id (a ``.txt`` file's id), or a :class:`Problem`.

    Separate from the reading so that ``--engine ray`` lists the files on the driver and
    reads them on its workers, with the ids and messages of the local engine.
    """
    for item in inputs:
        path = Path(item)
        if is_uri(item):
            yield Problem(str(item), 0, "<file>", "a URI: only `veille predict --engine ray` reads these (or copy the file here)")
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if (p.is_file() or p.is_symlink()) and p.suffix.lower() in INPUT_SUFFIXES)
            if not files:
                yield Problem(str(path), 0, "<folder>", "no .txt, .jsonl or .parquet files in this folder")
            for file in files:
                if file.is_file():
                    yield file, str(file.relative_to(path).with_suffix(""))
                else:  # a symbolic link to nothing (or to a folder): said, not skipped silently
                    yield Problem(str(file), 0, "<file>", f"symbolic link to {os.readlink(file)}, which is not a file")
        elif path.is_file():
            yield path, path.stem
        else:
            yield Problem(str(path), 0, "<file>", "no such file or folder")


def is_uri(item: str | Path) -> bool:
    """``s3://…``, ``file://…``: read by ``--engine ray`` through ``pyarrow.fs``, not a local path."""
    return "://" in str(item)


def from_path(path: Path, article_id: str, source: str | None = None, part: Part | None = None) -> Iterator[Article | Problem]:
    """The articles of one input file (``article_id`` names a ``.txt`` article), or of one :class:`Part` of a JSONL or Parquet file.

    ``source`` (default: ``path``) is the name outputs and messages give the file: the
    path as the user typed it, where a Ray worker opens it by its absolute path. The
    lines (rows) of a ``part`` are numbered as those of the whole file.
    """
    source = source or str(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        yield Problem(source, 0, "<file>", f"cannot read: {exc.strerror}")
        return
    with handle:
        yield from from_handle(handle, source, article_id, part)


def from_handle(handle: BinaryIO, source: str, article_id: str, part: Part | None = None) -> Iterator[Article | Problem]:
    """The articles of an open binary file (or of one ``part`` of it), by the suffix of ``source``: local files and Ray's (any filesystem) alike."""
    suffix = PurePosixPath(source).suffix.lower()
    if suffix in JSONL_SUFFIXES and part is not None:
        handle.seek(part.start)
        yield from _read_jsonl(_lines_until(handle, part.end - part.start), source, first_line=part.first, whole_file=False)
    elif suffix in JSONL_SUFFIXES:
        yield from _read_jsonl(handle, source)  # line by line: memory stays flat
    elif suffix in PARQUET_SUFFIXES:
        yield from _read_parquet(handle, source, part)
    else:
        yield _text_article(handle.read(), article_id, source)


@dataclass(frozen=True)
class Part:
    """A run of whole records of a file, for one worker: the number of its first line
    (or row), and where it lies: bytes ``[start, end)`` of a JSONL file, row groups
    ``[start, end)`` of a Parquet file."""

    first: int
    start: int
    end: int


def jsonl_parts(path: Path, lines: int, max_parts: int = 4096) -> list[Part]:
    """``path`` cut into runs of ``lines`` lines, so that several workers can read one large JSONL file.

    One pass over the file (the page cache then holds it for the workers). Blank and bad
    lines count, so each part's line numbers are the file's own, as every message gives them.
    """
    with path.open("rb") as handle:
        return _parts(((1, len(line)) for line in handle), lines, max_parts)


def parquet_parts(handle: BinaryIO, rows: int, max_parts: int = 4096) -> list[Part]:
    """A Parquet file cut into runs of whole row groups of at least ``rows`` rows, from its footer alone.

    A row group is the smallest piece a reader can fetch on its own (from a local disk or
    an object store), so a file written as one row group stays one part.
    """
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(handle).metadata
    return _parts(((metadata.row_group(i).num_rows, 1) for i in range(metadata.num_row_groups)), rows, max_parts)


def _parts(units: Iterable[tuple[int, int]], size: int, max_parts: int) -> list[Part]:
    """Consecutive ``(records, extent)`` units grouped into parts of at least ``size`` records.

    At most ``max_parts`` (even) parts, whatever the file's size: when there would be
    more, neighbours are merged and ``size`` doubles, so the driver's memory stays bounded
    (a worker still writes shards of its own size from a longer part).
    """
    parts: list[Part] = []
    first, start, position, count = 1, 0, 0, 0
    for records, extent in units:
        position += extent
        count += records
        if count >= size:
            parts.append(Part(first, start, position))
            first, start, count = first + count, position, 0
            if len(parts) == max_parts:
                parts = [Part(a.first, a.start, b.end) for a, b in zip(parts[::2], parts[1::2])]
                size *= 2
    if count or not parts:
        parts.append(Part(first, start, position))
    return parts


def _lines_until(handle: BinaryIO, size: int) -> Iterator[bytes]:
    """The lines of ``handle`` that start within its next ``size`` bytes."""
    while size > 0 and (line := handle.readline()):
        size -= len(line)
        yield line


def _read_stream(stream: BinaryIO, source: str) -> Iterator[Article | Problem]:
    """Standard input is JSONL when its first non-blank byte opens an object, else one article."""
    head = stream.read(1)
    while head and head.isspace():
        head = stream.read(1)
    if head == b"{":
        yield from _read_jsonl(_Prepended(head, stream), source)
    elif head:
        yield _text_article(head + stream.read(), "stdin", source)
    else:
        yield Problem(source, 0, "<stdin>", "empty input")


def _text_article(data: bytes, article_id: str, source: str) -> Article | Problem:
    if b"\x00" in data:
        return Problem(source, 0, "<file>", "binary file (contains NUL bytes), expected UTF-8 text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return Problem(source, line, "<text>", f"not UTF-8 (invalid byte 0x{data[exc.start]:02x} at offset {exc.start})")
    if not text.strip():
        return Problem(source, 0, "<text>", "empty article")
    return Article(article_id, text, source)


def _read_jsonl(lines: Iterable[bytes], source: str, first_line: int = 1, whole_file: bool = True) -> Iterator[Article | Problem]:
    """Articles and problems of JSONL lines numbered from ``first_line``; a whole file without an article is a problem too."""
    empty = True
    for line_no, raw in enumerate(lines, start=first_line):
        if not raw.strip():
            continue
        empty = False
        try:
            obj = loads(raw)
        except JsonInputError as exc:
            yield Problem(source, line_no, exc.field, exc.message)
            continue
        yield _object_article(obj, source, line_no)
    if empty and whole_file:
        yield Problem(source, 0, "<file>", "empty file: no articles")


def _object_article(obj: object, source: str, line_no: int) -> Article | Problem:
    """A JSONL line's object or a Parquet row as an article, or what is wrong with it."""
    if not isinstance(obj, dict):
        return Problem(source, line_no, "<line>", "expected a JSON object with id and text")
    if not isinstance(obj.get("text"), str) or not obj["text"].strip():
        return Problem(source, line_no, "text", "missing, empty or not a string")
    if not isinstance(obj.get("id"), (str, int)) or isinstance(obj.get("id"), bool):
        return Problem(source, line_no, "id", "missing or not a string")
    return Article(str(obj["id"]), obj["text"], f"{source}:{line_no}")


def _read_parquet(handle: BinaryIO, source: str, part: Part | None = None) -> Iterator[Article | Problem]:
    """Rows of the ``id`` and ``text`` columns (of the row groups of ``part``), numbered from 1 as lines are, a row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(handle)
    except (pa.ArrowException, OSError) as exc:
        yield Problem(source, 0, "<file>", f"not a Parquet file: {exc}")
        return
    missing = [name for name in ("id", "text") if name not in parquet.schema_arrow.names]
    if missing:
        yield Problem(source, 0, "<file>", f"no {' and '.join(missing)} column (a Parquet input needs id and text)")
        return
    groups = None if part is None else list(range(part.start, part.end))
    row = 0 if part is None else part.first - 1
    for batch in parquet.iter_batches(columns=["id", "text"], row_groups=groups):
        for obj in batch.to_pylist():
            row += 1
            yield _object_article(obj, source, row)
    if row == 0 and part is None:
        yield Problem(source, 0, "<file>", "empty file: no articles")


def warn_duplicate_ids(items: Iterable[Article | Problem], warn: Callable[[str], None]) -> Iterator[Article | Problem]:
    """Pass ``items`` through, calling ``warn`` for each article whose id an earlier article has.

    Both are kept (they are different texts), but every output keyed by article id (JSONL
    lines, sentence ids, Label Studio tasks) would mix them. The ids seen are remembered:
    about 100 bytes per article.
    """
    first: dict[str, str] = {}
    for item in items:
        if isinstance(item, Article):
            if item.id in first:
                warn(f"{item.source}: id: duplicate article id {item.id!r} (first at {first[item.id]}); outputs keyed by id will mix them")
            else:
                first[item.id] = item.source
        yield item


class _Prepended:
    """Iterate the lines of a binary stream whose first bytes were already read."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self.head, self.stream = head, stream

    def __iter__(self) -> Iterator[bytes]:
        first = self.head + self.stream.readline()
        yield first
        yield from self.stream
