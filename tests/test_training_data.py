"""Gold JSONL → training dataset → batches: what the corpus format allows must train."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from veille.annotation.corpus import read_corpus
from veille.annotation.schema import load_schema
from veille.training.data import LengthGroupedBatches, TrainingCollator, UnalignedSpan, load_dataset
from veille.training.trainer import _unaligned_warning

SCHEMA = load_schema()


def line(id: str, text: str, entities: list[tuple[str, str]], meta: dict) -> str:
    """A gold line whose entities are given as (mention, label), offsets found in the text."""
    spans = [{"id": f"T{i}", "start": text.index(m), "end": text.index(m) + len(m), "label": label} for i, (m, label) in enumerate(entities, start=1)]
    return json.dumps({"id": id, "text": text, "entities": spans, "relations": [], "meta": meta}, ensure_ascii=False)


@pytest.fixture(scope="module")
def tokenizer(tiny_base_model):
    return AutoTokenizer.from_pretrained(tiny_base_model)


def test_meta_values_of_different_types_across_lines_train(tmp_path, tokenizer):
    """``corpus validate`` accepts any ``meta``; the Arrow dataset must not choke on ``page: 1`` then ``page: "iv"``."""
    data = tmp_path / "mixed.jsonl"
    data.write_text(
        line("a-s000", "Wang rejoint Meta.", [("Wang", "PER"), ("Meta", "ORG")], {"page": 1, "tags": ["x"]}) + "\n"
        + line("a-s001", "Meta rachète Scale AI.", [("Meta", "ORG")], {"page": "iv", "tags": {"k": 2}}) + "\n",
        encoding="utf-8",
    )
    assert len(read_corpus(data, SCHEMA)) == 2  # valid gold
    dataset, examples, _ = load_dataset([data], SCHEMA, tokenizer)
    batch = TrainingCollator(tokenizer, SCHEMA, 64, 16)([dataset[0], dataset[1]])
    assert [s.example.meta["page"] for s in batch["sentences"]] == [1, "iv"]
    assert [s.example for s in batch["sentences"]] == examples


def test_gold_spans_cutting_through_a_word_are_named_by_sentence_and_span(tmp_path, tokenizer):
    data = tmp_path / "cut.jsonl"
    data.write_text(line("cut-s000", "Wang rejoint ScaleAI.", [("Wang", "PER"), ("Scale", "ORG")], {}) + "\n", encoding="utf-8")
    _, _, unaligned = load_dataset([data], SCHEMA, tokenizer)
    assert unaligned == [UnalignedSpan("cut-s000", 13, 18, "ORG", "Scale")]
    warning = _unaligned_warning(unaligned * 25, "tiny")
    assert warning.startswith("warning: 25 gold span(s) cut through a word")
    assert "cut-s000 [13, 18) ORG 'Scale'" in warning and warning.endswith("… and 5 more")


@pytest.mark.parametrize(("sentences", "min_sentences", "passes"), [(100, 0, 1), (100, 100, 1), (100, 101, 2), (100, 1600, 16), (5000, 1600, 1)])
def test_a_small_training_set_is_passed_over_until_an_epoch_shows_enough_sentences(sentences, min_sentences, passes):
    """Each sentence is seen ``passes`` times an epoch, never twice in one batch; a large set is unchanged."""
    lengths = [(i * 37) % 90 + 5 for i in range(sentences)]
    batches = LengthGroupedBatches(lengths, 16, seed=13, min_sentences=min_sentences)
    for epoch in (0, 1):
        batches.set_epoch(epoch)
        epoch_batches = list(batches)
        assert len(epoch_batches) == len(batches) == passes * -(-sentences // 16)
        seen = [i for batch in epoch_batches for i in batch]
        assert sorted(seen) == sorted(list(range(sentences)) * passes)
        assert all(len(set(batch)) == len(batch) for batch in epoch_batches)
    one_pass = LengthGroupedBatches(lengths, 16, seed=13)
    assert list(one_pass) == list(LengthGroupedBatches(lengths, 16, seed=13, min_sentences=sentences))  # the order of one pass is unchanged
    assert list(batches) == list(batches)  # seeded: an epoch replays (a resumed run)
