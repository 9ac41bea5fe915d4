"""Loading a trained model directory and predicting with it: the Predictor contract."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from veille.annotation.schema import load_schema, parse_schema
from veille.models.checkpoint import REQUIRED_FILES, CheckpointError, check_schema, load_model
from veille.models.predictor import Predictor

LONG = " ".join(["Alexandr Wang, PDG de Scale AI, rejoint Meta à Menlo Park pour 14 milliards de dollars."] * 8)


@pytest.fixture(scope="module")
def predictor(tiny_trained_model) -> Predictor:
    return Predictor.load(tiny_trained_model, device="cpu")


def test_predict_returns_one_valid_example_per_sentence(predictor):
    sentences = ["Alexandr Wang, PDG de Scale AI, rejoint Meta.", "", LONG, "Mistral AI concurrence OpenAI."]
    examples = predictor.predict(sentences, batch_size=2)
    assert [e.text for e in examples] == sentences
    for example in examples:
        assert [e.id for e in example.entities] == [f"T{i}" for i in range(1, len(example.entities) + 1)]
        for entity in example.entities:
            assert 0 <= entity.start < entity.end <= len(example.text) and 0.0 <= entity.score <= 1.0
            assert example.mention(entity) == example.mention(entity).strip()
        ids = {e.id for e in example.entities}
        assert all(r.head in ids and r.tail in ids and 0.0 <= r.score <= 1.0 for r in example.relations)
    assert examples[1].entities == []


def test_one_encoder_pass_per_batch_serves_both_heads(predictor):
    calls = []
    handle = predictor.model.encoder.register_forward_hook(lambda module, args, output: calls.append(1))
    try:
        predictor.predict(["Meta rachète Scale AI.", "Wang rejoint Meta.", "Apple est à Cupertino."], batch_size=32, relation_threshold=0.0)
    finally:
        handle.remove()
    assert len(calls) == 1


def test_long_sentence_entities_cover_its_end(predictor):
    """No silent truncation: with windows, the model sees (and may tag) the end of a long sentence."""
    assert len(predictor.tokenizer(LONG)["input_ids"]) > 2 * predictor.model.config.max_length
    alone = predictor.predict([LONG])[0]
    assert alone.entities and max(e.end for e in alone.entities) > len(LONG) // 2


def test_thresholds_filter_scores(predictor):
    text = ["Alexandr Wang, PDG de Scale AI, rejoint Meta."]
    assert predictor.predict(text, min_entity_score=1.01)[0].entities == []
    assert predictor.predict(text, relation_threshold=1.01)[0].relations == []


def test_model_directory_holds_everything_and_names_its_version(tiny_trained_model, predictor):
    names = {p.name for p in tiny_trained_model.iterdir()}
    assert set(REQUIRED_FILES) | {"metrics.json", "README.md", "training_curves.png", "per_label_f1.png"} <= names
    assert predictor.model_name == tiny_trained_model.name and predictor.model_version != "unknown"
    assert predictor.schema.same_labels(load_schema())
    card = (tiny_trained_model / "README.md").read_text(encoding="utf-8")
    assert "## Scores on dev" in card and "CPU" in card and "| PER |" in card
    assert "relation thresholds, tuned per label on dev: EMPLOYEE_OF 0." in card


@pytest.mark.parametrize("missing", ["model.safetensors", "schema.json", "joint_config.json"])
def test_incomplete_directory_is_refused_naming_the_missing_file(tmp_path, tiny_trained_model, missing):
    broken = tmp_path / "model"
    shutil.copytree(tiny_trained_model, broken)
    (broken / missing).unlink()
    with pytest.raises(CheckpointError, match=f"incomplete model directory, missing {missing}"):
        Predictor.load(broken)


def test_corrupt_weights_are_refused(tmp_path, tiny_trained_model):
    broken = tmp_path / "model"
    shutil.copytree(tiny_trained_model, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="cannot load the model"):
        load_model(broken)


def test_weights_and_marker_from_two_saves_are_refused(tmp_path, tiny_trained_model):
    broken = tmp_path / "model"
    shutil.copytree(tiny_trained_model, broken)
    marker = json.loads((broken / "joint_config.json").read_text())
    marker["model_version"] = "20000101-000000-deadbeef"  # as if the weights' rename happened and this one did not
    (broken / "joint_config.json").write_text(json.dumps(marker))
    with pytest.raises(CheckpointError, match="come from two different saves"):
        load_model(broken)


def test_schema_mismatch_is_explained(tiny_trained_model):
    other = load_schema().to_dict()
    other["entities"] = [e for e in other["entities"] if e["label"] != "PRODUCT"]
    other["relations"] = [r for r in other["relations"] if r["label"] != "DEVELOPS"]
    with pytest.raises(CheckpointError, match=r"schema mismatch.*only in the model \['PRODUCT'\]"):
        check_schema(load_schema(), parse_schema(json.loads(json.dumps(other))), tiny_trained_model)
    check_schema(load_schema(), load_schema(), tiny_trained_model)  # same labels: accepted


def test_an_unusable_device_is_refused_before_loading(tmp_path):
    from veille.models.devices import resolve_device

    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU is usable here"):
            Predictor.load(tmp_path / "no-model-needed", device="cuda")


def test_training_saves_a_tuned_threshold_per_relation_label(tiny_trained_model, predictor):
    from veille.training.thresholds import GRID

    saved = json.loads((tiny_trained_model / "joint_config.json").read_text())["joint"]["relation_thresholds"]
    assert set(saved) == set(predictor.schema.relation_labels) and all(value in GRID for value in saved.values())
    assert predictor.relation_thresholds == saved


def test_each_label_uses_its_threshold_unless_one_value_overrides_them_all(tmp_path, tiny_trained_model, predictor):
    text = ["Alexandr Wang, PDG de Scale AI, rejoint Meta.", "Meta rachète Scale AI et concurrence OpenAI à Menlo Park."]
    everything = predictor.predict(text, relation_threshold=0.0)
    found = sorted({r.label for e in everything for r in e.relations})
    assert found, "with a threshold of 0 the tiny model finds relations"
    blocked = set(found[::2])
    model = tmp_path / "model"
    shutil.copytree(tiny_trained_model, model)
    marker = json.loads((model / "joint_config.json").read_text())
    marker["joint"]["relation_thresholds"] = {label: 1.01 if label in blocked else 0.0 for label in marker["joint"]["relation_labels"]}
    (model / "joint_config.json").write_text(json.dumps(marker))
    reloaded = Predictor.load(model, device="cpu")
    assert [e.relations for e in reloaded.predict(text)] == [[r for r in e.relations if r.label not in blocked] for e in everything]
    assert [e.relations for e in reloaded.predict(text, relation_threshold=0.0)] == [e.relations for e in everything]


def test_a_model_with_the_former_single_label_relation_head_is_refused_with_the_reason(tmp_path, tiny_trained_model):
    old = tmp_path / "model"
    shutil.copytree(tiny_trained_model, old)
    marker = json.loads((old / "joint_config.json").read_text())
    del marker["relation_head"]
    (old / "joint_config.json").write_text(json.dumps(marker))
    with pytest.raises(CheckpointError, match="relation head predicts one label per pair; train it again"):
        load_model(old)


def test_inference_precision_follows_the_one_policy_of_devices(monkeypatch, tiny_trained_model):
    """evaluate, predict and serve all load through Predictor.load: its default is the policy's choice."""
    import veille.models.devices as devices

    assert Predictor.load(tiny_trained_model, device="cpu").dtype == "float32"
    monkeypatch.setattr(devices, "half_precision", lambda device: "bfloat16")
    assert Predictor.load(tiny_trained_model, device="cpu").dtype == "bfloat16"
    assert Predictor.load(tiny_trained_model, device="cpu", dtype="float32").dtype == "float32"
    with pytest.raises(ValueError, match="unknown dtype 'float8'"):
        Predictor.load(tiny_trained_model, device="cpu", dtype="float8")
