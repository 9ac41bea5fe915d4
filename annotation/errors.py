"""Why predictions differ from gold: each strict false negative and false positive gets one cause.

The strict scorers (:mod:`veille.annotation.scoring`) count errors; this module says
what they are, in the spirit of nervaluate (missed, spurious, wrong type, wrong
boundaries) and spaCy's ``debug data`` (counts per label, a few examples of each).
Both sides follow the same rules: a gold item that was not predicted (a false negative)
is compared with the predictions, a predicted item that is not in gold (a false
positive) with gold. So, per label, the causes of the false negatives add up to the
scorer's FN and those of the false positives to its FP.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from .document import Entity, Example
from .schema import Schema

ENTITY_CAUSES = {
    "type": "same span, another type",
    "boundary": "same type, overlapping span",
    "boundary_type": "overlapping span, another type",
    "missed": "no predicted entity overlaps it",
    "spurious": "overlaps no gold entity",
}
RELATION_CAUSES = {
    "argument_missed": "an argument overlaps no predicted entity",
    "argument_spurious": "an argument overlaps no gold entity",
    "argument_span": "an argument has a wrong span or type",
    "wrong_direction": "the label holds the other way round",
    "wrong_label": "the pair holds another label",
    "missed": "both arguments right, relation not predicted",
    "spurious": "both arguments right, no such relation in gold",
}
NONE = "∅"  # the row or column of a confusion matrix for "no entity / no relation"
EXAMPLES_PER_CAUSE = 3

Span = tuple[int, int, str]
PairLabels = dict[tuple[Span, Span], set[str]]


@dataclass(frozen=True)
class ErrorExample:
    id: str
    text: str
    label: str
    detail: str


@dataclass
class Errors:
    """The false negatives or false positives of one kind: label counts and a few examples per cause."""

    counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    examples: dict[str, list[ErrorExample]] = field(default_factory=lambda: defaultdict(list))

    def add(self, cause: str, example: ErrorExample) -> None:
        self.counts[cause][example.label] += 1
        if len(self.examples[cause]) < EXAMPLES_PER_CAUSE:
            self.examples[cause].append(example)

    def to_dict(self) -> dict[str, Any]:
        return {
            cause: {"total": sum(self.counts[cause].values()), "per_label": dict(sorted(self.counts[cause].items())), "examples": [vars(e) for e in self.examples[cause]]}
            for cause in sorted(self.counts)
        }


@dataclass
class ErrorReport:
    entities_fn: Errors = field(default_factory=Errors)
    entities_fp: Errors = field(default_factory=Errors)
    relations_fn: Errors = field(default_factory=Errors)
    relations_fp: Errors = field(default_factory=Errors)
    entity_confusion: Counter[tuple[str, str]] = field(default_factory=Counter)  # (gold label, label of the overlapping prediction or ∅)
    relation_confusion: Counter[tuple[str, str]] = field(default_factory=Counter)  # (gold, predicted) on pairs whose arguments are both right

    def to_dict(self) -> dict[str, Any]:
        return {
            "causes": {"entities": ENTITY_CAUSES, "relations": RELATION_CAUSES},
            "entities": {"false_negatives": self.entities_fn.to_dict(), "false_positives": self.entities_fp.to_dict(), "confusion": _pairs(self.entity_confusion)},
            "relations": {"false_negatives": self.relations_fn.to_dict(), "false_positives": self.relations_fp.to_dict(), "confusion": _pairs(self.relation_confusion)},
        }


def analyse_errors(gold: list[Example], predicted: list[Example], schema: Schema) -> ErrorReport:
    """Classify every strict error of ``predicted`` against ``gold`` (matched by example id)."""
    by_id = {p.id: p for p in predicted}
    report = ErrorReport()
    for g in gold:
        p = by_id.get(g.id, Example(g.id, g.text))
        _entity_errors(g, p, "missed", report.entities_fn)
        _entity_errors(p, g, "spurious", report.entities_fp)
        _relation_errors(g, p, schema, ("argument_missed", "missed"), report.relations_fn)
        _relation_errors(p, g, schema, ("argument_spurious", "spurious"), report.relations_fp)
        _entity_confusion(g, p, report.entity_confusion)
        _relation_confusion(g, p, schema, report.relation_confusion)
    return report


def _entity_errors(ours: Example, theirs: Example, absent: str, errors: Errors) -> None:
    """The cause of each entity of ``ours`` that ``theirs`` lacks; ``absent`` when nothing of theirs overlaps it."""
    their_spans = {e.span() for e in theirs.entities}
    for entity in ours.entities:
        if entity.span() in their_spans:
            continue
        partner = _partner(entity, theirs.entities)
        if partner is None:
            cause = absent
        elif (partner.start, partner.end) == (entity.start, entity.end):
            cause = "type"
        else:
            cause = "boundary" if partner.label == entity.label else "boundary_type"
        others = ", ".join(_show(theirs, o) for o in theirs.entities if o.overlaps(entity)) or "nothing"
        errors.add(cause, ErrorExample(ours.id, ours.text, entity.label, f"{_show(ours, entity)} vs {others}"))


def _relation_errors(ours: Example, theirs: Example, schema: Schema, absent: tuple[str, str], errors: Errors) -> None:
    """The cause of each relation of ``ours`` that ``theirs`` lacks; ``absent``: (argument absent, relation absent)."""
    our_labels, their_labels = _pair_labels(ours, schema), _pair_labels(theirs, schema)
    their_spans = {e.span() for e in theirs.entities}
    for relation in ours.relations:
        head, tail = ours.entity(relation.head), ours.entity(relation.tail)
        key = (head.span(), tail.span())
        if relation.label in their_labels.get(key, ()):
            continue
        if any(_partner(argument, theirs.entities) is None for argument in (head, tail)):
            cause = absent[0]
        elif head.span() not in their_spans or tail.span() not in their_spans:
            cause = "argument_span"
        elif relation.label in their_labels.get(key[::-1], ()):
            cause = "wrong_direction"
        elif their_labels.get(key, set()) - our_labels[key]:
            cause = "wrong_label"
        else:
            cause = absent[1]
        other = ", ".join(sorted(their_labels.get(key, ()))) or "nothing"
        detail = f"{_show(ours, head)} → {_show(ours, tail)} {relation.label} vs {other} on that pair"
        errors.add(cause, ErrorExample(ours.id, ours.text, relation.label, detail))


def _entity_confusion(gold: Example, predicted: Example, confusion: Counter[tuple[str, str]]) -> None:
    """Gold label × label of the prediction that stands for it (∅: none); spurious predictions in the ∅ row."""
    for entity in gold.entities:
        partner = _partner(entity, predicted.entities)
        confusion[(entity.label, partner.label if partner else NONE)] += 1
    for entity in predicted.entities:
        if _partner(entity, gold.entities) is None:
            confusion[(NONE, entity.label)] += 1


def _relation_confusion(gold: Example, predicted: Example, schema: Schema, confusion: Counter[tuple[str, str]]) -> None:
    """Gold × predicted relation labels on the pairs whose two arguments are right on both sides (∅: no relation)."""
    found = {e.span() for e in gold.entities} & {e.span() for e in predicted.entities}
    gold_labels, predicted_labels = _pair_labels(gold, schema, both_ways=False), _pair_labels(predicted, schema, both_ways=False)
    for key in sorted(set(gold_labels) | set(predicted_labels)):
        if key[0] not in found or key[1] not in found:
            continue
        g, p = gold_labels.get(key, set()), predicted_labels.get(key, set())
        for label in g & p:
            confusion[(label, label)] += 1
        for label in g - p:
            for other in sorted(p - g) or [NONE]:
                confusion[(label, other)] += 1
        if not g - p:  # otherwise each extra predicted label was counted against a missing gold one
            for other in p - g:
                confusion[(NONE, other)] += 1


def _partner(entity: Entity, others: list[Entity]) -> Entity | None:
    """The entity of ``others`` that stands for ``entity``: same span, else same label and overlapping, else overlapping."""
    overlapping = [o for o in others if o.overlaps(entity)]
    same_span = [o for o in overlapping if (o.start, o.end) == (entity.start, entity.end)]
    same_label = [o for o in overlapping if o.label == entity.label]
    return next(iter(same_span + same_label + overlapping), None)


def _pair_labels(example: Example, schema: Schema, both_ways: bool = True) -> PairLabels:
    """Relation labels per (head span, tail span); a symmetric label under both orders, or under the sorted one."""
    labels: PairLabels = defaultdict(set)
    for relation in example.relations:
        key = (example.entity(relation.head).span(), example.entity(relation.tail).span())
        if schema.is_symmetric(relation.label):
            keys = [key, key[::-1]] if both_ways else [tuple(sorted(key))]
        else:
            keys = [key]
        for k in keys:
            labels[k].add(relation.label)
    return labels


def _show(example: Example, entity: Entity) -> str:
    return f"{entity.label} « {example.mention(entity)} »"


def _pairs(confusion: Counter[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"gold": g, "predicted": p, "count": n} for (g, p), n in sorted(confusion.items())]
