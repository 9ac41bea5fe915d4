"""Inter-annotator agreement: strict entity and relation F1 between annotators on shared tasks.

F1 with one annotator taken as reference is symmetric (precision and recall swap), so
each pair of annotators is scored once; the overall figure sums the counts of all pairs.
The scorer is the one used for model evaluation, so both numbers mean the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from ..document import Example
from ..schema import Schema
from ..scoring import Counts, ScoreReport, score_entities, score_relations
from .convert import annotation_example, has_text, live_annotations
from .shape import check_tasks


@dataclass
class PairScore:
    first: str
    second: str
    tasks: int
    entities: ScoreReport
    relations: ScoreReport


@dataclass
class Agreement:
    pairs: list[PairScore] = field(default_factory=list)
    shared_tasks: int = 0

    @property
    def entities(self) -> ScoreReport:
        return _pooled([p.entities for p in self.pairs])

    @property
    def relations(self) -> ScoreReport:
        return _pooled([p.relations for p in self.pairs])


def annotator(annotation: dict[str, Any], names: dict[int, str] | None = None) -> str:
    """Who made an annotation: the e-mail when known, else the user id."""
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        return str(who.get("email") or who.get("id"))
    return (names or {}).get(who, f"user {who}")


def agreement(tasks: list[dict[str, Any]], schema: Schema, names: dict[int, str] | None = None) -> Agreement:
    """Score every pair of annotators over the tasks both submitted (each one's latest annotation)."""
    by_pair: dict[tuple[str, str], tuple[list[Example], list[Example]]] = {}
    result = Agreement()
    for task in check_tasks(tasks)[0]:  # tasks of a wrong shape are left out (convert reports them)
        if not has_text(task):
            continue  # no sentence to compare annotations on (convert reports these tasks)
        latest: dict[str, Example] = {}
        for annotation in live_annotations(task):
            latest[annotator(annotation, names)] = annotation_example(task, annotation, schema)[0]
        if len(latest) < 2:
            continue
        result.shared_tasks += 1
        for first, second in combinations(sorted(latest), 2):
            left, right = by_pair.setdefault((first, second), ([], []))
            left.append(latest[first])
            right.append(latest[second])
    for (first, second), (left, right) in sorted(by_pair.items()):
        result.pairs.append(
            PairScore(first, second, len(left), score_entities(left, right), score_relations(left, right, schema))
        )
    return result


def _pooled(reports: list[ScoreReport]) -> ScoreReport:
    per_label: dict[str, Counts] = {}
    for report in reports:
        for label, counts in report.per_label.items():
            per_label[label] = per_label.get(label, Counts()) + counts
    return ScoreReport(per_label)
