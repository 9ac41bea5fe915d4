"""Every rule of the gold JSONL format and of the schema, reported as ``file:line: field: message``.

Validation collects all problems instead of stopping at the first, so an annotator
fixes a file in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .schema import Schema


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        """``file:line: field: message``; a problem of a whole file (line 0) has no line number."""
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.field}: {self.message}"


def check_example(obj: Any, schema: Schema) -> list[tuple[str, str]]:
    """The ``(field, message)`` problems of one decoded JSON line; empty when valid."""
    if not isinstance(obj, dict):
        return [("<line>", "expected a JSON object")]
    problems: list[tuple[str, str]] = []
    if not isinstance(obj.get("id"), str) or not obj.get("id"):
        problems.append(("id", "missing or not a non-empty string"))
    text = obj.get("text")
    if not isinstance(text, str):
        return problems + [("text", "missing or not a string")]
    if not text.strip():
        return problems + [("text", "empty: a gold line holds a sentence")]
    if "meta" in obj and not isinstance(obj["meta"], dict):
        problems.append(("meta", "must be an object"))
    entities = obj.get("entities", [])
    relations = obj.get("relations", [])
    if not isinstance(entities, list):
        return problems + [("entities", "must be a list")]
    if not isinstance(relations, list):
        return problems + [("relations", "must be a list")]
    labels = _check_entities(entities, text, schema, problems)
    _check_relations(relations, labels, schema, problems)
    return problems


def _check_entities(
    entities: list[Any], text: str, schema: Schema, problems: list[tuple[str, str]]
) -> dict[str, str]:
    """Check spans; return the label of each entity id, for the relation checks."""
    labels: dict[str, str] = {}
    spans: list[tuple[int, int, str]] = []
    for i, entity in enumerate(entities):
        key = f"entities[{i}]"
        if not isinstance(entity, dict):
            problems.append((key, "expected an object"))
            continue
        entity_id, start, end, label = (entity.get(k) for k in ("id", "start", "end", "label"))
        if not isinstance(entity_id, str) or not entity_id:
            problems.append((f"{key}.id", "missing or not a non-empty string"))
        elif entity_id in labels:
            problems.append((f"{key}.id", f"duplicate entity id {entity_id!r}"))
        else:
            labels[entity_id] = label  # even with a bad span, so its relations are not reported twice
        if label not in schema.entity_labels:
            problems.append((f"{key}.label", f"unknown entity label {label!r} (schema {schema.name}: {', '.join(schema.entity_labels)})"))
        if not _is_int(start) or not _is_int(end):
            problems.append((f"{key}.start", "start and end must be integers"))
            continue
        if not 0 <= start < end <= len(text):
            problems.append((f"{key}.end", f"span [{start}, {end}) out of range for a text of {len(text)} characters"))
            continue
        if "text" in entity and entity["text"] != text[start:end]:
            problems.append((f"{key}.text", f"{entity['text']!r} does not equal text[{start}:{end}] = {text[start:end]!r}"))
        for other_start, other_end, other_id in spans:
            if start < other_end and other_start < end:
                problems.append((key, f"span [{start}, {end}) overlaps entity {other_id!r} [{other_start}, {other_end})"))
        spans.append((start, end, str(entity_id)))
    return labels


def _check_relations(
    relations: list[Any], labels: dict[str, str], schema: Schema, problems: list[tuple[str, str]]
) -> None:
    seen: set[tuple[str, str, str]] = set()
    for i, relation in enumerate(relations):
        key = f"relations[{i}]"
        if not isinstance(relation, dict):
            problems.append((key, "expected an object"))
            continue
        head, tail, label = relation.get("head"), relation.get("tail"), relation.get("label")
        if label not in schema.relation_labels:
            problems.append((f"{key}.label", f"unknown relation label {label!r}"))
            continue
        missing = [f"{end}={value!r}" for end, value in (("head", head), ("tail", tail)) if not isinstance(value, str) or value not in labels]
        if missing:
            problems.append((key, f"refers to no entity of this line: {', '.join(missing)}"))
            continue
        rel = schema.relation(label)
        if head == tail:
            problems.append((key, "head and tail are the same entity"))
        elif not rel.allows(labels[head], labels[tail]):
            problems.append((f"{key}.label", f"{label} does not allow {labels[head]} → {labels[tail]} (allowed: {'|'.join(rel.head)} → {'|'.join(rel.tail)})"))
        pair = tuple(sorted((head, tail))) if rel.symmetric else (head, tail)
        if (pair[0], pair[1], label) in seen:
            problems.append((key, f"duplicate relation {label} {head} → {tail}"))
        seen.add((pair[0], pair[1], label))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
