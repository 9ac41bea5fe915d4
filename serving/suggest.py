"""``veille annotate suggest``: the sentences whose annotation would teach the model the most.

Annotation time is what a new domain costs, so the annotator's queue should start with the
sentences the model is least sure about (active learning by uncertainty sampling), not with
whatever comes first. The ranking itself (margins, the ``uncertainty``, ``diverse`` and
``random`` strategies, the near-duplicate, per-document and gold filters) is
:mod:`veille.models.active_learning`, shared with the learning-curve simulation; this
module reads the articles, scores their sentences and writes the chosen ones as Label
Studio tasks with the model's pre-annotations and their rank, in the format ``veille
annotate push --predictions`` reads: the annotation stage itself never loads a model.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator
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
from veille.models.active_learning import DEFAULT_PER_DOCUMENT, DEFAULT_SIMILARITY, STRATEGIES, Candidate, Selection, score_sentences, select
from veille.models.cli import DeviceOption

from .pipeline import DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_SENTENCES


def score_pool(predictor, articles: Iterable[Article], batch_size: int = DEFAULT_BATCH_SIZE, chunk_sentences: int = DEFAULT_CHUNK_SENTENCES) -> Iterator[Candidate]:
    """Every sentence of the articles, predicted with its margin, about ``chunk_sentences`` at a time."""
    pending: list[Example] = []
    for article in articles:
        pending.extend(sentence_examples(article))
        if len(pending) >= chunk_sentences:
            yield from score_sentences(predictor, pending, batch_size, chunk_sentences)
            pending = []
    yield from score_sentences(predictor, pending, batch_size, chunk_sentences)


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
    problems: list[Problem] = []
    articles = _articles(inputs, problems.append)
    candidates = list(score_pool(predictor, articles, batch_size))
    chosen = select(candidates, Selection(n, strategy, per_document, similarity, seed), known)
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

