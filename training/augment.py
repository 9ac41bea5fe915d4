"""Training-time augmentation: mention replacement and case noise, offsets recomputed.

Two ways a model trained on a few thousand sentences over-fits its corpus:

- it learns the *names* (« Mistral AI » is ORG because it was ORG in training) instead of
  the contexts, so unseen names in other registers fail. Replacing a mention by another
  mention of the same label from the training corpus keeps the context and changes the
  name, so the context has to carry the decision;
- it learns that capitals mean a name, so title-case headlines (« Mistral AI Lève 600
  Millions D'Euros ») and words in capitals look like entities everywhere. Title-casing a
  whole sentence now and then, or upper-casing one mention, teaches it otherwise.

Both are drawn from a generator seeded by (seed, epoch, example id): the same epoch of
the same run sees the same sentences, so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from veille.annotation.document import Entity, Example

# Labels whose mentions are names: swapping one for another keeps the sentence true to
# the scheme. Amounts, dates, percentages and roles are left alone (their wording is
# what the head learns, and a swapped amount could break a relation's sense).
REPLACEABLE = ("PER", "ORG", "LOC", "PRODUCT")


@dataclass(frozen=True)
class AugmentConfig:
    mention_replacement: float = 0.0  # probability of replacing each name mention
    title_case: float = 0.0  # probability of title-casing a whole sentence
    upper_case: float = 0.0  # probability of upper-casing one mention of a sentence

    @property
    def active(self) -> bool:
        return self.mention_replacement > 0 or self.title_case > 0 or self.upper_case > 0


class Augmenter:
    """Rewrites training examples; built once from the training examples (the mention pool)."""

    def __init__(self, config: AugmentConfig, examples: Iterable[Example], seed: int) -> None:
        self.config = config
        self.seed = seed
        self.epoch = 0
        pools: dict[str, set[str]] = {label: set() for label in REPLACEABLE}
        for example in examples:
            for entity in example.entities:
                if entity.label in pools:
                    pools[entity.label].add(example.mention(entity))
        self.pools = {label: sorted(names) for label, names in pools.items() if len(names) > 1}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __call__(self, example: Example) -> Example:
        rng = random.Random(zlib.crc32(f"{self.seed}:{self.epoch}:{example.id}".encode()))
        if self.config.mention_replacement > 0:
            example = self._replace_mentions(example, rng)
        if rng.random() < self.config.title_case:
            example = _recased(example, title_case(example.text))
        if example.entities and rng.random() < self.config.upper_case:
            entity = rng.choice(example.entities)
            upper = example.text[: entity.start] + _same_length_upper(example.mention(entity)) + example.text[entity.end :]
            example = _recased(example, upper)
        return example

    def _replace_mentions(self, example: Example, rng: random.Random) -> Example:
        """Swap name mentions for others of the same label, recomputing every offset after them."""
        replaced: dict[str, str] = {}  # the same string is replaced the same way throughout the sentence
        pieces, entities, cursor, shift = [], [], 0, 0
        for entity in sorted(example.entities, key=lambda e: e.start):
            mention = example.mention(entity)
            new = mention
            pool = self.pools.get(entity.label)
            if pool and (mention in replaced or rng.random() < self.config.mention_replacement):
                new = replaced.setdefault(mention, rng.choice(pool))
            pieces += [example.text[cursor : entity.start], new]
            start = entity.start + shift
            entities.append(Entity(entity.id, start, start + len(new), entity.label))
            shift += len(new) - len(mention)
            cursor = entity.end
        pieces.append(example.text[cursor:])
        by_id = {e.id: e for e in entities}
        return Example(example.id, "".join(pieces), [by_id[e.id] for e in example.entities], list(example.relations), dict(example.meta))


def title_case(text: str) -> str:
    """Every word capitalised, as scraped headlines show them (« Mistral AI Lève 600 Millions »)."""
    chars = list(text)
    for i, char in enumerate(chars):
        if char.isalpha() and (i == 0 or not chars[i - 1].isalnum()):
            chars[i] = _same_length_upper(char)
    return "".join(chars)


def _same_length_upper(text: str) -> str:
    """Upper case that never changes the length (« ß » stays « ß »), so offsets stay valid."""
    return "".join(c.upper() if len(c.upper()) == 1 else c for c in text)


def _recased(example: Example, text: str) -> Example:
    assert len(text) == len(example.text)
    return Example(example.id, text, list(example.entities), list(example.relations), dict(example.meta))
