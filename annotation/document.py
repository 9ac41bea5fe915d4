"""The data types of the gold format: a sentence (or article) with entity spans and relations.

These value objects are shared by every stage: the corpus files, the Label Studio
converter, training, evaluation and predictions (which add a ``score``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Entity:
    """A labelled character span ``text[start:end]`` (end exclusive)."""

    id: str
    start: int
    end: int
    label: str
    score: float | None = None

    def span(self) -> tuple[int, int, str]:
        """What scoring compares: the span and label, not the id."""
        return (self.start, self.end, self.label)

    def overlaps(self, other: Entity) -> bool:
        return self.start < other.end and other.start < self.end

    def shifted(self, offset: int) -> Entity:
        """The same entity with offsets moved by ``offset`` (sentence → article offsets)."""
        return Entity(self.id, self.start + offset, self.end + offset, self.label, self.score)

    def to_json(self, text: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "start": self.start, "end": self.end, "label": self.label}
        if text is not None:
            out["text"] = text[self.start : self.end]
        if self.score is not None:
            out["score"] = round(self.score, 4)
        return out


@dataclass(frozen=True)
class Relation:
    """A directed relation between two entity ids of the same example."""

    head: str
    tail: str
    label: str
    score: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"head": self.head, "tail": self.tail, "label": self.label}
        if self.score is not None:
            out["score"] = round(self.score, 4)
        return out


@dataclass
class Example:
    """One line of the gold corpus: a sentence with its entities and relations."""

    id: str
    text: str
    entities: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def entity(self, entity_id: str) -> Entity:
        for entity in self.entities:
            if entity.id == entity_id:
                return entity
        raise KeyError(entity_id)

    def mention(self, entity: Entity) -> str:
        return self.text[entity.start : entity.end]

    @property
    def doc(self) -> str:
        """The document the sentence comes from (``meta.doc``, else the id before ``-s``)."""
        return str(self.meta.get("doc") or self.id.rsplit("-s", 1)[0])

    @property
    def split(self) -> str | None:
        value = self.meta.get("split")
        return str(value) if value is not None else None

    def to_json(self, with_text: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "text": self.text,
            "entities": [e.to_json(self.text if with_text else None) for e in self.entities],
            "relations": [r.to_json() for r in self.relations],
        }
        if self.meta:
            out["meta"] = self.meta
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Example:
        """Build from an already validated JSON object (see :mod:`veille.annotation.validate`)."""
        return cls(
            id=str(obj["id"]),
            text=obj["text"],
            entities=[
                Entity(str(e["id"]), int(e["start"]), int(e["end"]), e["label"], e.get("score"))
                for e in obj.get("entities", [])
            ],
            relations=[
                Relation(str(r["head"]), str(r["tail"]), r["label"], r.get("score"))
                for r in obj.get("relations", [])
            ],
            meta=dict(obj.get("meta") or {}),
        )
