"""Gold JSONL → a ``datasets.Dataset`` of encoded sentences → length-grouped, dynamically padded batches."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import Dataset

from veille.annotation.corpus import read_corpus
from veille.annotation.document import Example
from veille.annotation.schema import Schema
from veille.models.batch import Collator, pair_tensors
from veille.models.decoding import build_pairs
from veille.models.encoding import Encoded, encode_example
from veille.models.predicted_pairs import GoldSentence

from .augment import Augmenter


@dataclass(frozen=True)
class UnalignedSpan:
    """A gold entity whose span cuts through a word: left out of the entity loss, and named to the user."""

    example_id: str
    start: int
    end: int
    label: str
    mention: str

    def __str__(self) -> str:
        return f"{self.example_id} [{self.start}, {self.end}) {self.label} {self.mention!r}"


def load_dataset(paths: list[str | Path], schema: Schema, tokenizer) -> tuple[Dataset, list[Example], list[UnalignedSpan]]:
    """Validated examples encoded once; also returns the examples and the gold spans that cut through a word.

    Each example is stored as a JSON string: its free-form ``meta`` may hold values of
    different types on different lines (``page: 1``, ``page: "iv"``), which Arrow columns refuse.
    """
    examples = read_corpus(paths, schema)
    rows = []
    unaligned: list[UnalignedSpan] = []
    for example in examples:
        enc = encode_example(tokenizer, example, schema)
        unaligned.extend(UnalignedSpan(example.id, e.start, e.end, e.label, example.mention(e)) for e in enc.unaligned)
        rows.append(
            {
                "example": json.dumps(example.to_json(with_text=False), ensure_ascii=False),
                "input_ids": enc.input_ids,
                "offsets": enc.offsets,
                "words": enc.words,
                "word_tokens": enc.word_tokens,
                "word_labels": enc.word_labels,
                "entity_tokens": enc.entity_tokens,
                "length": len(enc.input_ids),
            }
        )
    return Dataset.from_list(rows), examples, unaligned


class TrainingCollator:
    """Rows of :func:`load_dataset` → a model batch with gold entity pairs and relation targets.

    The batch also carries its sentences (``sentences``, a list of :class:`GoldSentence`),
    from which the trainer builds the pairs of predicted entities.

    With an :class:`~veille.training.augment.Augmenter`, each sentence is rewritten and
    encoded again (a fast tokenizer takes well under a millisecond a sentence); without
    one, the encoding made once by :func:`load_dataset` is used as is.
    """

    def __init__(self, tokenizer, schema: Schema, max_length: int, stride: int, augment: Augmenter | None = None) -> None:
        self.collate = Collator(tokenizer, max_length, stride)
        self.tokenizer = tokenizer
        self.schema = schema
        self.augment = augment

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor | list[GoldSentence]]:
        sentences, pairs = [], []
        for index, row in enumerate(rows):
            example = Example.from_json(json.loads(row["example"]))
            if self.augment is not None:
                example = self.augment(example)
                enc = encode_example(self.tokenizer, example, self.schema)
                entity_tokens = enc.entity_tokens
            else:
                enc = Encoded(row["input_ids"], [tuple(o) for o in row["offsets"]], [tuple(w) for w in row["words"]], row["word_tokens"], row["word_labels"])
                entity_tokens = [tuple(r) for r in row["entity_tokens"]]
            sentence = GoldSentence(enc, example, entity_tokens)
            pairs.extend(build_pairs(sentence.example.entities, sentence.entity_tokens, self.schema, index, sentence.example.relations))
            sentences.append(sentence)
        return {**self.collate([s.encoded for s in sentences]), **pair_tensors(pairs, len(self.schema.relation_labels)), "sentences": sentences}


class LengthGroupedBatches:
    """Batches of similar lengths (less padding), in a fresh seeded order each epoch.

    Indices are shuffled, cut into pools of 50 batches, each pool sorted by length and cut
    into batches, and the batches shuffled: similar lengths together, random order overall.

    An epoch shows at least ``min_sentences`` sentences: a smaller training set is passed
    over several times, each pass cut into batches on its own (a sentence is never twice in
    one batch). Why: the presets count training in epochs sized for thousands of
    sentences, and 100 sentences at 16 a batch make 7 optimizer steps an epoch, too few to
    learn anything in a preset's 5 epochs (the active-learning simulation's first steps, a
    new domain's first annotations), while the dev evaluation, the checkpoints and early
    stopping stay once an epoch.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, min_sentences: int = 0) -> None:
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.passes = max(1, -(-min_sentences // max(len(lengths), 1)))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed * 1000 + self.epoch)
        pool = self.batch_size * 50
        batches = []
        for _ in range(self.passes):
            order = list(range(len(self.lengths)))
            rng.shuffle(order)
            for start in range(0, len(order), pool):
                chunk = sorted(order[start : start + pool], key=self.lengths.__getitem__, reverse=True)
                batches.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        rng.shuffle(batches)
        return iter(batches)

    def __len__(self) -> int:
        return self.passes * -(-len(self.lengths) // self.batch_size)
