"""Examples ⇄ Label Studio task and result JSON, both ways, with no server involved.

This module is the contract between the stages: ``veille predict --format labelstudio``
writes tasks with :func:`prediction_task`, ``veille annotate push`` imports them, and
``pull``/``convert`` read annotations back with :func:`results_to_example`.

Label Studio's editor counts offsets in UTF-16 code units (JavaScript strings) while
Python counts code points, so every offset is converted at this boundary: an emoji or
other character outside the BMP would otherwise shift every later span by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..document import Entity, Example, Relation
from ..schema import Schema

FROM_NAME = "label"  # name of the <Labels> control in the generated labelling config
TO_NAME = "text"  # name of the <Text> object, and key of the sentence in task data
RELATION = "relation"
# How far (in characters) a drifted span may be re-anchored to the same text.
REANCHOR_WINDOW = 40
# Task data fields of a suggestion (``veille annotate suggest``): its place in the queue (1 =
# annotate first), the model's margin on the sentence, and the strategy that ranked it.
# Data fields are what Label Studio's Data Manager sorts and filters on.
SUGGEST_RANK, SUGGEST_SCORE, SUGGEST_STRATEGY = "suggest_rank", "suggest_score", "suggest_strategy"
SUGGEST_FIELDS = (SUGGEST_RANK, SUGGEST_SCORE, SUGGEST_STRATEGY)


def utf16_offset(text: str, index: int) -> int:
    """The UTF-16 offset of code-point ``index`` in ``text``."""
    return index + sum(1 for ch in text[:index] if ord(ch) > 0xFFFF)


def codepoint_offset(text: str, utf16_index: int) -> int:
    """The code-point offset of UTF-16 offset ``utf16_index`` (inverse of :func:`utf16_offset`)."""
    units = 0
    for index, ch in enumerate(text):
        if units >= utf16_index:
            return index
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(text) + max(0, utf16_index - units)


def task_data(example: Example) -> dict[str, Any]:
    """The ``data`` of a task: the sentence plus what maps results back to the corpus.

    ``doc``/``start``/``end`` are copied to the top level so that annotators can sort and
    filter by them in the Data Manager; ``meta`` keeps the whole original metadata.
    """
    return {
        TO_NAME: example.text,
        "example": example.id,
        "doc": example.doc,
        "start": example.meta.get("start"),
        "end": example.meta.get("end"),
        "meta": example.meta,
    }


def example_to_results(example: Example, schema: Schema | None = None) -> list[dict[str, Any]]:
    """The Label Studio ``result`` list of an example: one region per entity, then its relations.

    Entity ids become region ids, so that a gold file survives push → pull unchanged.
    Raises ``ValueError`` for a label that ``schema`` (when given) does not define.
    """
    if schema is not None:
        _check_labels(example, schema)
    results: list[dict[str, Any]] = []
    for entity in example.entities:
        region: dict[str, Any] = {
            "id": entity.id,
            "from_name": FROM_NAME,
            "to_name": TO_NAME,
            "type": "labels",
            "value": {
                "start": utf16_offset(example.text, entity.start),
                "end": utf16_offset(example.text, entity.end),
                "text": example.mention(entity),
                "labels": [entity.label],
            },
        }
        if entity.score is not None:
            region["score"] = entity.score
        results.append(region)
    for relation in example.relations:
        link: dict[str, Any] = {
            "from_id": relation.head,
            "to_id": relation.tail,
            "type": RELATION,
            "direction": "right",
            "labels": [relation.label],
        }
        if relation.score is not None:
            link["score"] = relation.score
        results.append(link)
    return results


def prediction_task(example: Example, schema: Schema, model_version: str) -> dict[str, Any]:
    """A full task with the example's spans as a pre-annotation (scores and model version kept).

    The prediction's overall score is the lowest entity score, so that sorting tasks by it
    in Label Studio puts the least certain sentences first (1.0 when nothing was found).
    """
    scores = [e.score for e in example.entities if e.score is not None]
    return {
        "data": task_data(example),
        "predictions": [
            {
                "model_version": model_version,
                "score": min(scores) if scores else 1.0,
                "result": example_to_results(example, schema),
            }
        ],
    }


def suggestion_task(example: Example, schema: Schema, model_version: str, rank: int, margin: float, strategy: str) -> dict[str, Any]:
    """A :func:`prediction_task` that also carries its rank, for a queue sorted by usefulness.

    The prediction's score becomes the sentence's margin (lowest: least sure), so sorting by
    prediction score and sorting by ``suggest_rank`` both put the most useful tasks first
    under the uncertainty strategy.
    """
    task = prediction_task(example, schema, model_version)
    task["data"].update({SUGGEST_RANK: rank, SUGGEST_SCORE: round(margin, 4), SUGGEST_STRATEGY: strategy})
    task["predictions"][0]["score"] = round(margin, 4)
    return task


def gold_task(example: Example, schema: Schema) -> dict[str, Any]:
    """A full task carrying the example's gold spans and relations as an annotation."""
    return {"data": task_data(example), "annotations": [{"result": example_to_results(example, schema)}]}


def task_example(data: dict[str, Any]) -> Example:
    """The bare example (no annotation) a task was made from, read back from its ``data``."""
    meta = data.get("meta")
    if not isinstance(meta, dict):
        meta = {key: data[key] for key in ("doc", "start", "end") if data.get(key) is not None}
    return Example(id=str(data["example"]), text=data[TO_NAME], meta=dict(meta))


@dataclass(frozen=True)
class Issue:
    """Something found while reading results: fixed (a re-anchored span) or dropped."""

    where: str
    message: str
    dropped: bool = True

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def results_to_example(
    data: dict[str, Any], results: list[dict[str, Any]], schema: Schema, where: str = "task"
) -> tuple[Example, list[Issue]]:
    """Read one annotation back into an example, checking every span and relation.

    Drifted spans (the region's text is no longer at its offsets) are re-anchored when
    the same text occurs exactly once nearby; anything that cannot be trusted (unknown
    label, lost span, relation to a missing region, type constraint broken) is left out
    and reported as an :class:`Issue`, never dropped silently.
    """
    example = task_example(data)
    issues: list[Issue] = []
    entities: dict[str, Entity] = {}
    links: list[tuple[str, dict[str, Any]]] = []
    for index, result in enumerate(results):
        key = f"{where} result[{index}]"
        kind = result.get("type") if isinstance(result, dict) else None
        if kind == RELATION:
            links.append((key, result))
        elif kind == "labels":
            entity = _read_region(example.text, result, schema, key, issues)
            if entity is not None:
                if entity.id in entities:
                    issues.append(Issue(key, f"region {entity.id}: an earlier region has the same id; kept this one, dropped the earlier"))
                entities[entity.id] = entity
        else:
            issues.append(Issue(key, f"result of type {kind!r} is not part of the schema's config"))
    example.entities = list(entities.values())
    seen: set[tuple[str, str, str]] = set()
    for key, link in links:
        relation = _read_relation(link, entities, schema, key, issues)
        if relation is None:
            continue
        pair = sorted((relation.head, relation.tail)) if schema.is_symmetric(relation.label) else [relation.head, relation.tail]
        if (pair[0], pair[1], relation.label) in seen:
            issues.append(Issue(key, f"duplicate relation {relation.label} {relation.head} → {relation.tail}"))
            continue
        seen.add((pair[0], pair[1], relation.label))
        example.relations.append(relation)
    return example, issues


def _read_region(text: str, result: dict[str, Any], schema: Schema, key: str, issues: list[Issue]) -> Entity | None:
    value = result.get("value") if isinstance(result.get("value"), dict) else {}
    labels = value.get("labels") or []
    region_id = str(result.get("id") or "")
    if not region_id:
        issues.append(Issue(key, "region without an id"))
        return None
    if result.get("from_name", FROM_NAME) != FROM_NAME or result.get("to_name", TO_NAME) != TO_NAME:
        issues.append(Issue(key, f"region {region_id}: drawn with {result.get('from_name')!r} on {result.get('to_name')!r}, not this config's {FROM_NAME!r} on {TO_NAME!r}"))
        return None
    if len(labels) != 1 or labels[0] not in schema.entity_labels:
        issues.append(Issue(key, f"region {region_id}: needs exactly one label of {', '.join(schema.entity_labels)}, got {labels}"))
        return None
    start, end, mention = value.get("start"), value.get("end"), value.get("text")
    if not isinstance(start, int) or not isinstance(end, int):
        issues.append(Issue(key, f"region {region_id}: start/end missing or not integers"))
        return None
    start, end = codepoint_offset(text, start), codepoint_offset(text, end)
    if mention is None:
        mention = text[start:end]
    if text[start:end] != mention or not mention:
        anchored = reanchor(text, mention, start)
        if anchored is None:
            issues.append(Issue(key, f"region {region_id}: {mention!r} is not at [{start}, {end}) (found {text[start:end]!r}) and not found once nearby"))
            return None
        issues.append(Issue(key, f"region {region_id}: {mention!r} re-anchored from [{start}, {end}) to [{anchored}, {anchored + len(mention)})", dropped=False))
        start, end = anchored, anchored + len(mention)
    return Entity(region_id, start, end, labels[0], result.get("score"))


def reanchor(text: str, mention: str, start: int, window: int = REANCHOR_WINDOW) -> int | None:
    """The start of the only occurrence of ``mention`` within ``window`` characters of ``start``."""
    if not mention:
        return None
    found = []
    position = text.find(mention, max(0, start - window))
    while position != -1 and position <= start + window:
        found.append(position)
        position = text.find(mention, position + 1)
    return found[0] if len(found) == 1 else None


def _read_relation(
    link: dict[str, Any], entities: dict[str, Entity], schema: Schema, key: str, issues: list[Issue]
) -> Relation | None:
    head, tail = str(link.get("from_id")), str(link.get("to_id"))
    labels = link.get("labels") or []
    if len(labels) != 1 or labels[0] not in schema.relation_labels:
        issues.append(Issue(key, f"relation {head} → {tail}: needs exactly one label of the schema, got {labels}"))
        return None
    label = labels[0]
    missing = [end for end in (head, tail) if end not in entities]
    if missing:
        issues.append(Issue(key, f"relation {label} {head} → {tail}: no kept region {', '.join(missing)}"))
        return None
    direction = link.get("direction", "right")
    if direction == "left":
        head, tail = tail, head
    elif direction == "bi" and not schema.is_symmetric(label):
        issues.append(Issue(key, f"relation {label} {head} ↔ {tail}: drawn both ways but {label} is directed"))
        return None
    if not schema.relation(label).allows(entities[head].label, entities[tail].label):
        issues.append(Issue(key, f"relation {label} {head} → {tail}: {entities[head].label} → {entities[tail].label} is not allowed"))
        return None
    return Relation(head, tail, label, link.get("score"))


def _check_labels(example: Example, schema: Schema) -> None:
    for entity in example.entities:
        if entity.label not in schema.entity_labels:
            raise ValueError(f"{example.id}: entity {entity.id}: label {entity.label!r} is not in schema {schema.name}")
    for relation in example.relations:
        if relation.label not in schema.relation_labels:
            raise ValueError(f"{example.id}: relation label {relation.label!r} is not in schema {schema.name}")
