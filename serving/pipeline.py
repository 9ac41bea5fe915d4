"""Articles → sentences → model batches → article-level predictions, streaming.

The model works on sentences; analysts want articles. This module splits every article
with the foundation splitter, pools the sentences of *many* articles into bounded chunks
(so that batches sorted by length are full and padding is small), runs the predictor,
and puts each article back together with offsets into the original article text.

Memory stays flat: at most one chunk of sentences (plus the article that overflows it)
is held at a time, whatever the size of the input.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from veille.annotation.articles import Article
from veille.annotation.document import Entity, Example, Relation
from veille.annotation.schema import Schema
from veille.annotation.sentences import Sentence, split_sentences
from veille.annotation.validate import Problem

# Defaults shared by the CLI, the HTTP API and the README.
DEFAULT_BATCH_SIZE = 32
DEFAULT_MIN_ENTITY_SCORE = 0.0
DEFAULT_CHUNK_SENTENCES = 1024


class SentencePredictor(Protocol):
    """What the pipeline needs from :class:`veille.models.predictor.Predictor`."""

    model_name: str
    model_version: str
    schema: Schema
    device: Any
    runtime: str  # what runs the encoder: torch or onnx
    dtype: str  # the encoder's precision
    relation_thresholds: dict[str, float]  # each relation label's default threshold

    def predict(
        self, sentences: list[str], batch_size: int = ..., relation_threshold: float | None = ..., min_entity_score: float = ...
    ) -> list[Example]: ...


@dataclass(frozen=True)
class PredictOptions:
    batch_size: int = DEFAULT_BATCH_SIZE
    relation_threshold: float | None = None  # None: each relation label's threshold, as the model was tuned
    min_entity_score: float = DEFAULT_MIN_ENTITY_SCORE
    chunk_sentences: int = DEFAULT_CHUNK_SENTENCES


@dataclass
class ArticlePrediction:
    """One article's predictions, both per sentence (for Label Studio tasks) and for the whole article."""

    article: Article
    sentences: list[Example]
    example: Example
    model: dict[str, str] = field(default_factory=dict)


def predict_sentences(predictor: SentencePredictor, texts: list[str], options: PredictOptions) -> list[Example]:
    """One prediction per text, in input order; the predictor batches them by token length (less padding)."""
    return predictor.predict(
        texts,
        batch_size=options.batch_size,
        relation_threshold=options.relation_threshold,
        min_entity_score=options.min_entity_score,
    )


def predict_articles(
    predictor: SentencePredictor, items: Iterable[Article | Problem], options: PredictOptions = PredictOptions()
) -> Iterator[ArticlePrediction | Problem]:
    """Yield a prediction per article, or the input's :class:`Problem`, in input order."""
    pending: list[tuple[Article | Problem, list[Sentence]]] = []
    pending_sentences = 0
    for item in items:
        sentences = split_sentences(item.text) if isinstance(item, Article) else []
        pending.append((item, sentences))
        pending_sentences += len(sentences)
        if pending_sentences >= options.chunk_sentences:
            yield from _predict_chunk(predictor, pending, options)
            pending, pending_sentences = [], 0
    yield from _predict_chunk(predictor, pending, options)


def _predict_chunk(
    predictor: SentencePredictor, chunk: list[tuple[Article | Problem, list[Sentence]]], options: PredictOptions
) -> Iterator[ArticlePrediction | Problem]:
    texts = [sentence.text for _, sentences in chunk for sentence in sentences]
    predicted = iter(predict_sentences(predictor, texts, options) if texts else [])
    model = {"name": predictor.model_name, "version": predictor.model_version}
    for item, sentences in chunk:
        if isinstance(item, Problem):
            yield item
            continue
        per_sentence = [next(predicted) for _ in sentences]
        yield assemble_article(item, sentences, per_sentence, model)


def assemble_article(
    article: Article, sentences: list[Sentence], predicted: list[Example], model: dict[str, str]
) -> ArticlePrediction:
    """Attach sentence ids and offsets, and merge the sentences into one article-level example.

    Entity ids restart at T1 in every sentence, so the article renumbers them (T1…Tn in
    reading order) and rewrites the relations to the new ids.
    """
    sentence_examples: list[Example] = []
    entities: list[Entity] = []
    relations: list[Relation] = []
    for index, (sentence, example) in enumerate(zip(sentences, predicted, strict=True)):
        meta = {"doc": article.id, "source": article.source, "start": sentence.start, "end": sentence.end}
        sentence_examples.append(
            Example(f"{article.id}-s{index:03d}", sentence.text, example.entities, example.relations, meta)
        )
        renamed: dict[str, str] = {}
        for entity in sorted(example.entities, key=lambda e: e.start):
            renamed[entity.id] = f"T{len(entities) + 1}"
            entities.append(replace(entity.shifted(sentence.start), id=renamed[entity.id]))
        relations.extend(Relation(renamed[r.head], renamed[r.tail], r.label, r.score) for r in example.relations)
    meta = {"source": article.source, "sentences": len(sentences), "model": model.get("name"), "model_version": model.get("version")}
    return ArticlePrediction(article, sentence_examples, Example(article.id, article.text, entities, relations, meta), model)
