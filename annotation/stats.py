"""Label counts of a gold corpus, per split: what ``veille corpus stats`` prints and the data card reports."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .authoring import REGISTERS
from .document import Example


@dataclass
class SplitStats:
    documents: set[str] = field(default_factory=set)
    sentences: int = 0
    entities: Counter[str] = field(default_factory=Counter)
    relations: Counter[str] = field(default_factory=Counter)

    def add(self, example: Example) -> None:
        self.documents.add(example.doc)
        self.sentences += 1
        self.entities.update(e.label for e in example.entities)
        self.relations.update(r.label for r in example.relations)


def split_of(example: Example, path: str | Path) -> str:
    """``meta.split`` when present, else the file name (``train.jsonl`` → ``train``)."""
    return example.split or Path(path).stem


def corpus_stats(files: dict[str, list[Example]]) -> dict[str, SplitStats]:
    """Stats per split and for ``all``, from examples grouped by the file they came from."""
    stats: dict[str, SplitStats] = {}
    for path, examples in files.items():
        for example in examples:
            for key in (split_of(example, path), "all"):
                stats.setdefault(key, SplitStats()).add(example)
    order = {name: i for i, name in enumerate(("train", "dev", *REGISTERS.values(), "seed"))}
    return dict(sorted(stats.items(), key=lambda item: (item[0] == "all", order.get(item[0], len(order)), item[0])))
