"""Word alignment, BIO labels, windows, span cleaning and pair decoding, on the tiny tokenizer."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from veille.annotation.corpus import read_corpus
from veille.annotation.document import Entity, Example, Relation
from veille.annotation.schema import load_schema
from veille.models.batch import Collator
from veille.models.decoding import build_pairs, clean_span, decode_entities, decode_relations, pair_entities
from veille.models.encoding import IGNORE, Window, bio_labels, encode, encode_example, split_words, windows

SCHEMA = load_schema()
LABELS = bio_labels(SCHEMA)


@pytest.fixture(scope="module")
def tokenizer(tiny_base_model):
    return AutoTokenizer.from_pretrained(tiny_base_model)


def test_words_split_elisions_and_punctuation():
    text = "PDG d'OpenAI, 49 %."
    assert [text[s:e] for s, e in split_words(text)] == ["PDG", "d", "'", "OpenAI", ",", "49", "%", "."]


def test_every_gold_span_of_the_mini_corpus_maps_to_words_and_back(tokenizer, mini_gold):
    """BIO labels on the first token of each word, decoded again, give exactly the gold spans."""
    for example in read_corpus(mini_gold, SCHEMA):
        enc = encode_example(tokenizer, example, SCHEMA)
        assert enc.unaligned == []
        assert all(enc.offsets[t][0] >= s for t, (s, _) in zip(enc.word_tokens, enc.words))
        one_hot = torch.nn.functional.one_hot(torch.tensor(enc.word_labels), len(LABELS)).float()
        decoded = decode_entities(one_hot, enc.words, example.text, LABELS)
        assert [e.span() for e in decoded] == [e.span() for e in example.entities], example.id


def test_a_gold_span_cutting_through_a_word_is_left_out_of_the_loss_and_named(tokenizer):
    """spaCy's ``-``: the words of a span that cannot be tagged on words are ignored, never taught as « O »."""
    text = "Wang rejoint ScaleAI et Meta."
    example = Example("cut-s000", text, [Entity("T1", 0, 4, "PER"), Entity("T2", 13, 18, "ORG"), Entity("T3", 24, 28, "ORG")])
    enc = encode_example(tokenizer, example, SCHEMA)
    words = [text[s:e] for s, e in enc.words]
    assert enc.unaligned == [example.entities[1]]  # « Scale » inside the word « ScaleAI »
    assert enc.word_labels[words.index("ScaleAI")] == IGNORE
    assert LABELS[enc.word_labels[words.index("Wang")]] == "B-PER" and LABELS[enc.word_labels[words.index("Meta")]] == "B-ORG"
    assert LABELS[enc.word_labels[words.index("rejoint")]] == "O"


def test_windows_overlap_and_cover_every_token():
    spans = windows(100, size=30, stride=10)
    assert spans[0].start == 0 and spans[-1].end == 100
    assert all(b.start < a.end for a, b in zip(spans, spans[1:]))  # overlapping
    assert windows(20, size=30, stride=10) == [Window(0, 20)]  # a short sentence is one window


def test_a_long_sentence_is_split_into_windows_and_gathered_back_whole(tokenizer):
    text = " ".join(["Meta rachète Scale AI à Menlo Park pour 14 milliards de dollars."] * 12)
    enc = encode(tokenizer, text)
    collate = Collator(tokenizer, max_length=32, stride=8)
    batch = collate([enc, encode(tokenizer, "Meta.")])
    assert batch["input_ids"].shape[0] > 2 and batch["input_ids"].shape[1] <= 32
    gathered = batch["input_ids"].flatten()[batch["token_index"][0, : len(enc.input_ids)]]
    assert gathered.tolist() == enc.input_ids  # no token lost, none truncated


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("d'OpenAI", "OpenAI"), ("l’Elysée", "Elysée"), ("« Meta »", "Meta"), ("L'Oréal", "L'Oréal"), ("49 %", "49 %"), ("Inc.", "Inc."), (", ", None),
        (".", None), ("« . »", None), ("%", None),  # no letter or digit: no entity
        ("(Meta)", "Meta"), ("[Meta]", "Meta"), ("Microsoft (France)", "Microsoft (France)"),  # a bracket goes only with its pair
    ],
)
def test_clean_span_strips_leading_elisions_and_punctuation(text, expected):
    cleaned = clean_span(text, 0, len(text))
    assert (text[cleaned[0] : cleaned[1]] if cleaned else None) == expected


@pytest.mark.parametrize(
    ("text", "label", "expected"),
    [
        ("des Landes", "LOC", "Landes"), ("en 2021", "DATE", "2021"), ("de l'Ariège", "ORG", "Ariège"), ("de la", "ROLE", None),
        ("La Poste", "ORG", "La Poste"), ("Le Havre", "LOC", "Le Havre"), ("Landes", "LOC", "Landes"),  # a capital is part of the name
        ("des dizaines de millions de dollars", "MONEY", "des dizaines de millions de dollars"), ("de Gaulle", "PER", "de Gaulle"),
        ("des Landes", None, "des Landes"),  # no label: only elisions and punctuation
        ("directrice générale de", "ROLE", "directrice générale"), ("directeur de l'", "ROLE", "directeur"), ("30 et", "MONEY", "30"),  # trailing: every label
        ("Côte d'Ivoire", "LOC", "Côte d'Ivoire"), ("Banque de France", "ORG", "Banque de France"),
    ],
)
def test_clean_span_strips_a_leading_article_or_preposition_the_label_never_keeps(text, label, expected):
    cleaned = clean_span(text, 0, len(text), label)
    assert (text[cleaned[0] : cleaned[1]] if cleaned else None) == expected


@pytest.mark.parametrize(
    ("text", "end", "expected"),
    [
        ("chez Alphabet Inc. et Meta", 17, "Alphabet Inc."),  # the tokenizer glued « Inc. »
        ("chez Dupont S.A. hier", 15, "Dupont S.A."),
        ("fondée en 2024.", 14, "2024"),  # a sentence-final period stays out
        ("rachète Meta.", 12, "Meta"),
    ],
)
def test_clean_span_gives_an_abbreviation_back_its_period(text, end, expected):
    start = text.index(expected.split()[0])
    cleaned = clean_span(text, start, end)
    assert text[cleaned[0] : cleaned[1]] == expected


def test_decoding_opens_a_span_on_a_stray_inside_tag_and_scores_entities():
    text = "Wang rejoint Scale AI"
    words = split_words(text)
    tags = ["B-PER", "O", "I-ORG", "I-ORG"]
    probs = torch.full((4, len(LABELS)), 0.0)
    for row, tag in enumerate(tags):
        probs[row, LABELS.index(tag)] = 0.8
    entities = decode_entities(probs, words, text, LABELS)
    assert [(text[e.start : e.end], e.label, e.id) for e in entities] == [("Wang", "PER", "T1"), ("Scale AI", "ORG", "T2")]
    assert entities[0].score == pytest.approx(0.8)
    assert decode_entities(probs, words, text, LABELS, min_score=0.9) == []


def test_pairs_follow_the_schema_and_symmetric_gold_counts_both_ways():
    entities = [Entity("T1", 0, 4, "ORG"), Entity("T2", 5, 11, "ORG"), Entity("T3", 12, 16, "PER")]
    gold = [Relation("T1", "T2", "COMPETES_WITH")]
    pairs = build_pairs(entities, [(0, 0), (1, 1), (2, 2)], SCHEMA, 0, gold)
    args = pair_entities(entities, SCHEMA)
    assert [(h.id, t.id) for h, t in args] == [("T1", "T2"), ("T2", "T1"), ("T3", "T1"), ("T3", "T2")]  # no ORG → PER relation exists
    competes = SCHEMA.relation_labels.index("COMPETES_WITH")
    assert [p.targets for p in pairs] == [{competes}, {competes}, set(), set()]
    has_role = SCHEMA.relation_labels.index("HAS_ROLE")
    assert not pairs[2].allowed[has_role] and pairs[2].allowed[SCHEMA.relation_labels.index("EMPLOYEE_OF")]


def thresholds(value: float, **per_label: float) -> list[float]:
    return [per_label.get(label, value) for label in SCHEMA.relation_labels]


def test_symmetric_relation_predicted_both_ways_is_kept_once_with_its_best_score():
    entities = [Entity("T1", 0, 4, "ORG"), Entity("T2", 5, 11, "ORG")]
    args = pair_entities(entities, SCHEMA)
    probs = torch.zeros(len(args), len(SCHEMA.relation_labels))
    competes = SCHEMA.relation_labels.index("COMPETES_WITH")
    probs[0, competes] = 0.7
    probs[1, competes] = 0.9
    relations = decode_relations(probs, args, SCHEMA, thresholds(0.5))
    assert [(r.head, r.tail, r.label) for r in relations] == [("T2", "T1", "COMPETES_WITH")]
    assert relations[0].score == pytest.approx(0.9)
    assert decode_relations(probs, args, SCHEMA, thresholds(0.95)) == []


def test_a_pair_gets_every_label_above_its_own_threshold_and_never_a_forbidden_one():
    entities = [Entity("T1", 0, 4, "PER"), Entity("T2", 5, 11, "ORG")]
    args = pair_entities(entities, SCHEMA)
    probs = torch.zeros(len(args), len(SCHEMA.relation_labels))
    founded, employee, former = (SCHEMA.relation_labels.index(label) for label in ("FOUNDED", "EMPLOYEE_OF", "FORMER_EMPLOYEE_OF"))
    probs[0, founded], probs[0, employee], probs[0, former] = 0.6, 0.8, 0.35
    found = decode_relations(probs, args, SCHEMA, thresholds(0.5))
    assert sorted(r.label for r in found) == ["EMPLOYEE_OF", "FOUNDED"]
    found = decode_relations(probs, args, SCHEMA, thresholds(0.5, FOUNDED=0.7, FORMER_EMPLOYEE_OF=0.3))
    assert sorted(r.label for r in found) == ["EMPLOYEE_OF", "FORMER_EMPLOYEE_OF"]
    everything = decode_relations(probs, args, SCHEMA, thresholds(0.0))  # PER → ORG only: no ACQUIRES, no LOCATED_IN
    assert {r.label for r in everything} == set(SCHEMA.allowed_relations("PER", "ORG"))


def test_gold_pairs_keep_every_label_written_for_them():
    entities = [Entity("T1", 0, 13, "PER"), Entity("T2", 41, 51, "ORG")]
    gold = [Relation("T1", "T2", "FOUNDED"), Relation("T1", "T2", "EMPLOYEE_OF")]
    pairs = build_pairs(entities, [(0, 1), (5, 6)], SCHEMA, 0, gold)
    labels = SCHEMA.relation_labels
    assert [{labels[k] for k in p.targets} for p in pairs] == [{"FOUNDED", "EMPLOYEE_OF"}]


def test_binary_searches_agree_with_their_definitions(tokenizer, repo):
    """entity_token_range and best_window (binary searches, for long sentences) against the plain definitions."""
    import random

    from veille.models.encoding import best_window, entity_token_range

    rng = random.Random(5)
    examples = read_corpus(sorted((repo / "annotation" / "corpus").glob("*.jsonl")))[:400]
    texts = [(e.text, e.entities) for e in examples] + [("  Meta\u00a0\u00a0à  Paris  \t 🙂🙂 l'OpenAI  ", [])]
    checked = 0
    for text, gold in texts:
        enc = encode(tokenizer, text)
        starts = [rng.randrange(len(text)) for _ in range(6)]
        for entity in list(gold) + [Entity("r", s, min(len(text), s + rng.randint(1, 20)), "ORG") for s in starts]:
            covered = [i for i, (s, e) in enumerate(enc.offsets) if s < entity.end and e > entity.start]
            if covered:
                assert entity_token_range(enc, entity) == (covered[0], covered[-1])
                checked += 1
    assert checked > 2000
    for n_tokens, size, stride in ((1, 8, 4), (100, 10, 5), (1000, 62, 16), (3000, 254, 64), (500, 9, 2)):
        spans = windows(n_tokens, size, stride)
        for position in range(n_tokens):
            holding = [i for i, w in enumerate(spans) if w.start <= position < w.end]
            expected = max(holding, key=lambda i: min(position - spans[i].start, spans[i].end - 1 - position))
            assert best_window(position, spans) == expected
