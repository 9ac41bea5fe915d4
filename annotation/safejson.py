"""Decoding JSON that veille did not write: every way it can be unusable becomes one clean message.

``json.loads`` raises more than ``JSONDecodeError`` on hostile input (``ValueError`` for an
integer of more than 4,300 digits, ``RecursionError`` for arrays nested 100,000 deep), and
it accepts values that break veille later: ``NaN`` and numbers overflowing to infinity
(which no JSON output may hold), and lone surrogates (``"\\ud800"``), which the tokenizer
and every UTF-8 writer refuse. :func:`loads` turns each into a :class:`JsonInputError`
naming the field, so that callers report one line (``file:line: field: message``) and go
on with the rest, instead of losing a whole run to a traceback.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

MAX_DEPTH = 64  # far beyond any veille format (a Label Studio export nests about 8 deep)


class JsonInputError(ValueError):
    """A JSON text or value veille cannot use; ``field`` is its path (``entities[2].label``) or ``<line>``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def decode(data: str | bytes) -> Any:
    """Parse JSON text, raising :class:`JsonInputError` for anything ``json.loads`` raises on it."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise JsonInputError("<line>", f"not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise JsonInputError("<line>", f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise JsonInputError("<line>", f"nested too deeply (more than {MAX_DEPTH} levels)") from None
    except ValueError:  # the only other one: an integer over Python's digit limit
        raise JsonInputError("<line>", f"a number of more than {sys.get_int_max_str_digits()} digits") from None


def value_problem(value: Any, path: str = "") -> tuple[str, str] | None:
    """The first ``(field, message)`` that makes a decoded value unusable, or None.

    Walks the value without recursion: nesting beyond :data:`MAX_DEPTH`, a non-finite
    number, a string or key with a lone surrogate.
    """
    stack = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        field = where or "<line>"
        if depth > MAX_DEPTH:
            return field, f"nested too deeply (more than {MAX_DEPTH} levels)"
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return field, problem
        elif isinstance(item, float) and not math.isfinite(item):
            return field, f"{item} is not a finite number"
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                problem = text_problem(key)
                if problem:
                    return field, f"key {printable(key)!r}: {problem}"
                stack.append((child, f"{where}.{key}" if where else key, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{index}]", depth + 1) for index, child in reversed(list(enumerate(item))))
    return None


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be written as UTF-8 (a lone surrogate, from JSON's ``\\ud800``), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"not valid Unicode: lone surrogate U+{ord(text[exc.start]):04X} at character {exc.start}"
    return None


def printable(text: str) -> str:
    """``text`` with lone surrogates escaped, safe to print and to write as UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def loads(data: str | bytes) -> Any:
    """Parse and check JSON text: the value, or :class:`JsonInputError` naming the field at fault."""
    value = decode(data)
    problem = value_problem(value)
    if problem:
        raise JsonInputError(*problem)
    return value
