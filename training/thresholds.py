"""Per-label relation thresholds, tuned on dev predictions after each epoch.

One threshold for every label suits none of them: a frequent, well-learnt label is
precise at 0.5 while a rare one may need less confidence to be found at all. For each
label, a value of a bounded grid (so a label dev barely shows never gets a threshold
that accepts everything) that maximises the label's strict end-to-end dev F1 is kept.
Dev F1 per label is noisy (a few dozen relations each), so the chosen value is the one
nearest 0.5 (the untuned default) among those within ``TOLERANCE`` of the best F1: a
threshold moves only for a gain larger than noise. Measured on a quick-preset model by
2-fold cross-validation over dev documents, the plain per-label maximum did worse on the
held-out half than 0.5 for every label (strict F1 0.751 against 0.755); with the tolerance
it matched it (0.754). Only the dev split may be used: the seed and test splits stay held out.
"""

from __future__ import annotations

from dataclasses import replace

from veille.annotation.document import Example
from veille.annotation.schema import Schema
from veille.annotation.scoring import score_relations
from veille.models.predictor import DEFAULT_RELATION_THRESHOLD

GRID = tuple(round(0.2 + 0.05 * i, 2) for i in range(15))  # 0.2 … 0.9
FLOOR = GRID[0]  # predictions to tune on are decoded at this threshold, so every grid value can be applied after
TOLERANCE = 0.02  # dev F1 a threshold other than the one nearest 0.5 must gain


def tune_thresholds(gold: list[Example], predicted: list[Example], schema: Schema, grid: tuple[float, ...] = GRID) -> dict[str, float]:
    """The threshold of each relation label; ``predicted`` holds every relation scored at least ``min(grid)``."""
    per_label = {threshold: score_relations(gold, keep_relations(predicted, dict.fromkeys(schema.relation_labels, threshold)), schema).per_label for threshold in grid}
    thresholds = {}
    for label in schema.relation_labels:
        f1 = {threshold: scores[label].f1 if label in scores else 0.0 for threshold, scores in per_label.items()}
        good = [threshold for threshold in grid if f1[threshold] >= max(f1.values()) - TOLERANCE - 1e-9]
        thresholds[label] = min(good, key=lambda threshold: abs(threshold - DEFAULT_RELATION_THRESHOLD))
    return thresholds


def keep_relations(examples: list[Example], thresholds: dict[str, float]) -> list[Example]:
    """The examples with only the relations whose score reaches their label's threshold."""
    return [replace(e, relations=[r for r in e.relations if r.score is not None and r.score >= thresholds[r.label]]) for e in examples]
