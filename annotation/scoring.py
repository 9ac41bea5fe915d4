"""Strict span-level scorers for entities and relations, shared by evaluation and agreement.

An entity counts as correct only when its exact character span and its label match
gold (seqeval's entity-level rule: a partial overlap is one false positive plus one
false negative). A relation counts only when its label, both argument spans and
labels, and its direction match gold; a symmetric relation (schema ``symmetric``)
ignores direction. Because scoring compares value tuples, ids never matter.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from .document import Example
from .schema import Schema


@dataclass(frozen=True)
class Counts:
    """True positives, false positives and false negatives of one label (or of all)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def support(self) -> int:
        """Number of gold items."""
        return self.tp + self.fn

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    def to_dict(self) -> dict[str, Any]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "support": self.support,
        }


@dataclass(frozen=True)
class ScoreReport:
    """Per-label counts; micro sums the counts, macro averages per-label scores.

    Like seqeval, the labels are those seen in gold or predictions.
    """

    per_label: dict[str, Counts] = field(default_factory=dict)

    @property
    def micro(self) -> Counts:
        return sum(self.per_label.values(), Counts())

    def macro(self, metric: str) -> float:
        """Unweighted mean of ``precision``, ``recall`` or ``f1`` over labels."""
        if not self.per_label:
            return 0.0
        return sum(getattr(c, metric) for c in self.per_label.values()) / len(self.per_label)

    def to_dict(self) -> dict[str, Any]:
        return {
            "micro": self.micro.to_dict(),
            "macro": {m: round(self.macro(m), 4) for m in ("precision", "recall", "f1")},
            "per_label": {label: c.to_dict() for label, c in sorted(self.per_label.items())},
        }


def score_entities(gold: list[Example], pred: list[Example]) -> ScoreReport:
    """Exact span + label matching, per example id."""
    return _score(gold, pred, entity_keys)


def score_relations(gold: list[Example], pred: list[Example], schema: Schema) -> ScoreReport:
    """Strict end-to-end: label, direction (unless symmetric) and both argument spans+labels."""
    return _score(gold, pred, lambda example: relation_keys(example, schema))


def entity_keys(example: Example) -> list[tuple[str, Hashable]]:
    """What an entity is compared by, one ``(label, key)`` per entity in order (also marks errors in the HTML view)."""
    return [(e.label, e.span()) for e in example.entities]


def relation_keys(example: Example, schema: Schema) -> list[tuple[str, Hashable]]:
    """What a relation is compared by, one ``(label, key)`` per relation in order (argument spans, unordered when symmetric)."""
    spans = {e.id: e.span() for e in example.entities}
    keys: list[tuple[str, Hashable]] = []
    for relation in example.relations:
        args = (spans[relation.head], spans[relation.tail])
        if schema.is_symmetric(relation.label):
            args = tuple(sorted(args))
        keys.append((relation.label, args))
    return keys


def _score(
    gold: list[Example], pred: list[Example], keys: Callable[[Example], list[tuple[str, Hashable]]]
) -> ScoreReport:
    """Match items by example id; a gold example without prediction counts as predicting nothing."""
    pred_by_id = _by_id(pred, "predictions")
    unknown = set(pred_by_id) - {g.id for g in gold}
    if unknown:
        raise ValueError(f"predictions for example ids not in gold: {', '.join(sorted(unknown)[:5])}")
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for example in _by_id(gold, "gold").values():
        gold_items = Counter(keys(example))
        pred_example = pred_by_id.get(example.id)
        pred_items = Counter(keys(pred_example)) if pred_example else Counter()
        _add(tp, gold_items & pred_items)
        _add(fp, pred_items - gold_items)
        _add(fn, gold_items - pred_items)
    labels = set(tp) | set(fp) | set(fn)
    return ScoreReport({label: Counts(tp[label], fp[label], fn[label]) for label in sorted(labels)})


def _add(counter: Counter[str], items: Counter) -> None:
    for (label, _), n in items.items():
        counter[label] += n


def _by_id(examples: list[Example], what: str) -> dict[str, Example]:
    by_id: dict[str, Example] = {}
    for example in examples:
        if example.id in by_id:
            raise ValueError(f"duplicate example id {example.id!r} in {what}")
        by_id[example.id] = example
    return by_id
