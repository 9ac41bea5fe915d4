"""Training-time augmentation: mention replacement and case noise keep the gold aligned."""

from __future__ import annotations

import pytest

from veille.annotation.corpus import read_corpus
from veille.annotation.document import Entity, Example, Relation
from veille.annotation.schema import load_schema
from veille.training.augment import AugmentConfig, Augmenter, title_case
from veille.training.config import ConfigError, load_config, parse_settings

SENTENCE = Example(
    "doc-s000",
    "Mistral AI, fondée par Arthur Mensch à Paris, affronte OpenAI ; Mistral AI lève 600 millions d'euros.",
    [Entity("T1", 0, 10, "ORG"), Entity("T2", 23, 36, "PER"), Entity("T3", 39, 44, "LOC"), Entity("T4", 55, 61, "ORG"),
     Entity("T5", 64, 74, "ORG"), Entity("T6", 80, 100, "MONEY")],
    [Relation("T2", "T1", "FOUNDED"), Relation("T1", "T4", "COMPETES_WITH")],
)
POOL = [
    Example("a", "Hugging Face et Aleph Alpha", [Entity("A1", 0, 12, "ORG"), Entity("A2", 16, 27, "ORG")]),
    Example("b", "Léa Nguyen-Dubois à Saint-Étienne", [Entity("B1", 0, 17, "PER"), Entity("B2", 20, 33, "LOC")]),
    Example("c", "Jo Li à Lyon", [Entity("C1", 0, 5, "PER"), Entity("C2", 8, 12, "LOC")]),
]


def _mentions(example: Example) -> list[tuple[str, str]]:
    return [(example.mention(e), e.label) for e in example.entities]


def test_replaced_mentions_come_from_the_pool_and_offsets_slice_back():
    augmenter = Augmenter(AugmentConfig(mention_replacement=1.0), POOL + [SENTENCE], seed=1)
    out = augmenter(SENTENCE)
    pool = {(m, label) for ex in POOL + [SENTENCE] for m, label in _mentions(ex)}
    assert out.text != SENTENCE.text
    assert all(pair in pool for pair in _mentions(out) if pair[1] != "MONEY")
    assert out.mention(out.entities[5]) == "600 millions d'euros"  # amounts are never swapped
    # the same name is replaced the same way everywhere in the sentence; relations keep their ids
    assert out.mention(out.entities[0]) == out.mention(out.entities[4])
    assert out.relations == SENTENCE.relations and [e.id for e in out.entities] == [e.id for e in SENTENCE.entities]
    assert out.text.endswith("lève 600 millions d'euros.")


def test_augmentation_is_a_function_of_seed_epoch_and_id():
    augmenter = Augmenter(AugmentConfig(mention_replacement=0.5, title_case=0.5, upper_case=0.5), POOL + [SENTENCE], seed=3)
    first = [augmenter(SENTENCE).text for _ in range(3)]
    assert len(set(first)) == 1  # no hidden state: a resumed run sees the same sentences
    seen = set()
    for epoch in range(12):
        augmenter.set_epoch(epoch)
        seen.add(augmenter(SENTENCE).text)
    assert len(seen) > 3  # each epoch draws anew


def test_probability_zero_changes_nothing():
    augmenter = Augmenter(AugmentConfig(), POOL + [SENTENCE], seed=1)
    assert not AugmentConfig().active
    assert augmenter(SENTENCE) == SENTENCE


def test_title_case_keeps_every_offset():
    assert title_case("fondée par d'anciens d'OpenAI, 3e levée") == "Fondée Par D'Anciens D'OpenAI, 3e Levée"
    assert title_case("straße") == "Straße"  # length never changes
    out = Augmenter(AugmentConfig(title_case=1.0), [SENTENCE], seed=1)(SENTENCE)
    assert len(out.text) == len(SENTENCE.text)
    assert [m.lower() for m, _ in _mentions(out)] == [m.lower() for m, _ in _mentions(SENTENCE)]
    assert "Lève 600 Millions D'Euros" in out.text


def test_upper_case_writes_one_mention_in_capitals():
    out = Augmenter(AugmentConfig(upper_case=1.0), [SENTENCE], seed=5)(SENTENCE)
    changed = [(a, b) for (a, _), (b, _) in zip(_mentions(SENTENCE), _mentions(out)) if a != b]
    assert len(changed) >= 1 and all(b == a.upper() for a, b in changed)


def test_augmented_corpus_sentences_stay_valid_gold(mini_gold):
    """Every augmented sentence of a real corpus file still aligns its spans to words."""
    schema = load_schema()
    examples = read_corpus([mini_gold], schema)
    augmenter = Augmenter(AugmentConfig(mention_replacement=0.7, title_case=0.3, upper_case=0.3), examples, seed=2)
    for example in examples:
        out = augmenter(example)
        for entity in out.entities:
            assert out.mention(entity) == out.mention(entity).strip() and out.mention(entity)
        assert len(out.entities) == len(example.entities) and out.relations == example.relations


def test_set_overrides_parse_toml_values():
    assert parse_settings(["augment_mentions=0.3", "freeze_layers=2", "base_model=e5-small-offline"]) == {
        "augment_mentions": 0.3, "freeze_layers": 2, "base_model": "e5-small-offline"}
    config = load_config("quick", parse_settings(["augment_title_case=0.1"]))
    assert config.augment_title_case == 0.1
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_settings(["augment_mentions"])
    with pytest.raises(ConfigError, match="unknown key.*augment_mention\\b"):
        load_config("quick", parse_settings(["augment_mention=0.3"]))


def test_training_batches_carry_the_augmented_labels(mini_gold, tiny_base_model):
    """The collator re-encodes each augmented sentence: one B- tag per gold entity, as without augmentation."""
    from transformers import AutoTokenizer

    from veille.models.encoding import bio_labels
    from veille.training.data import TrainingCollator, load_dataset

    schema = load_schema()
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    dataset, examples, _ = load_dataset([mini_gold], schema, tokenizer)
    rows = [dataset[i] for i in range(len(dataset))]
    plain = TrainingCollator(tokenizer, schema, 64, 16)(rows)
    augmenter = Augmenter(AugmentConfig(mention_replacement=1.0, title_case=0.5), examples, seed=4)
    augmented = TrainingCollator(tokenizer, schema, 64, 16, augmenter)(rows)
    begins = [i for i, tag in enumerate(bio_labels(schema)) if tag.startswith("B-")]

    def count_begins(batch):
        return sum(int((batch["word_labels"] == b).sum()) for b in begins)

    assert count_begins(plain) == count_begins(augmented) == sum(len(e.entities) for e in examples)
    assert not (plain["input_ids"].shape == augmented["input_ids"].shape and (plain["input_ids"] == augmented["input_ids"]).all())
    # the gold pairs keep their labels (other candidate pairs may fall either side of the distance caps)
    def gold_targets(batch):
        targets = batch["pair_targets"]
        return sorted(map(tuple, targets[targets.sum(-1) > 0].tolist()))

    assert gold_targets(plain) == gold_targets(augmented) and gold_targets(plain)
