"""Candidate pairs from the token head's own entities, so the relation head trains on what it meets at inference.

Trained on gold entity pairs only, the relation head never sees a pair whose argument
has a wrong span or type, yet end to end every pair comes from predicted entities
("exposure bias"). After a warm-up, each training batch also gets the pairs of the
entities the token head predicts for it, decoded from the same forward pass without
gradient: a predicted entity whose span and type match a gold entity stands for it (so
a pair of two such entities carries the gold labels), any other entity gets an id no
gold relation refers to (so its pairs are negatives, every target 0). A pair the gold
pairs already hold (same tokens and types: what the head sees) is not added twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from veille.annotation.document import Entity, Example
from veille.annotation.schema import Schema

from .batch import Pair, pair_tensors
from .decoding import build_pairs, decode_entities
from .encoding import Encoded, entity_token_range
from .joint import PairTensors


@dataclass(frozen=True)
class GoldSentence:
    """A training sentence as the pair builders need it: its encoding, its gold example, its entities' token ranges."""

    encoded: Encoded
    example: Example
    entity_tokens: list[tuple[int, int]]


def pairs_of_predictions(word_probs: torch.Tensor, sentence: GoldSentence, row: int, schema: Schema, bio_labels: list[str]) -> list[Pair]:
    """Candidate pairs of the entities decoded from one sentence's word probabilities [words, BIO labels], with targets."""
    words = sentence.encoded.words
    predicted = decode_entities(word_probs[: len(words)], words, sentence.example.text, bio_labels)
    entities = _as_gold(predicted, sentence.example.entities)
    ranges = [entity_token_range(sentence.encoded, entity) for entity in entities]
    return build_pairs(entities, ranges, schema, row, sentence.example.relations)


def predicted_pairs(word_probs: torch.Tensor, sentences: Sequence[GoldSentence], schema: Schema, bio_labels: list[str]) -> list[Pair]:
    """The pairs of predicted entities of a batch [sentences, words, BIO labels] that its gold pairs do not hold."""
    added: list[Pair] = []
    for row, sentence in enumerate(sentences):
        gold = {pair.key() for pair in build_pairs(sentence.example.entities, sentence.entity_tokens, schema, row)}
        added.extend(pair for pair in pairs_of_predictions(word_probs[row], sentence, row, schema, bio_labels) if pair.key() not in gold)
    return added


@dataclass(frozen=True)
class PredictedPairs:
    """The ``extra_pairs`` of :meth:`JointModel.forward` for one training batch: word probabilities → pair tensors."""

    schema: Schema
    bio_labels: list[str]
    sentences: Sequence[GoldSentence]

    def __call__(self, word_probs: torch.Tensor) -> PairTensors:
        return pair_tensors(predicted_pairs(word_probs, self.sentences, self.schema, self.bio_labels), len(self.schema.relation_labels))


def _as_gold(predicted: list[Entity], gold: list[Entity]) -> list[Entity]:
    """Each predicted entity as the gold entity of the same span and type, else under an id no gold relation uses."""
    by_span = {entity.span(): entity for entity in gold}
    return [by_span.get(entity.span(), Entity(f"predicted-{i}", entity.start, entity.end, entity.label)) for i, entity in enumerate(predicted)]
