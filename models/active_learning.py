"""Active learning's ranking core: which sentences annotating would teach the model the most.

Shared by ``veille annotate suggest`` (serving: real unlabelled articles) and the
learning-curve simulation (training: the train split plays the pool), so the benchmark
measures exactly the ranking annotators get; it lives in the models stage because both
of those stages may import it and neither may import the other.

Each sentence of the pool is predicted once; its *margin* is its least certain decision
(:class:`veille.models.predictor.Margins`): the smallest gap between the best and second
BIO tag of a word, or the smallest distance of a candidate pair's best relation score to
that label's threshold. Strategies:

- ``uncertainty``: lowest margin first;
- ``diverse``: among the most uncertain, each next sentence is the one whose uncertainty
  times its distance to those already chosen is highest, so a batch covers more situations
  than one kind of hard sentence repeated;
- ``random``: a seeded draw, the baseline every strategy must beat (the learning curve).

Whatever the strategy, no two chosen sentences are near-duplicates (word sets, digits
masked, Jaccard ≥ ``similarity``), a document gives at most ``per_document`` sentences, and
a sentence already in the given gold is never chosen.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from veille.annotation.document import Example

STRATEGIES = ("uncertainty", "diverse", "random")
DEFAULT_PER_DOCUMENT = 5
DEFAULT_SIMILARITY = 0.8
DIVERSE_POOL = 10  # `diverse` picks among the 10 × n most uncertain: uncertainty first, spread second


@dataclass(frozen=True)
class Selection:
    """How many sentences to choose, and how (see the module docstring)."""

    n: int = 200
    strategy: str = "uncertainty"
    per_document: int = DEFAULT_PER_DOCUMENT
    similarity: float = DEFAULT_SIMILARITY  # word-set Jaccard from which two sentences are near-duplicates
    seed: int = 13  # the `random` draw


@dataclass(frozen=True)
class Candidate:
    """A predicted sentence of the pool (its id and meta kept) and the model's margin on it."""

    example: Example
    margin: float
    words: frozenset[str]


def words(text: str) -> frozenset[str]:
    """What near-duplicate checks compare: lower-cased words, digits masked (« 40 M€ » ≈ « 50 M€ »)."""
    return frozenset(re.findall(r"\w+", re.sub(r"\d", "0", text.lower())))


def jaccard(first: frozenset[str], second: frozenset[str]) -> float:
    return len(first & second) / len(first | second) if first or second else 1.0


def score_sentences(predictor, sentences: list[Example], batch_size: int = 32, chunk_sentences: int = 1024) -> Iterator[Candidate]:
    """Each sentence predicted with its margin (id and meta kept, any gold ignored), ``chunk_sentences`` per predictor call."""
    for start in range(0, len(sentences), chunk_sentences):
        chunk = sentences[start : start + chunk_sentences]
        predicted = predictor.predict_with_margins([s.text for s in chunk], batch_size=batch_size)
        for sentence, (example, margins) in zip(chunk, predicted, strict=True):
            found = Example(sentence.id, sentence.text, example.entities, example.relations, dict(sentence.meta))
            yield Candidate(found, margins.lowest, words(sentence.text))


def unscored(sentences: Iterable[Example]) -> list[Candidate]:
    """Sentences as candidates without a prediction: all the ``random`` strategy needs (margin 1, its gold hidden)."""
    return [Candidate(Example(s.id, s.text, meta=dict(s.meta)), 1.0, words(s.text)) for s in sentences]


def select(candidates: Iterable[Candidate], options: Selection, gold_texts: Iterable[str] = ()) -> list[Candidate]:
    """The ``n`` candidates to annotate, most useful first (see the module docstring)."""
    known = {words(text) for text in gold_texts}
    pool = [c for c in candidates if c.words and c.words not in known]
    if options.strategy == "random":
        random.Random(options.seed).shuffle(pool)
    else:
        pool.sort(key=lambda c: (c.margin, c.example.id))
    chosen: list[Candidate] = []
    per_document: Counter[str] = Counter()
    ordered = _spread(pool[: DIVERSE_POOL * options.n], chosen) if options.strategy == "diverse" else iter(pool)
    for candidate in ordered:
        if len(chosen) == options.n:
            break
        doc = candidate.example.doc
        if per_document[doc] >= options.per_document or any(jaccard(candidate.words, c.words) >= options.similarity for c in chosen):
            continue
        chosen.append(candidate)
        per_document[doc] += 1
    return chosen


def _spread(pool: list[Candidate], chosen: list[Candidate]) -> Iterator[Candidate]:
    """Yield the candidate of highest (1 − margin) × (1 − its highest similarity to ``chosen``).

    ``chosen`` is the caller's list, read after each yield: only a candidate the caller kept
    (not one a cap refused) pushes its neighbours down.
    """
    closest = [0.0] * len(pool)
    remaining = set(range(len(pool)))
    seen = 0
    while remaining:
        for kept in chosen[seen:]:
            for i in remaining:
                closest[i] = max(closest[i], jaccard(pool[i].words, kept.words))
        seen = len(chosen)
        pick = max(remaining, key=lambda i: ((1 - pool[i].margin) * (1 - closest[i]), -i))
        remaining.remove(pick)
        yield pool[pick]
