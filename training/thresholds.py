"""Per-label relation thresholds, tuned on dev predictions at the end of each improving epoch.

One threshold for every label suits none of them: a frequent, well-learnt label is
precise at 0.5 while a rare one needs less confidence to be found at all. For each
label, the threshold of a grid that maximises that label's strict end-to-end dev F1
is kept; ties go to the threshold nearest 0.5 (the untuned default), and the grid is
bounded, so a label dev barely shows cannot get a threshold that accepts everything.
Only the dev split may be used: the seed and test splits stay held out.
"""

from __future__ import annotations

from dataclasses import replace

from veille.annotation.document import Example
from veille.annotation.schema import Schema
from veille.annotation.scoring import score_relations
from veille.models.predictor import DEFAULT_RELATION_THRESHOLD

GRID = tuple(round(0.2 + 0.05 * i, 2) for i in range(15))  # 0.2 … 0.9
FLOOR = GRID[0]  # predictions to tune on are decoded at this threshold, so every grid value can be applied after


def tune_thresholds(gold: list[Example], predicted: list[Example], schema: Schema, grid: tuple[float, ...] = GRID) -> dict[str, float]:
    """The best grid threshold of each relation label; ``predicted`` holds every relation scored at least ``min(grid)``."""
    f1 = {threshold: score_relations(gold, keep_relations(predicted, dict.fromkeys(schema.relation_labels, threshold)), schema).per_label for threshold in grid}
    return {
        label: max(grid, key=lambda t: (round(f1[t][label].f1, 9) if label in f1[t] else 0.0, -abs(t - DEFAULT_RELATION_THRESHOLD)))
        for label in schema.relation_labels
    }


def keep_relations(examples: list[Example], thresholds: dict[str, float]) -> list[Example]:
    """The examples with only the relations whose score reaches their label's threshold."""
    return [replace(e, relations=[r for r in e.relations if r.score is not None and r.score >= thresholds[r.label]]) for e in examples]
