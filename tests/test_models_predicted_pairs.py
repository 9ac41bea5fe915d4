"""Pairs of the token head's own entities in the relation loss: exact spans carry gold labels, others are negatives."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from veille.annotation.document import Entity, Example, Relation
from veille.annotation.schema import load_schema
from veille.models.batch import pair_tensors
from veille.models.decoding import build_pairs
from veille.models.encoding import bio_labels, encode_example
from veille.models.joint import JointConfig, JointModel
from veille.models.predicted_pairs import GoldSentence, PredictedPairs, pairs_of_predictions, predicted_pairs

SCHEMA = load_schema()
LABELS = bio_labels(SCHEMA)
TEXT = "Alexandr Wang, PDG de Scale AI, rejoint Meta."
GOLD = Example(
    "mini-s000",
    TEXT,
    [Entity("T1", 0, 13, "PER"), Entity("T2", 15, 18, "ROLE"), Entity("T3", 22, 30, "ORG"), Entity("T4", 40, 44, "ORG")],
    [Relation("T1", "T2", "HAS_ROLE"), Relation("T2", "T3", "ROLE_AT"), Relation("T1", "T4", "EMPLOYEE_OF"), Relation("T1", "T4", "FOUNDED")],
)
# The token head finds « Alexandr Wang » and « Meta » exactly, cuts « Scale AI » to « Scale », misses « PDG ».
TAGS = {"Alexandr": "B-PER", "Wang": "I-PER", "Scale": "B-ORG", "Meta": "B-ORG"}


@pytest.fixture(scope="module")
def tokenizer(tiny_base_model):
    return AutoTokenizer.from_pretrained(tiny_base_model)


@pytest.fixture(scope="module")
def sentence(tokenizer) -> GoldSentence:
    enc = encode_example(tokenizer, GOLD, SCHEMA)
    return GoldSentence(enc, GOLD, enc.entity_tokens)


def word_probs(sentence: GoldSentence) -> torch.Tensor:
    tags = [TAGS.get(TEXT[s:e], "O") for s, e in sentence.encoded.words]
    return torch.nn.functional.one_hot(torch.tensor([LABELS.index(t) for t in tags]), len(LABELS)).float()


def labelled(pairs, sentence: GoldSentence) -> dict[tuple[str, str], set[str]]:
    """Each pair as (head text, tail text), read from its token ranges → its target labels."""
    offsets = sentence.encoded.offsets

    def text(tokens: tuple[int, int]) -> str:
        return TEXT[offsets[tokens[0]][0] : offsets[tokens[1]][1]]

    return {(text(p.head), text(p.tail)): {SCHEMA.relation_labels[k] for k in p.targets} for p in pairs}


def test_an_exact_span_carries_the_gold_labels_and_a_wrong_span_gives_negatives(sentence):
    pairs = pairs_of_predictions(word_probs(sentence), sentence, 0, SCHEMA, LABELS)
    assert labelled(pairs, sentence) == {
        ("Alexandr Wang", "Meta"): {"EMPLOYEE_OF", "FOUNDED"},  # both arguments exact: every gold label of the pair
        ("Alexandr Wang", "Scale"): set(),  # « Scale » is not « Scale AI »: a negative, whatever the gold pair says
        ("Scale", "Meta"): set(),
        ("Meta", "Scale"): set(),
    }


def test_pairs_the_gold_pairs_already_hold_are_not_added_twice(sentence):
    added = predicted_pairs(word_probs(sentence)[None], [sentence], SCHEMA, LABELS)
    gold = {p.key() for p in build_pairs(GOLD.entities, sentence.entity_tokens, SCHEMA, 0, GOLD.relations)}
    assert set(labelled(added, sentence)) == {("Alexandr Wang", "Scale"), ("Scale", "Meta"), ("Meta", "Scale")}
    assert not gold & {p.key() for p in added} and all(p.targets == frozenset() for p in added)


def test_the_model_adds_them_to_the_relation_loss_of_its_forward_pass(tiny_base_model, tokenizer, sentence):
    from veille.models.batch import Collator

    model = JointModel.from_pretrained_encoder(str(tiny_base_model), JointConfig(LABELS, SCHEMA.entity_labels, SCHEMA.relation_labels, max_length=64))
    gold_pairs = build_pairs(GOLD.entities, sentence.entity_tokens, SCHEMA, 0, GOLD.relations)
    batch = {**Collator(tokenizer, 64, 16)([sentence.encoded]), **pair_tensors(gold_pairs, len(SCHEMA.relation_labels))}
    seen = []
    extra = PredictedPairs(SCHEMA, LABELS, [sentence])
    out = model(batch, extra_pairs=lambda probs: seen.append(probs.shape) or extra(word_probs(sentence)[None]))
    assert seen == [(1, len(sentence.encoded.words), len(LABELS))]  # called once, on this pass's word probabilities
    assert out["relation_logits"].shape[0] == len(gold_pairs) + 3 and out["loss"].requires_grad
