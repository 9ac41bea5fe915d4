"""Scoring a model on gold data: entities, relations end-to-end, and relations given gold entities."""

from __future__ import annotations

from dataclasses import dataclass

from veille.annotation.document import Example
from veille.annotation.scoring import ScoreReport, score_entities, score_relations
from veille.models.predictor import Predictor


@dataclass
class Evaluation:
    entities: ScoreReport
    relations: ScoreReport  # strict end-to-end: predicted entities, then relations
    relations_gold_entities: ScoreReport  # relation head alone, on gold entities
    predictions: list[Example]
    sentences: int

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
        }


def evaluate(predictor: Predictor, gold: list[Example], batch_size: int = 32, relation_threshold: float = 0.5) -> Evaluation:
    predicted = predictor.predict([g.text for g in gold], batch_size=batch_size, relation_threshold=relation_threshold)
    predicted = [Example(g.id, p.text, p.entities, p.relations, dict(g.meta)) for g, p in zip(gold, predicted)]
    with_gold_entities = predictor.predict_relations(gold, batch_size=batch_size, relation_threshold=relation_threshold)
    schema = predictor.schema
    return Evaluation(
        entities=score_entities(gold, predicted),
        relations=score_relations(gold, predicted, schema),
        relations_gold_entities=score_relations(gold, with_gold_entities, schema),
        predictions=predicted,
        sentences=len(gold),
    )
