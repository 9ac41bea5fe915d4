"""The error analysis on hand-built predictions: one cause per strict error, adding up to the scorer's counts."""

from __future__ import annotations

from veille.annotation.document import Entity, Example, Relation
from veille.annotation.errors import NONE, analyse_errors
from veille.annotation.schema import load_schema
from veille.annotation.scoring import score_entities, score_relations

SCHEMA = load_schema()
TEXT = "Arthur Mensch, directeur général de Mistral AI, rachetée par Google, concurrent de Meta, à Paris."


def entity(id: str, mention: str, label: str) -> Entity:
    start = TEXT.index(mention)
    return Entity(id, start, start + len(mention), label)


GOLD = Example(
    "e-s000",
    TEXT,
    [
        entity("A", "Arthur Mensch", "PER"), entity("R", "directeur général", "ROLE"), entity("M", "Mistral AI", "ORG"),
        entity("G", "Google", "ORG"), entity("X", "Meta", "ORG"), entity("P", "Paris", "LOC"),
    ],
    [
        Relation("A", "R", "HAS_ROLE"), Relation("A", "M", "FOUNDED"), Relation("A", "M", "EMPLOYEE_OF"), Relation("G", "M", "ACQUIRES"),
        Relation("G", "M", "INVESTS_IN"), Relation("G", "X", "COMPETES_WITH"), Relation("M", "P", "LOCATED_IN"),
    ],
)
PREDICTED = Example(
    "e-s000",
    TEXT,
    [
        entity("T1", "Arthur Mensch", "PER"), entity("T2", "directeur", "ROLE"),  # « général » cut off
        entity("T3", "Mistral AI", "ORG"), entity("T4", "Google", "ORG"), entity("T5", "Meta", "ORG"),
        entity("T6", "concurrent", "ORG"),  # « Paris » missed, a common noun taken for an ORG
    ],
    [
        Relation("T1", "T2", "HAS_ROLE"), Relation("T1", "T3", "EMPLOYEE_OF"), Relation("T1", "T3", "FORMER_EMPLOYEE_OF"),
        Relation("T3", "T4", "ACQUIRES"), Relation("T5", "T4", "COMPETES_WITH"), Relation("T4", "T5", "INVESTS_IN"),
        Relation("T4", "T6", "COMPETES_WITH"),
    ],
)


def per_cause(errors) -> dict[str, dict[str, int]]:
    return {cause: dict(labels) for cause, labels in errors.counts.items()}


def test_relation_errors_get_their_cause_on_both_sides():
    report = analyse_errors([GOLD], [PREDICTED], SCHEMA)
    assert per_cause(report.relations_fn) == {
        "argument_span": {"HAS_ROLE": 1},  # « directeur » is not « directeur général »
        "wrong_label": {"FOUNDED": 1},  # the pair got FORMER_EMPLOYEE_OF instead (its EMPLOYEE_OF is right)
        "wrong_direction": {"ACQUIRES": 1},
        "missed": {"INVESTS_IN": 1},  # both arguments right, nothing predicted that way
        "argument_missed": {"LOCATED_IN": 1},  # « Paris » was not found
    }
    assert per_cause(report.relations_fp) == {
        "argument_span": {"HAS_ROLE": 1},
        "wrong_label": {"FORMER_EMPLOYEE_OF": 1},
        "wrong_direction": {"ACQUIRES": 1},
        "spurious": {"INVESTS_IN": 1},  # Google → Meta compete (found, in the other order: symmetric), no investment
        "argument_spurious": {"COMPETES_WITH": 1},  # « concurrent » is no gold entity
    }
    example = report.relations_fn.examples["argument_span"][0]
    assert (example.id, example.text) == ("e-s000", TEXT)
    assert example.detail == "PER « Arthur Mensch » → ROLE « directeur général » HAS_ROLE vs nothing on that pair"


def test_entity_errors_get_their_cause_on_both_sides():
    predicted = Example("e-s000", TEXT, [entity("T1", "Arthur", "PER"), entity("T2", "directeur général", "ORG"), entity("T3", "Mistral", "PER"), entity("T4", "rachetée", "ORG")])
    report = analyse_errors([GOLD], [predicted], SCHEMA)
    assert per_cause(report.entities_fn) == {"boundary": {"PER": 1}, "type": {"ROLE": 1}, "boundary_type": {"ORG": 1}, "missed": {"ORG": 2, "LOC": 1}}
    assert per_cause(report.entities_fp) == {"boundary": {"PER": 1}, "type": {"ORG": 1}, "boundary_type": {"PER": 1}, "spurious": {"ORG": 1}}
    assert report.entities_fn.examples["type"][0].detail == "ROLE « directeur général » vs ORG « directeur général »"
    assert report.entity_confusion == {("PER", "PER"): 1, ("ROLE", "ORG"): 1, ("ORG", "PER"): 1, ("ORG", NONE): 2, ("LOC", NONE): 1, (NONE, "ORG"): 1}


def test_causes_add_up_to_the_strict_scorers_counts_per_label():
    for predicted in (PREDICTED, Example("e-s000", TEXT), Example("e-s000", TEXT, PREDICTED.entities)):
        report = analyse_errors([GOLD], [predicted], SCHEMA)
        for scores, fn, fp in (
            (score_entities([GOLD], [predicted]), report.entities_fn, report.entities_fp),
            (score_relations([GOLD], [predicted], SCHEMA), report.relations_fn, report.relations_fp),
        ):
            for label, counts in scores.per_label.items():
                assert sum(c[label] for c in fn.counts.values()) == counts.fn, label
                assert sum(c[label] for c in fp.counts.values()) == counts.fp, label


def test_relation_confusion_is_read_on_pairs_whose_arguments_are_right():
    confusion = analyse_errors([GOLD], [PREDICTED], SCHEMA).relation_confusion
    assert confusion == {
        ("EMPLOYEE_OF", "EMPLOYEE_OF"): 1, ("FOUNDED", "FORMER_EMPLOYEE_OF"): 1,
        ("ACQUIRES", NONE): 1, ("INVESTS_IN", NONE): 1, (NONE, "ACQUIRES"): 1,  # Google → Mistral AI read the wrong way
        ("COMPETES_WITH", "COMPETES_WITH"): 1, (NONE, "INVESTS_IN"): 1,
    }


def test_examples_are_kept_a_few_per_cause_and_the_json_holds_totals():
    many = [Example(f"e-s{i:03}", TEXT, GOLD.entities) for i in range(5)]
    report = analyse_errors(many, [Example(e.id, TEXT) for e in many], SCHEMA)
    assert report.entities_fn.counts["missed"]["ORG"] == 15 and len(report.entities_fn.examples["missed"]) == 3
    missed = report.to_dict()["entities"]["false_negatives"]["missed"]
    assert missed["total"] == 30 and missed["per_label"]["ORG"] == 15 and missed["examples"][0]["id"] == "e-s000"
