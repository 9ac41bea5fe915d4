"""The strict scorers, against seqeval on BIO sequences and against hand-computed examples."""

from __future__ import annotations

import random

import pytest
from seqeval.metrics import classification_report

from veille.annotation.document import Entity, Example, Relation
from veille.annotation.schema import load_schema
from veille.annotation.scoring import Counts, score_entities, score_relations

SCHEMA = load_schema()
TEXT = "Meta rachète Scale AI et concurrence OpenAI à Menlo Park"
#       0    5       13       22 25          37     44 46


def ents(*spans: tuple[int, int, str]) -> list[Entity]:
    return [Entity(f"T{i}", s, e, label) for i, (s, e, label) in enumerate(spans, start=1)]


def example(entities: list[Entity], relations: list[Relation] = (), id: str = "x") -> Example:
    return Example(id, TEXT, list(entities), list(relations))


def test_partial_overlap_is_one_false_positive_and_one_false_negative():
    gold = [example(ents((0, 4, "ORG"), (13, 21, "ORG")))]
    pred = [example(ents((0, 4, "ORG"), (13, 18, "ORG")))]  # « Scale » instead of « Scale AI »
    report = score_entities(gold, pred)
    assert report.per_label["ORG"] == Counts(tp=1, fp=1, fn=1)
    assert report.micro.precision == 0.5 and report.micro.recall == 0.5


def test_wrong_label_counts_against_both_labels_and_macro_averages_labels():
    gold = [example(ents((0, 4, "ORG"), (46, 56, "LOC")))]
    pred = [example(ents((0, 4, "ORG"), (46, 56, "ORG")))]
    report = score_entities(gold, pred)
    assert report.per_label == {"ORG": Counts(1, 1, 0), "LOC": Counts(0, 0, 1)}
    # ORG: P=1/2 R=1 F1=2/3 ; LOC: 0 → macro F1 = 1/3 ; micro P=R=1/2
    assert report.macro("f1") == pytest.approx(1 / 3)
    assert report.micro.f1 == pytest.approx(0.5)


def test_missing_prediction_counts_as_empty_and_unknown_ids_are_refused():
    gold = [example(ents((0, 4, "ORG")), id="a"), example(ents((0, 4, "ORG")), id="b")]
    report = score_entities(gold, [example(ents((0, 4, "ORG")), id="a")])
    assert report.per_label["ORG"] == Counts(1, 0, 1)
    with pytest.raises(ValueError, match="zzz"):
        score_entities(gold, [example([], id="zzz")])


def test_symmetric_relation_ignores_direction_but_others_do_not():
    entities = ents((0, 4, "ORG"), (13, 21, "ORG"), (37, 43, "ORG"))
    gold = [example(entities, [Relation("T1", "T3", "COMPETES_WITH"), Relation("T1", "T2", "ACQUIRES")])]
    pred = [example(entities, [Relation("T3", "T1", "COMPETES_WITH"), Relation("T2", "T1", "ACQUIRES")])]
    report = score_relations(gold, pred, SCHEMA)
    assert report.per_label == {"COMPETES_WITH": Counts(1, 0, 0), "ACQUIRES": Counts(0, 1, 1)}


def test_relation_needs_exact_argument_spans_and_labels_not_ids():
    gold_entities = ents((0, 4, "ORG"), (13, 21, "ORG"))
    gold = [example(gold_entities, [Relation("T1", "T2", "ACQUIRES")])]
    # Same spans under other ids: correct.  Tail span cut short: wrong even though the label matches.
    renamed = [Entity("E9", 13, 21, "ORG"), Entity("E3", 0, 4, "ORG")]
    assert score_relations(gold, [example(renamed, [Relation("E3", "E9", "ACQUIRES")])], SCHEMA).micro == Counts(1, 0, 0)
    partial = ents((0, 4, "ORG"), (13, 18, "ORG"))
    assert score_relations(gold, [example(partial, [Relation("T1", "T2", "ACQUIRES")])], SCHEMA).micro == Counts(0, 1, 1)
    relabelled = ents((0, 4, "ORG"), (13, 21, "PRODUCT"))
    assert score_relations(gold, [example(relabelled, [Relation("T1", "T2", "ACQUIRES")])], SCHEMA).micro == Counts(0, 1, 1)


def test_empty_everything_scores_zero_without_dividing_by_zero():
    report = score_entities([example([])], [example([])])
    assert report.per_label == {} and report.micro.f1 == 0.0 and report.macro("f1") == 0.0
    assert report.to_dict()["micro"]["support"] == 0


def _random_bio(rng: random.Random, n_tokens: int) -> tuple[list[str], list[tuple[int, int, str]]]:
    """A BIO sequence over tokens and the same entities as (first token, last token + 1, label)."""
    tags, spans, i = ["O"] * n_tokens, [], 0
    while i < n_tokens:
        if rng.random() < 0.35:
            length = min(rng.randint(1, 3), n_tokens - i)
            label = rng.choice(["PER", "ORG", "LOC"])
            tags[i : i + length] = [f"B-{label}"] + [f"I-{label}"] * (length - 1)
            spans.append((i, i + length, label))
            i += length
        i += 1
    return tags, spans


def test_agrees_with_seqeval_on_random_bio_sequences():
    rng = random.Random(7)
    gold_tags, pred_tags, gold, pred = [], [], [], []
    for n in range(60):
        length = rng.randint(3, 12)
        g_tags, g_spans = _random_bio(rng, length)
        # Predictions: the gold spans perturbed (dropped, relabelled, shifted) plus random ones.
        p_tags, p_spans = _random_bio(rng, length) if rng.random() < 0.4 else (g_tags, g_spans)
        gold_tags.append(g_tags)
        pred_tags.append(p_tags)
        gold.append(Example(str(n), "", ents(*g_spans)))
        pred.append(Example(str(n), "", ents(*p_spans)))
    reference = classification_report(gold_tags, pred_tags, output_dict=True, zero_division=0)
    report = score_entities(gold, pred)
    for label, counts in report.per_label.items():
        assert counts.precision == pytest.approx(reference[label]["precision"])
        assert counts.recall == pytest.approx(reference[label]["recall"])
        assert counts.support == reference[label]["support"]
    assert report.micro.f1 == pytest.approx(reference["micro avg"]["f1-score"])
    assert report.macro("f1") == pytest.approx(reference["macro avg"]["f1-score"])
    assert 0.3 < report.micro.f1 < 1.0  # the perturbations really produce errors
