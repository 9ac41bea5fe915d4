"""Compile the authored corpus sources into gold JSONL files, computing every offset.

Authors write mentions as strings (``["Mistral AI", "ORG"]``, ``"Meta@2"`` for the second
occurrence); this module finds them at word boundaries, so no offset is ever typed by
hand. Documents are assigned to train/dev/test as a whole, so no document straddles
two splits. The format is described in ``corpus/src/FORMAT.md``.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .document import Entity, Example, Relation
from .validate import Problem

SPLIT_RATIOS = (("train", 0.70), ("dev", 0.15), ("test", 0.15))

# Each register of the corpus is a family of source files, split by document on its own
# (so adding documents to one register never moves a document of another between
# splits) into train, dev and a held-out test split of its own name.
REGISTERS = {
    "authored": "test",  # short authored briefs (corpus v1): its test split stays as it was
    "articles": "test-articles",  # real-article register, tech and business
    "general": "test-general",  # general news: politics, sport, culture, regions…
    "press": "test-press",  # press articles dense in the relation constructions real articles use (corpus v3)
    "encyclopedic": "test-encyclopedic",  # reference-work prose: biographies, places, institutions, history (corpus v4)
    "world": "test-world",  # reference-work prose about the world beyond France: people, organisations, places (corpus v5)
    "reference": "test-reference",  # reference-work prose about the real world: historical people, real places, organisations (corpus v6)
}


@dataclass(frozen=True)
class Document:
    id: str
    examples: list[Example]


def locate(text: str, key: str) -> tuple[int, int]:
    """Offsets of a mention key (``"Meta"`` or ``"Meta@2"``) among word-boundary matches."""
    mention, _, nth = key.rpartition("@") if re.search(r"@\d+$", key) else (key, "", "1")
    matches = [m.span() for m in re.finditer(rf"(?<!\w){re.escape(mention)}(?!\w)", text)]
    index = int(nth) - 1
    if index >= len(matches):
        found = f"found {len(matches)} time(s)" if matches else "not found"
        raise LookupError(f"mention {key!r} {found} at word boundaries")
    return matches[index]


def compile_sentence(raw: Any, sentence_id: str, meta: dict[str, Any]) -> Example:
    """One authored sentence → an :class:`Example` (raises LookupError/KeyError/TypeError on bad input)."""
    text = raw["text"]
    ids: dict[str, str] = {}
    entities = []
    for number, (key, label) in enumerate(raw.get("entities", []), start=1):
        start, end = locate(text, key)
        ids[key] = f"T{number}"
        entities.append(Entity(f"T{number}", start, end, label))
    relations = []
    for head, label, tail in raw.get("relations", []):
        missing = [k for k in (head, tail) if k not in ids]
        if missing:
            raise LookupError(f"relation {label} refers to unlisted mention(s) {missing}")
        relations.append(Relation(ids[head], ids[tail], label))
    return Example(sentence_id, text, entities, relations, meta)


def read_sources(paths: Iterable[Path]) -> tuple[list[Document], list[Problem]]:
    """Read source files: a line is a whole document (``sentences``) or one sentence of ``doc``.

    The one-sentence-per-line form is used for the seed articles, whose sentences come
    from veille's splitter and carry their article offsets in ``meta``.
    """
    documents: dict[str, list[Example]] = {}
    problems: list[Problem] = []
    for path in paths:
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                doc_id = item["doc"]
                sentences = item["sentences"] if "sentences" in item else [item]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                problems.append(Problem(str(path), line_no, "doc", f"not a document or sentence object: {exc}"))
                continue
            examples = documents.setdefault(doc_id, [])
            for i, raw in enumerate(sentences):
                try:
                    meta = {"doc": doc_id, "source": path.name, **raw.get("meta", {})}
                    examples.append(compile_sentence(raw, f"{doc_id}-s{len(examples):03d}", meta))
                except (LookupError, TypeError, ValueError, AttributeError) as exc:
                    field = f"sentences[{i}]" if "sentences" in item else "entities"
                    problems.append(Problem(str(path), line_no, field, str(exc)))
    return [Document(doc_id, examples) for doc_id, examples in documents.items()], problems


def assign_splits(documents: list[Document], seed: int = 13, test_name: str = "test") -> dict[str, list[Document]]:
    """Shuffle documents with a fixed seed and cut them 70/15/15 by document (the last cut is ``test_name``)."""
    order = sorted(documents, key=lambda d: d.id)
    random.Random(seed).shuffle(order)
    splits: dict[str, list[Document]] = {}
    start = 0
    for i, (name, ratio) in enumerate(SPLIT_RATIOS):
        end = len(order) if i == len(SPLIT_RATIOS) - 1 else start + round(ratio * len(order))
        splits[test_name if name == "test" else name] = order[start:end]
        start = end
    return splits


def source_batches(src: Path, register: str) -> dict[str, list[Path]]:
    """A register's source files by batch: ``press-a.jsonl`` is batch ``press``, ``press-v6-e.jsonl`` batch ``press-v6``.

    A register grows by batches of new files, and each batch is split on its own
    (:func:`assign_register_splits`): cutting the grown register anew would move earlier
    documents between train and test, and scores on its test split would no longer compare
    across corpus versions.
    """
    batches: dict[str, list[Path]] = {}
    for path in sorted(src.glob(f"{register}-*.jsonl")):
        batches.setdefault(path.stem.rsplit("-", 1)[0], []).append(path)
    return batches


def assign_register_splits(batches: Iterable[tuple[str, list[Document]]], seed: int = 13) -> dict[str, list[Document]]:
    """Split each batch ``(register, documents)`` on its own, then pool train and dev; each register keeps its own test split."""
    splits: dict[str, list[Document]] = {"train": [], "dev": []}
    for register, documents in batches:
        for name, part in assign_splits(documents, seed, REGISTERS[register]).items():
            splits.setdefault(name, []).extend(part)
    return splits


def far_relation_share(examples: Iterable[Example], distance: int = 60) -> tuple[int, int]:
    """(relations whose arguments are more than ``distance`` characters apart, all relations).

    The gap is measured between the two spans (0 when they touch): real articles put
    about a fifth of their relation arguments this far apart, authored briefs half as many.
    """
    far = total = 0
    for example in examples:
        spans = {e.id: (e.start, e.end) for e in example.entities}
        for relation in example.relations:
            (hs, he), (ts, te) = spans[relation.head], spans[relation.tail]
            total += 1
            far += max(ts - he, hs - te, 0) > distance
    return far, total
