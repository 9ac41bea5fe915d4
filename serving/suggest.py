"""``veille annotate suggest``: the sentences whose annotation would teach the model the most.

Annotation time is what a new domain costs, so the annotator's queue should start with the
sentences the model is least sure about (active learning by uncertainty sampling), not with
whatever comes first. Each sentence of the pool is predicted once; its *margin* is its least
certain decision (:class:`veille.models.predictor.Margins`): the smallest gap between the
best and second BIO tag of a word, or the smallest distance of a candidate pair's best
relation score to that label's threshold. Strategies:

- ``uncertainty``: lowest margin first;
- ``diverse``: among the most uncertain, each next sentence is the one whose uncertainty
  times its distance to those already chosen is highest, so a batch covers more situations
  than one kind of hard sentence repeated;
- ``random``: a seeded draw, the baseline every strategy must beat (the learning curve).

Whatever the strategy, no two chosen sentences are near-duplicates (word sets, digits
masked, Jaccard ≥ ``similarity``), a document gives at most ``per_document`` sentences, and
a sentence already in a given gold file is never suggested. The output is Label Studio
tasks with the model's pre-annotations and their rank, in the format ``veille annotate push
--predictions`` reads: the annotation stage itself never loads a model.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from veille.annotation.articles import Article, read_articles, sentence_examples, warn_duplicate_ids
from veille.annotation.atomic import atomic_open
from veille.annotation.console import err, fail, warning
from veille.annotation.document import Example
from veille.annotation.labelstudio.results import suggestion_task
from veille.annotation.schema import Schema
from veille.annotation.validate import Problem
from veille.models.cli import DeviceOption

from .pipeline import DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_SENTENCES

STRATEGIES = ("uncertainty", "diverse", "random")
DEFAULT_PER_DOCUMENT = 5
DEFAULT_SIMILARITY = 0.8
DIVERSE_POOL = 10  # `diverse` picks among the 10 × n most uncertain: uncertainty first, spread second


@dataclass(frozen=True)
class SuggestOptions:
    n: int = 200
    strategy: str = "uncertainty"
    per_document: int = DEFAULT_PER_DOCUMENT
    similarity: float = DEFAULT_SIMILARITY  # word-set Jaccard from which two sentences are near-duplicates
    seed: int = 13  # the `random` draw
    batch_size: int = DEFAULT_BATCH_SIZE
    chunk_sentences: int = DEFAULT_CHUNK_SENTENCES


@dataclass(frozen=True)
class Candidate:
    """A predicted sentence of the pool (article offsets in ``meta``) and the model's margin on it."""

    example: Example
    margin: float
    words: frozenset[str]


def words(text: str) -> frozenset[str]:
    """What near-duplicate checks compare: lower-cased words, digits masked (« 40 M€ » ≈ « 50 M€ »)."""
    return frozenset(re.findall(r"\w+", re.sub(r"\d", "0", text.lower())))


def jaccard(first: frozenset[str], second: frozenset[str]) -> float:
    return len(first & second) / len(first | second) if first or second else 1.0


def score_pool(predictor, articles: Iterable[Article], options: SuggestOptions) -> Iterator[Candidate]:
    """Every sentence of the articles, predicted with its margin, about ``chunk_sentences`` at a time."""
    pending: list[Example] = []
    for article in articles:
        pending.extend(sentence_examples(article))
        if len(pending) >= options.chunk_sentences:
            yield from score_sentences(predictor, pending, options)
            pending = []
    yield from score_sentences(predictor, pending, options)


def score_sentences(predictor, sentences: list[Example], options: SuggestOptions) -> Iterator[Candidate]:
    """Each sentence (id and meta kept) predicted with its margin, ``chunk_sentences`` per predictor call."""
    for start in range(0, len(sentences), options.chunk_sentences):
        chunk = sentences[start : start + options.chunk_sentences]
        predicted = predictor.predict_with_margins([s.text for s in chunk], batch_size=options.batch_size)
        for sentence, (example, margins) in zip(chunk, predicted, strict=True):
            found = Example(sentence.id, sentence.text, example.entities, example.relations, sentence.meta)
            yield Candidate(found, margins.lowest, words(sentence.text))


def select(candidates: Iterable[Candidate], options: SuggestOptions, gold_texts: Iterable[str] = ()) -> list[Candidate]:
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


def suggestion_tasks(chosen: list[Candidate], schema: Schema, model_version: str, strategy: str) -> list[dict[str, Any]]:
    """Label Studio tasks, rank 1 first, each with the model's pre-annotation and margin."""
    return [suggestion_task(c.example, schema, model_version, rank, c.margin, strategy) for rank, c in enumerate(chosen, start=1)]


def suggest(
    inputs: Annotated[list[str], typer.Argument(help="Unlabelled articles: .txt files, folders of them, JSONL {id, text}, or - for stdin.")],
    model: Annotated[Path, typer.Option("--model", "-m", help="Trained model directory (from `veille train`).")],
    n: Annotated[int, typer.Option("-n", min=1, help="How many sentences to suggest.")] = 200,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Tasks JSON for `veille annotate push --predictions` (default: stdout).")] = None,
    strategy: Annotated[str, typer.Option("--strategy", help=f"{', '.join(STRATEGIES)}.")] = "uncertainty",
    gold: Annotated[Optional[list[Path]], typer.Option("--gold", help="Gold JSONL whose sentences are never suggested (repeatable).")] = None,
    per_document: Annotated[int, typer.Option("--per-document", min=1, help="At most this many sentences of one article.")] = DEFAULT_PER_DOCUMENT,
    similarity: Annotated[
        float, typer.Option("--similarity", min=0.0, max=1.0, help="Two sentences sharing this share of their words (Jaccard) are near-duplicates: one is kept.")
    ] = DEFAULT_SIMILARITY,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random strategy.")] = 13,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Sentences per forward pass.")] = DEFAULT_BATCH_SIZE,
    device: DeviceOption = "auto",
) -> None:
    """Rank unlabelled sentences by what annotating them would teach the model; write the top ones as pre-annotated Label Studio tasks."""
    from veille.annotation.corpus import CorpusError, read_corpus

    from .cli import existing_inputs, load_predictor

    if strategy not in STRATEGIES:
        raise fail(f"unknown strategy {strategy!r} (choose from {', '.join(STRATEGIES)})")
    inputs, missing = existing_inputs(inputs, "rank")
    predictor = load_predictor(model, device, None)
    try:
        known = [example.text for example in read_corpus(gold, predictor.schema)] if gold else []
    except CorpusError as exc:
        raise fail(f"invalid gold file:\n{exc}") from None
    options = SuggestOptions(n, strategy, per_document, similarity, seed, batch_size)
    problems: list[Problem] = []
    articles = _articles(inputs, problems.append)
    candidates = list(score_pool(predictor, articles, options))
    chosen = select(candidates, options, known)
    tasks = suggestion_tasks(chosen, predictor.schema, predictor.model_version, strategy)
    with atomic_open(output) if output else contextlib.nullcontext(sys.stdout) as handle:
        json.dump(tasks, handle, ensure_ascii=False, indent=1)
        handle.write("\n")
    margins = f", margins {chosen[0].margin:.3f}…{chosen[-1].margin:.3f}" if chosen else ""
    err.print(
        f"{len(candidates)} sentences ranked ({strategy}); {len(chosen)} suggested from {len({c.example.doc for c in chosen})} documents{margins} → {output or 'stdout'}",
        highlight=False,
    )
    if missing or problems:
        warning(f"{len(missing) + len(problems)} input(s) skipped (listed above); exit code 1", tag="skipped")
        raise typer.Exit(1)


def _articles(inputs: list[str], on_problem: Callable[[Problem], None]) -> Iterator[Article]:
    """The readable articles; each bad input is reported and handed to ``on_problem``."""
    for item in warn_duplicate_ids(read_articles(inputs), warning):
        if isinstance(item, Problem):
            warning(str(item), tag="skipped")
            on_problem(item)
        else:
            yield item

