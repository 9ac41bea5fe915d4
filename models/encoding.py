"""From text to model inputs: words, subword tokens with character offsets, BIO labels, windows.

Labels live on *words* (``\\w+`` runs and single punctuation marks, so « d'OpenAI » is
three words and an entity never needs to start inside one): the first subword token of
each word carries the word's label, the others are ignored. The sentence is tokenized
once, without truncation; a sentence longer than the encoder's window is cut into
overlapping windows whose states are merged back (each token taken from the window where
it sits farthest from an edge), so nothing is silently truncated.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from veille.annotation.document import Entity, Example
from veille.annotation.schema import Schema

WORD_RE = re.compile(r"\w+|[^\w\s]")
IGNORE = -100


@dataclass(frozen=True)
class Window:
    """Token positions ``[start, end)`` of the sentence covered by one encoder input."""

    start: int
    end: int


@dataclass
class Encoded:
    """One sentence ready for the model; every index is into the sentence's token list."""

    input_ids: list[int]  # the sentence's tokens, no special tokens
    offsets: list[tuple[int, int]]  # character span of each token
    words: list[tuple[int, int]]  # character span of each labelled word
    word_tokens: list[int]  # first token of each word
    word_labels: list[int] = field(default_factory=list)  # BIO label ids (training only)
    entity_tokens: list[tuple[int, int]] = field(default_factory=list)  # [first, last] token of each entity
    unaligned: list[Entity] = field(default_factory=list)  # gold entities whose boundaries cut through a word


def bio_labels(schema: Schema) -> list[str]:
    return ["O"] + [f"{prefix}-{label}" for label in schema.entity_labels for prefix in ("B", "I")]


def split_words(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in WORD_RE.finditer(text)]


def tokenize(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids and character offsets (leading spaces trimmed) of the whole sentence."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = []
    for start, end in enc["offset_mapping"]:
        while start < end and text[start].isspace():
            start += 1
        offsets.append((start, end))
    return list(enc["input_ids"]), offsets


def encode(tokenizer, text: str) -> Encoded:
    """Tokenize and align words to tokens; a word without a token of its own joins the previous word."""
    input_ids, offsets = tokenize(tokenizer, text)
    words: list[tuple[int, int]] = []
    word_tokens: list[int] = []
    token = 0
    for start, end in split_words(text):
        while token < len(offsets) and offsets[token][1] <= start:
            token += 1
        first = token if token < len(offsets) and offsets[token][0] >= start and offsets[token][0] < end else None
        if first is None or (word_tokens and word_tokens[-1] == first):
            # The previous word's token also covers this one (« 2024. » as one token): a letter
            # or digit run joins that word; punctuation is left out, so « 2024 » stays a span.
            if words and text[start].isalnum():
                words[-1] = (words[-1][0], end)
            continue
        words.append((start, end))
        word_tokens.append(first)
    return Encoded(input_ids, offsets, words, word_tokens)


def encode_example(tokenizer, example: Example, schema: Schema) -> Encoded:
    """Encode a gold example: BIO word labels and the token range of each gold entity.

    A gold span that cuts through a word cannot be tagged on words: its words are left
    out of the loss (spaCy's ``-``) instead of being taught as ``O``, and the entity is
    listed in ``unaligned`` so the trainer can name it.
    """
    enc = encode(tokenizer, example.text)
    label_id = {label: i for i, label in enumerate(bio_labels(schema))}
    enc.word_labels = [label_id["O"]] * len(enc.words)
    for entity in example.entities:
        words = [i for i, (s, e) in enumerate(enc.words) if s < entity.end and e > entity.start]
        if words and enc.words[words[0]][0] == entity.start and enc.words[words[-1]][1] == entity.end:
            enc.word_labels[words[0]] = label_id[f"B-{entity.label}"]
            for i in words[1:]:
                enc.word_labels[i] = label_id[f"I-{entity.label}"]
        else:
            enc.unaligned.append(entity)
            for i in words:
                enc.word_labels[i] = IGNORE
        enc.entity_tokens.append(entity_token_range(enc, entity))
    return enc


def entity_token_range(enc: Encoded, entity: Entity) -> tuple[int, int]:
    """First and last token overlapping the entity's characters.

    Token offsets are in text order, so a binary search finds the first one: a sentence of
    thousands of entities and tokens costs E log T, not E × T (minutes at 100,000 characters).
    """
    first = bisect.bisect_right(enc.offsets, entity.start, key=lambda offset: offset[1])  # the first token ending after the start
    last = first
    while last < len(enc.offsets) and enc.offsets[last][0] < entity.end:
        last += 1
    if last == first:  # an entity on characters the tokenizer drops: use the nearest token
        nearest = min(range(len(enc.offsets)), key=lambda i: abs(enc.offsets[i][0] - entity.start))
        return nearest, nearest
    return first, last - 1


def windows(n_tokens: int, size: int, stride: int) -> list[Window]:
    """Overlapping windows of at most ``size`` tokens, each starting ``size - stride`` after the last."""
    if n_tokens <= size:
        return [Window(0, n_tokens)]
    step = max(1, size - stride)
    out = []
    start = 0
    while True:
        end = min(start + size, n_tokens)
        out.append(Window(start, end))
        if end == n_tokens:
            return out
        start += step


def best_window(position: int, spans: list[Window]) -> int:
    """The window where a token has the most context on both sides (the first of equals).

    Windows start and end in increasing order, so those holding the token are the few just
    before the last one starting at or before it: found by binary search, not by a scan
    of every window for every token.
    """
    last = bisect.bisect_right(spans, position, key=lambda w: w.start) - 1
    first = last
    while first > 0 and spans[first - 1].end > position:
        first -= 1
    return max(range(first, last + 1), key=lambda i: min(position - spans[i].start, spans[i].end - 1 - position))
