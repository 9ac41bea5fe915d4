"""Scoring a model on gold data: entities, relations end-to-end, and relations given gold entities."""

from __future__ import annotations

from dataclasses import dataclass

from tqdm.auto import tqdm

from veille.annotation.console import progress_interval
from veille.annotation.document import Example
from veille.annotation.schema import Schema
from veille.annotation.scoring import ScoreReport, score_entities, score_relations
from veille.models.predictor import Predictor

from .thresholds import FLOOR, keep_relations, tune_thresholds

PROGRESS_CHUNK = 512  # sentences per predictor call: long enough to batch well, short enough to show progress


@dataclass
class Evaluation:
    entities: ScoreReport
    relations: ScoreReport  # strict end-to-end: predicted entities, then relations
    relations_gold_entities: ScoreReport  # relation head alone, on gold entities
    predictions: list[Example]
    sentences: int
    relation_thresholds: dict[str, float]  # the threshold each relation label was predicted with

    @property
    def score(self) -> float:
        """What model selection maximises: the mean of entity and strict relation micro F1."""
        return (self.entities.micro.f1 + self.relations.micro.f1) / 2

    def to_dict(self) -> dict:
        return {
            "sentences": self.sentences,
            "score": round(self.score, 4),
            "entities": self.entities.to_dict(),
            "relations": self.relations.to_dict(),
            "relations_gold_entities": self.relations_gold_entities.to_dict(),
            "relation_thresholds": self.relation_thresholds,
        }


def evaluate(predictor: Predictor, gold: list[Example], batch_size: int = 32, relation_threshold: float | None = None, progress: bool = False) -> Evaluation:
    """Score the model as it predicts: with its per-label thresholds, or ``relation_threshold`` for every label."""
    thresholds = dict.fromkeys(predictor.schema.relation_labels, relation_threshold) if relation_threshold is not None else predictor.relation_thresholds
    return _scored(predictor.schema, gold, *_predict(predictor, gold, batch_size, relation_threshold, progress), thresholds)


def tune_and_evaluate(predictor: Predictor, dev: list[Example], batch_size: int = 32) -> Evaluation:
    """Tune each relation label's threshold on ``dev`` (never a seed or test split), then score with them."""
    predicted, with_gold_entities = _predict(predictor, dev, batch_size, FLOOR)
    thresholds = tune_thresholds(dev, predicted, predictor.schema)
    return _scored(predictor.schema, dev, keep_relations(predicted, thresholds), keep_relations(with_gold_entities, thresholds), thresholds)


def _predict(predictor: Predictor, gold: list[Example], batch_size: int, relation_threshold: float | None, progress: bool = False) -> tuple[list[Example], list[Example]]:
    """End-to-end predictions (under the gold ids and meta) and relations predicted between the gold entities.

    Sentences go through in chunks of ``PROGRESS_CHUNK`` so a long evaluation shows progress.
    """
    predicted, with_gold_entities = [], []
    with tqdm(total=len(gold), desc="evaluate", unit=" sentences", disable=not progress, leave=False, mininterval=progress_interval()) as bar:
        for start in range(0, len(gold), PROGRESS_CHUNK):
            chunk = gold[start : start + PROGRESS_CHUNK]
            found = predictor.predict([g.text for g in chunk], batch_size=batch_size, relation_threshold=relation_threshold)
            predicted += [Example(g.id, p.text, p.entities, p.relations, dict(g.meta)) for g, p in zip(chunk, found)]
            with_gold_entities += predictor.predict_relations(chunk, batch_size=batch_size, relation_threshold=relation_threshold)
            bar.update(len(chunk))
    return predicted, with_gold_entities


def _scored(schema: Schema, gold: list[Example], predicted: list[Example], with_gold_entities: list[Example], thresholds: dict[str, float]) -> Evaluation:
    return Evaluation(
        entities=score_entities(gold, predicted),
        relations=score_relations(gold, predicted, schema),
        relations_gold_entities=score_relations(gold, with_gold_entities, schema),
        predictions=predicted,
        sentences=len(gold),
        relation_thresholds=thresholds,
    )
