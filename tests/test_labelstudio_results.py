"""Examples ⇄ Label Studio results and the labelling config, without a server."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from veille.annotation.document import Entity, Example, Relation
from veille.annotation.labelstudio.config import labeling_config
from veille.annotation.labelstudio.results import (
    codepoint_offset, example_to_results, gold_task, prediction_task, reanchor, results_to_example, utf16_offset,
)
from veille.annotation.schema import load_schema, parse_schema

SCHEMA = load_schema()
TEXT = "🤖 Meta rachète 49 % de Scale AI 🚀 à San Francisco."


def example() -> Example:
    def at(mention: str) -> tuple[int, int]:
        return TEXT.index(mention), TEXT.index(mention) + len(mention)

    return Example(
        "art-s000", TEXT,
        [Entity("e1", *at("Meta"), "ORG", 0.9), Entity("e2", *at("49 %"), "PERCENT", 0.8), Entity("e3", *at("Scale AI"), "ORG"), Entity("e4", *at("San Francisco"), "LOC")],
        [Relation("e1", "e2", "HOLDS_SHARE", 0.7), Relation("e3", "e4", "LOCATED_IN")],
        {"doc": "art", "start": 10, "end": 10 + len(TEXT), "source": "art.txt"},
    )


def test_offsets_are_utf16_code_units_beyond_the_bmp() -> None:
    for index in range(len(TEXT) + 1):
        units = len(TEXT[:index].encode("utf-16-le")) // 2
        assert utf16_offset(TEXT, index) == units
        assert codepoint_offset(TEXT, units) == index
    regions = [r for r in example_to_results(example(), SCHEMA) if r["type"] == "labels"]
    assert regions[0]["value"]["start"] == TEXT.index("Meta") + 1  # the leading robot is two units
    assert regions[3]["value"]["start"] == TEXT.index("San") + 2


def test_results_read_back_to_the_same_example() -> None:
    original = example()
    task = gold_task(original, SCHEMA)
    back, issues = results_to_example(task["data"], task["annotations"][0]["result"], SCHEMA)
    assert issues == []
    assert back == original


def test_prediction_task_carries_scores_model_version_and_the_lowest_score() -> None:
    task = prediction_task(example(), SCHEMA, "camembert-tiny@3")
    [prediction] = task["predictions"]
    assert prediction["model_version"] == "camembert-tiny@3"
    assert prediction["score"] == pytest.approx(0.8)
    assert [r.get("score") for r in prediction["result"]] == [0.9, 0.8, None, None, 0.7, None]
    assert task["data"] | {"meta": None} == {"text": TEXT, "example": "art-s000", "doc": "art", "start": 10, "end": 10 + len(TEXT), "meta": None}


def test_unknown_labels_are_refused_on_the_way_out() -> None:
    bad = example()
    bad.entities[0] = Entity("e1", 2, 6, "COMPANY")
    with pytest.raises(ValueError, match="COMPANY"):
        example_to_results(bad, SCHEMA)


def read(results: list[dict]):
    return results_to_example({"text": TEXT, "example": "x"}, results, SCHEMA)


def test_reanchor_only_when_the_text_is_found_once_nearby() -> None:
    text = "Meta et Meta"
    assert reanchor("xx Meta rachète", "Meta", 0) == 3
    assert reanchor(text, "Meta", 3) is None  # two candidates
    assert reanchor("Meta" + " " * 100, "Meta", 90) is None  # too far
    assert reanchor("rien", "Meta", 0) is None


def test_left_bi_and_broken_relations() -> None:
    results = example_to_results(example(), SCHEMA)
    regions = [r for r in results if r["type"] == "labels"]
    left = {"from_id": "e2", "to_id": "e1", "type": "relation", "direction": "left", "labels": ["HOLDS_SHARE"]}
    both = {"from_id": "e1", "to_id": "e3", "type": "relation", "direction": "bi", "labels": ["COMPETES_WITH"]}
    directed_both = {"from_id": "e1", "to_id": "e3", "type": "relation", "direction": "bi", "labels": ["ACQUIRES"]}
    unlabelled = {"from_id": "e1", "to_id": "e3", "type": "relation", "direction": "right", "labels": []}
    wrong_types = {"from_id": "e4", "to_id": "e1", "type": "relation", "direction": "right", "labels": ["LOCATED_IN"]}
    back, issues = read(regions + [left, both, directed_both, unlabelled, wrong_types])
    assert [(r.head, r.tail, r.label) for r in back.relations] == [("e1", "e2", "HOLDS_SHARE"), ("e1", "e3", "COMPETES_WITH")]
    messages = " | ".join(str(i) for i in issues)
    assert "drawn both ways but ACQUIRES is directed" in messages
    assert "needs exactly one label" in messages
    assert "LOC → ORG is not allowed" in messages
    assert all(issue.dropped for issue in issues)


def test_bad_regions_are_reported_not_kept() -> None:
    regions = [r for r in example_to_results(example(), SCHEMA) if r["type"] == "labels"]
    regions[0]["value"]["labels"] = ["COMPANY"]
    regions[1]["value"]["labels"] = ["ORG", "PERCENT"]
    regions[2]["value"]["start"] += 3  # drifted: « Scale AI » is still found once nearby
    regions[2]["value"]["end"] += 3
    back, issues = read(regions)
    assert [e.id for e in back.entities] == ["e3", "e4"]
    assert back.mention(back.entities[0]) == "Scale AI"
    assert [issue.dropped for issue in issues] == [True, True, False]


def test_malformed_results_and_repeated_region_ids_are_reported() -> None:
    regions = [r for r in example_to_results(example(), SCHEMA) if r["type"] == "labels"]
    repeated = {**regions[3], "value": {**regions[3]["value"], "labels": ["ORG"]}}
    back, issues = read([{**regions[0], "value": "Meta"}, "not a result", regions[3], repeated])
    assert [(e.id, e.label) for e in back.entities] == [("e4", "ORG")]
    messages = [issue.message for issue in issues]
    assert "got []" in messages[0]
    assert "result of type None" in messages[1]
    assert "an earlier region has the same id" in messages[2]
    assert all(issue.dropped for issue in issues)


def test_config_has_every_label_with_distinct_colours_hints_and_character_spans() -> None:
    view = ET.fromstring(labeling_config(SCHEMA))
    labels = view.find("Labels")
    assert [label.get("value") for label in labels] == SCHEMA.entity_labels
    assert len({label.get("background") for label in labels}) == len(SCHEMA.entities)
    assert labels.find("Label[@value='PER']").get("hint") == SCHEMA.entities[0].description
    assert [r.get("value") for r in view.find("Relations")] == SCHEMA.relation_labels
    assert view.find("Text").get("granularity") == "symbol"
    assert labels.get("toName") == view.find("Text").get("name")


def test_config_gives_distinct_colours_when_the_schema_repeats_one() -> None:
    raw = SCHEMA.to_dict()
    for entity in raw["entities"]:
        entity["color"] = "#888888"
    view = ET.fromstring(labeling_config(parse_schema(raw)))
    assert len({label.get("background") for label in view.find("Labels")}) == len(SCHEMA.entities)


def test_a_missing_label_studio_client_names_the_extra(monkeypatch):
    """The SDK is an extra (`veille[annotate]`): without it, the annotate commands say what to install."""
    import sys
    import tomllib

    from veille.annotation.labelstudio.client import Connection, connect

    monkeypatch.setitem(sys.modules, "label_studio_sdk", None)  # what an install without the extra sees
    with pytest.raises(ValueError, match=r"pip install 'veille\[annotate\]'"):
        connect(Connection("http://127.0.0.1:1", "token"))
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("label-studio") for d in project["dependencies"])
    assert project["optional-dependencies"]["annotate"] == ["label-studio-sdk>=2.0"]
