import json

import pytest

from veille.annotation.schema import DEFAULT_SCHEMA_PATH, SchemaError, load_schema


def test_default_schema_encodes_the_guidelines():
    schema = load_schema()
    assert schema.entity_labels == ["PER", "ORG", "LOC", "ROLE", "MONEY", "PERCENT", "DATE", "PRODUCT"]
    assert len(schema.relation_labels) == 13
    assert [r.label for r in schema.relations if r.symmetric] == ["COMPETES_WITH"]
    assert schema.relation("HOLDS_SHARE").head == ("ORG", "PER")
    assert schema.relation("HOLDS_SHARE").tail == ("PERCENT",)
    assert all(e.description for e in schema.entities)
    assert sorted(schema.allowed_relations("PER", "ORG")) == ["EMPLOYEE_OF", "FORMER_EMPLOYEE_OF", "FOUNDED", "INVESTS_IN"]
    assert schema.allowed_relations("ORG", "PER") == []


def test_symmetric_relation_allows_both_directions():
    schema = load_schema()
    assert schema.relation("COMPETES_WITH").allows("ORG", "ORG")
    assert not schema.relation("EMPLOYEE_OF").allows("ORG", "PER")


def test_another_ontology_loads_by_path(tmp_path):
    path = tmp_path / "bio.json"
    path.write_text(json.dumps({
        "name": "bio", "version": "2",
        "entities": [{"label": "GENE", "description": "un gène"}, {"label": "DISEASE", "description": "une maladie"}],
        "relations": [{"label": "CAUSES", "head": ["GENE"], "tail": ["DISEASE"], "description": "cause"}],
    }))
    schema = load_schema(path)
    assert schema.entity_labels == ["GENE", "DISEASE"]
    assert schema.allowed_relations("GENE", "DISEASE") == ["CAUSES"]
    assert not schema.same_labels(load_schema())


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda s: s.pop("entities"), "entities"),
        (lambda s: s["entities"][1].pop("label"), "entities[1].label"),
        (lambda s: s["entities"][2].update(label="loc"), "entities[2].label"),
        (lambda s: s["relations"][3].update(head=["NOPE"]), "relations[3].head"),
        (lambda s: s["relations"][0].update(tail="ORG"), "relations[0].tail"),
        (lambda s: s["relations"][11].update(symmetric="yes"), "relations[11].symmetric"),
        (lambda s: s["entities"].append(dict(s["entities"][0])), "entities"),
    ],
)
def test_malformed_schema_names_file_and_key(tmp_path, mutate, key):
    raw = json.loads(DEFAULT_SCHEMA_PATH.read_text())
    mutate(raw)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    assert str(info.value).startswith(f"{path}: {key}:")


def test_schema_that_is_not_json(tmp_path):
    path = tmp_path / "schema.json"
    path.write_text("{not json")
    with pytest.raises(SchemaError, match="schema.json: not valid UTF-8 JSON"):
        load_schema(path)
