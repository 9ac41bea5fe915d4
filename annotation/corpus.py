"""Reading and writing gold corpus files (JSON Lines, UTF-8, one example per line)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from .atomic import atomic_open
from .document import Example
from .safejson import JsonInputError, loads
from .schema import Schema, load_schema
from .validate import Problem, check_example


class CorpusError(ValueError):
    """A corpus file breaks the format; ``problems`` lists every ``file:line: field: message``."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        shown = "\n".join(str(p) for p in problems[:20])
        more = f"\n… and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(shown + more)


def check_files(paths: Iterable[str | Path], schema: Schema) -> tuple[list[Example], list[Problem]]:
    """Parse and validate files; return the valid examples and every problem found.

    Example ids must be unique across all the files given together.
    """
    examples: list[Example] = []
    problems: list[Problem] = []
    first_seen: dict[str, str] = {}
    for path in paths:
        path = Path(path)
        for line_no, line in _lines(path, problems):
            if not line.strip():
                continue
            try:
                obj = loads(line)
            except JsonInputError as exc:
                problems.append(Problem(str(path), line_no, exc.field, exc.message))
                continue
            found = check_example(obj, schema)
            where = f"{path}:{line_no}"
            if isinstance(obj, dict) and isinstance(obj.get("id"), str):
                if obj["id"] in first_seen:
                    found.append(("id", f"duplicate example id {obj['id']!r} (first at {first_seen[obj['id']]})"))
                else:
                    first_seen[obj["id"]] = where
            problems.extend(Problem(str(path), line_no, field, message) for field, message in found)
            if not found:
                examples.append(Example.from_json(obj))
    return examples, problems


def read_corpus(paths: str | Path | Iterable[str | Path], schema: Schema | None = None) -> list[Example]:
    """Load gold files, raising :class:`CorpusError` if any line is invalid or none is present."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = list(paths)
    examples, problems = check_files(paths, schema or load_schema())
    if problems:
        raise CorpusError(problems)
    if not examples:
        raise CorpusError([Problem(", ".join(str(p) for p in paths), 0, "<file>", "no examples")])
    return examples


def write_corpus(path: str | Path, examples: Iterable[Example]) -> int:
    """Write examples atomically (temp file + rename); return how many were written."""
    count = 0
    with atomic_open(path) as handle:
        for example in examples:
            handle.write(json.dumps(example.to_json(), ensure_ascii=False) + "\n")
            count += 1
    return count


def _lines(path: Path, problems: list[Problem]) -> Iterator[tuple[int, str]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(str(path), 0, "<file>", f"cannot read: {exc.strerror}"))
        return
    if not data.strip():
        problems.append(Problem(str(path), 0, "<file>", "empty file: no examples"))
        return
    for line_no, raw in enumerate(data.split(b"\n"), start=1):
        try:
            yield line_no, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(Problem(str(path), line_no, "<line>", f"not UTF-8 (byte {exc.start})"))
