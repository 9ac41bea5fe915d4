"""From model outputs back to the gold format: BIO words → character spans, pair scores → relations.

Predicted spans are cleaned the way the guidelines write them: no leading elision,
article-like punctuation or quote (« d'OpenAI » → « OpenAI »), no bracket left without its
pair (« (Meta) » → « Meta »), and an abbreviation keeps its period (« Alphabet Inc. »).
Only lower-case elisions are stripped, because « L'Oréal » is a name; a span without a
letter or digit is no entity. A leading lower-case article or preposition is stripped too
(« des Landes » → « Landes », « en 2021 » → « 2021 »: no gold span but a vague amount of
money starts with one), except from MONEY (« des dizaines de millions de dollars » is
whole) and PER (« de Gaulle » is a surname); so is a trailing one, from every label
(« directrice générale de » → « directrice générale »: no gold span ends with one).
Candidate pairs are the ordered pairs of entities whose types some relation of the schema
allows, within a distance cap; each allowed relation label whose score reaches its
threshold is predicted (several may hold for one pair); a symmetric relation found in both
directions is kept once, with its best score.
"""

from __future__ import annotations

import re

import torch

from veille.annotation.document import Entity, Relation
from veille.annotation.schema import Schema
from veille.annotation.sentences import NEVER_FINAL

from .batch import Pair

# Caps on candidate pairs, measured on the shipped corpus (1,992 sentences, 2,748 gold
# relations): the farthest gold arguments are 163 characters and 7 entities apart, so
# these caps lose no gold pair while bounding the pairs of a sentence to 2 × 32 per entity.
MAX_PAIR_GAP = 300  # characters between the two arguments
MAX_PAIR_NEIGHBOURS = 32  # places between them in reading order

_LEADING = re.compile(r"(?:\s+|[«»\"“”'’(\[,;:–—-]|(?:l|d|qu|jusqu|lorsqu|puisqu|presqu|s|n|c|j|m|t)['’])")
_ARTICLES = "de|du|des|la|le|les|au|aux|à|en"  # lower-case only: « La Poste » is a name
_LEADING_WORD = re.compile(rf"(?:{_ARTICLES})(?:\s+|$)")
_KEEPS_LEADING_WORD = frozenset({"MONEY", "PER"})
_TRAILING = re.compile(r"(?:\s+|[«»\"“”'’(\[,;:!?–—-])$")
_TRAILING_WORD = re.compile(rf"\s+(?:{_ARTICLES}|et|ou|sur|par|pour|dans|avec|chez|[dl]['’]|qu['’])$")


def clean_span(text: str, start: int, end: int, label: str | None = None) -> tuple[int, int] | None:
    """Strip leading elisions/punctuation (and articles, for a ``label`` that never keeps them), trailing punctuation and function words; None if nothing is left."""
    leading = [_LEADING, _LEADING_WORD] if label and label not in _KEEPS_LEADING_WORD else [_LEADING]
    while start < end:
        match = next((m for pattern in leading if (m := pattern.match(text, start, end)) and m.end() > start), None)
        if not match:
            break
        start = match.end()
    while start < end:
        match = _TRAILING_WORD.search(text, start, end) or _TRAILING.search(text, start, end)
        if not match:
            break
        end = match.start()
    if text[end - 1 : end] in _CLOSING and text.count(_CLOSING[text[end - 1]], start, end) < text.count(text[end - 1], start, end):
        end -= 1  # « Meta) » once « ( » is stripped: a closing bracket without its opening one
    if not any(character.isalnum() for character in text[start:end]):
        return None
    if text[end : end + 1] == "." and _ends_with_abbreviation(text[start:end]):
        end += 1  # the period belongs to « Inc. », « S.A. »: a tokenizer may glue it to the word
    return start, end


_CLOSING = {")": "(", "]": "["}


def _ends_with_abbreviation(span: str) -> bool:
    """Whether the span ends on an abbreviation whose period follows (« Alphabet Inc », « Dupont S.A »)."""
    word = re.search(r"[\w.]*$", span).group()
    return word.lower() in NEVER_FINAL or re.fullmatch(r"(?:[A-Z]\.)+[A-Z]", word) is not None


def decode_entities(probs: torch.Tensor, words: list[tuple[int, int]], text: str, bio_labels: list[str], min_score: float = 0.0) -> list[Entity]:
    """Spans from per-word BIO probabilities [N, labels]; an I- without a matching B- opens a span.

    An entity's score is the mean probability of its words' predicted tags.
    """
    best, tags = probs.max(dim=-1)
    spans: list[tuple[int, int, str, list[float]]] = []
    for index, ((start, end), tag, score) in enumerate(zip(words, tags.tolist(), best.tolist())):
        name = bio_labels[tag]
        if name == "O":
            continue
        prefix, label = name.split("-", 1)
        previous_end = words[index - 1][1] if index else -1  # words are in text order
        if prefix == "I" and spans and spans[-1][2] == label and spans[-1][1] == previous_end:
            spans[-1] = (spans[-1][0], end, label, spans[-1][3] + [score])
        else:
            spans.append((start, end, label, [score]))
    entities = []
    for start, end, label, scores in spans:
        cleaned = clean_span(text, start, end, label)
        score = sum(scores) / len(scores)
        if cleaned and score >= min_score:
            entities.append(Entity(f"T{len(entities) + 1}", cleaned[0], cleaned[1], label, score))
    return entities


def build_pairs(
    entities: list[Entity], token_ranges: list[tuple[int, int]], schema: Schema, sentence: int, gold: list[Relation] | None = None
) -> list[Pair]:
    """Candidate pairs of one sentence, with targets when ``gold`` relations are given.

    A pair keeps every gold label written for it. For a symmetric relation, both orders of
    a gold pair are targets, so the model does not have to guess which direction the
    annotator happened to write.
    """
    relation_labels = schema.relation_labels
    entity_index = {label: i for i, label in enumerate(schema.entity_labels)}
    targets: dict[tuple[str, str], set[int]] = {}
    for relation in gold or []:
        label_id = relation_labels.index(relation.label)
        targets.setdefault((relation.head, relation.tail), set()).add(label_id)
        if schema.is_symmetric(relation.label):
            targets.setdefault((relation.tail, relation.head), set()).add(label_id)
    return [
        Pair(
            sentence=sentence,
            head=token_ranges[i],
            tail=token_ranges[j],
            head_label=entity_index[entities[i].label],
            tail_label=entity_index[entities[j].label],
            allowed=tuple(label in allowed for label in relation_labels),
            targets=frozenset(targets.get((entities[i].id, entities[j].id), ())) if gold is not None else None,
        )
        for i, j, allowed in _ordered_pairs(entities, schema)
    ]


def pair_entities(entities: list[Entity], schema: Schema) -> list[tuple[Entity, Entity]]:
    """The (head, tail) entities of :func:`build_pairs`, in the same order."""
    return [(entities[i], entities[j]) for i, j, _ in _ordered_pairs(entities, schema)]


def _ordered_pairs(entities: list[Entity], schema: Schema):
    """(head index, tail index, allowed relation labels) for every pair some relation allows, within the caps.

    Pairs come in (head, tail) index order. Only entities within :data:`MAX_PAIR_NEIGHBOURS`
    places of the head in reading order and :data:`MAX_PAIR_GAP` characters of it are
    candidates, so the pairs of a sentence grow linearly with its length, not quadratically.
    """
    order = sorted(range(len(entities)), key=lambda k: (entities[k].start, entities[k].end))
    rank = {index: position for position, index in enumerate(order)}
    for i, head in enumerate(entities):
        near = order[max(0, rank[i] - MAX_PAIR_NEIGHBOURS) : rank[i] + MAX_PAIR_NEIGHBOURS + 1]
        for j in sorted(near):
            tail = entities[j]
            if j == i or max(head.start, tail.start) - min(head.end, tail.end) > MAX_PAIR_GAP:
                continue
            allowed = set(schema.allowed_relations(head.label, tail.label))
            if allowed:
                yield i, j, allowed


def decode_relations(probs: torch.Tensor, pairs: list[tuple[Entity, Entity]], schema: Schema, thresholds: list[float]) -> list[Relation]:
    """Every relation label the schema allows for a pair whose probability reaches that label's threshold.

    ``probs`` holds one independent probability per relation label [pairs, labels];
    ``thresholds`` one threshold per label, in the schema's order.
    """
    found: dict[tuple[str, str, str], Relation] = {}
    for (head, tail), row in zip(pairs, probs.tolist()):
        for label in schema.allowed_relations(head.label, tail.label):
            index = schema.relation_labels.index(label)
            if row[index] < thresholds[index]:
                continue
            key = (*sorted((head.id, tail.id), key=_id_order), label) if schema.is_symmetric(label) else (head.id, tail.id, label)
            if key not in found or found[key].score < row[index]:
                found[key] = Relation(head.id, tail.id, label, row[index])
    return list(found.values())


def _id_order(entity_id: str) -> tuple[int, str]:
    digits = entity_id.lstrip("T")
    return (int(digits), entity_id) if digits.isdigit() else (0, entity_id)
