"""The annotation scheme, loaded from one JSON file that everything else reads.

The default file (``schemas/news-v1.json``) encodes ``annotation-guidelines.md`` v1.
Another ontology works by passing the path of a file of the same shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_SCHEMA_PATH = Path(__file__).parent / "schemas" / "news-v1.json"


class SchemaError(ValueError):
    """A schema file is malformed; the message names the file and the offending key."""


@dataclass(frozen=True)
class EntityType:
    label: str
    description: str
    color: str = "#888888"


@dataclass(frozen=True)
class RelationType:
    label: str
    head: tuple[str, ...]
    tail: tuple[str, ...]
    description: str
    symmetric: bool = False

    def allows(self, head_label: str, tail_label: str) -> bool:
        """Whether the relation may link these entity labels (either way when symmetric)."""
        if head_label in self.head and tail_label in self.tail:
            return True
        return self.symmetric and tail_label in self.head and head_label in self.tail


@dataclass(frozen=True)
class Schema:
    name: str
    version: str
    entities: tuple[EntityType, ...]
    relations: tuple[RelationType, ...]
    description: str = ""
    path: Path | None = field(default=None, compare=False)

    @property
    def entity_labels(self) -> list[str]:
        return [e.label for e in self.entities]

    @property
    def relation_labels(self) -> list[str]:
        return [r.label for r in self.relations]

    def relation(self, label: str) -> RelationType:
        for relation in self.relations:
            if relation.label == label:
                return relation
        raise KeyError(label)

    def is_symmetric(self, label: str) -> bool:
        return self.relation(label).symmetric

    def allowed_relations(self, head_label: str, tail_label: str) -> list[str]:
        """Relation labels whose type constraints accept this ordered pair."""
        return [r.label for r in self.relations if r.allows(head_label, tail_label)]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as written into trained model directories."""
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "entities": [
                {"label": e.label, "color": e.color, "description": e.description} for e in self.entities
            ],
            "relations": [
                {
                    "label": r.label,
                    "head": list(r.head),
                    "tail": list(r.tail),
                    "description": r.description,
                    **({"symmetric": True} if r.symmetric else {}),
                }
                for r in self.relations
            ],
        }

    def constraints(self) -> tuple[list[str], list[tuple[str, tuple[str, ...], tuple[str, ...], bool]]]:
        """What a trained model depends on: the entity labels, and each relation's label, argument types and symmetry."""
        return self.entity_labels, [(r.label, r.head, r.tail, r.symmetric) for r in self.relations]

    def same_labels(self, other: Schema) -> bool:
        """Whether two schemas define the same labels and constraints (descriptions may differ)."""
        return self.constraints() == other.constraints()


def load_schema(path: str | Path | None = None) -> Schema:
    """Load and check a schema file (the default v1 scheme when ``path`` is None)."""
    path = Path(path) if path is not None else DEFAULT_SCHEMA_PATH
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SchemaError(f"{path}: schema file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{path}: not valid UTF-8 JSON: {exc}") from None
    return parse_schema(raw, source=str(path), path=path)


def parse_schema(raw: Any, source: str = "<schema>", path: Path | None = None) -> Schema:
    """Build a :class:`Schema` from its JSON form, naming ``source`` and the key in every error."""
    reader = _Reader(source)
    top = reader.mapping(raw, "")
    entities = tuple(
        EntityType(
            label=reader.label(item, key),
            description=reader.text(item, key, "description"),
            color=reader.text(item, key, "color", default="#888888"),
        )
        for key, item in reader.items(top, "entities")
    )
    entity_labels = [e.label for e in entities]
    reader.unique(entity_labels, "entities")
    relations = []
    for key, item in reader.items(top, "relations"):
        relations.append(
            RelationType(
                label=reader.label(item, key),
                head=reader.types(item, key, "head", entity_labels),
                tail=reader.types(item, key, "tail", entity_labels),
                description=reader.text(item, key, "description"),
                symmetric=reader.flag(item, key, "symmetric"),
            )
        )
    reader.unique([r.label for r in relations], "relations")
    return Schema(
        name=reader.text(top, "", "name"),
        version=str(top.get("version", "1")),
        description=reader.text(top, "", "description", default=""),
        entities=entities,
        relations=tuple(relations),
        path=path,
    )


class _Reader:
    """Type-checks pieces of the schema JSON, raising :class:`SchemaError` with a key path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> SchemaError:
        return SchemaError(f"{self.source}: {key or '<top>'}: {message}")

    def mapping(self, value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, "expected an object")
        return value

    def items(self, top: dict[str, Any], key: str) -> list[tuple[str, dict[str, Any]]]:
        value = top.get(key)
        if not isinstance(value, list) or not value:
            raise self.fail(key, "expected a non-empty list")
        return [(f"{key}[{i}]", self.mapping(item, f"{key}[{i}]")) for i, item in enumerate(value)]

    def text(self, item: dict[str, Any], key: str, name: str, default: str | None = None) -> str:
        value = item.get(name, default)
        if not isinstance(value, str):
            raise self.fail(f"{key}.{name}".lstrip("."), "expected a string")
        return value

    def label(self, item: dict[str, Any], key: str) -> str:
        label = self.text(item, key, "label")
        if not label or not label.replace("_", "").replace("-", "").isalnum() or label.upper() != label:
            raise self.fail(f"{key}.label", f"{label!r} must be upper-case letters, digits, '_' or '-'")
        return label

    def flag(self, item: dict[str, Any], key: str, name: str) -> bool:
        value = item.get(name, False)
        if not isinstance(value, bool):
            raise self.fail(f"{key}.{name}", "expected true or false")
        return value

    def types(self, item: dict[str, Any], key: str, name: str, known: list[str]) -> tuple[str, ...]:
        value = item.get(name)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise self.fail(f"{key}.{name}", "expected a non-empty list of entity labels")
        unknown = [v for v in value if v not in known]
        if unknown:
            raise self.fail(f"{key}.{name}", f"unknown entity label(s) {', '.join(unknown)}")
        return tuple(value)

    def unique(self, labels: list[str], key: str) -> None:
        seen = {label for label in labels if labels.count(label) > 1}
        if seen:
            raise self.fail(key, f"duplicate label(s) {', '.join(sorted(seen))}")
