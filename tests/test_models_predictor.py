"""Loading a trained model directory and predicting with it: the Predictor contract."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import copy_with_weight

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


@pytest.mark.parametrize("missing", ["model.safetensors", "schema.json", "joint_config.json", "tokenizer.json"])
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


@pytest.mark.parametrize(
    ("tensor", "value", "index"),
    [("relation_head.3.weight", float("nan"), 0), ("token_head.bias", float("inf"), 0), ("token_head.weight", float("-inf"), -1), ("relation_head.0.weight", float("nan"), 7)],
)
def test_non_finite_weights_of_the_right_size_are_refused(tmp_path, tiny_trained_model, tensor, value, index):
    broken = copy_with_weight(tiny_trained_model, tmp_path / "model", tensor, value, index)
    with pytest.raises(CheckpointError, match=rf"model.safetensors is corrupt: 1 tensor\(s\) hold NaN or infinite values \({tensor}\)"):
        load_model(broken)


def test_check_refuses_what_load_refuses_without_reading_the_encoder(tmp_path, tiny_trained_model):
    """The driver's check of ``--engine ray``: everything but the encoder's values; those are each worker's load to refuse."""
    Predictor.check(tiny_trained_model)
    truncated = tmp_path / "truncated"
    shutil.copytree(tiny_trained_model, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-64])
    with pytest.raises(CheckpointError, match="cannot load the model"):
        Predictor.check(truncated)
    with pytest.raises(CheckpointError, match="no ONNX export"):
        Predictor.check(tiny_trained_model, runtime="onnx")
    nan_encoder = copy_with_weight(tiny_trained_model, tmp_path / "nan", "encoder.embeddings.word_embeddings.weight", float("nan"))
    Predictor.check(nan_encoder)
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        Predictor.load(nan_encoder)


def test_an_edited_schema_is_refused_a_reworded_one_accepted(tmp_path, tiny_trained_model):
    edited = tmp_path / "model"
    shutil.copytree(tiny_trained_model, edited)
    schema = json.loads((edited / "schema.json").read_text())
    schema["relations"][0]["description"] = "reworded for annotators"
    (edited / "schema.json").write_text(json.dumps(schema))
    load_model(edited)
    schema["relations"][0]["head"] = schema["relations"][0]["tail"]  # other allowed argument types than in training
    (edited / "schema.json").write_text(json.dumps(schema))
    with pytest.raises(CheckpointError, match="schema.json is not the schema this model was trained with"):
        load_model(edited)


def test_no_non_finite_score_nor_forbidden_relation_ever_comes_out(tiny_trained_model):
    """Whatever the heads compute (here NaN, as from corrupt weights loaded in memory): nothing unwritable or forbidden."""
    predictor = Predictor.load(tiny_trained_model, device="cpu")
    with torch.no_grad():
        for parameter in predictor.model.relation_head.parameters():
            parameter.fill_(float("nan"))
    examples = predictor.predict(["Alexandr Wang, PDG de Scale AI, rejoint Meta.", LONG], relation_threshold=0.0)
    assert any(e.entities for e in examples)
    for example in examples:
        json.dumps(example.to_json(), allow_nan=False)
        assert example.relations == []
    with torch.no_grad():
        predictor.model.token_head.bias.fill_(float("nan"))
    assert all(e.entities == [] for e in predictor.predict(["Alexandr Wang, PDG de Scale AI, rejoint Meta."]))


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


# --- bounded relation work: memory flat in sentence length (issue 17, item 1) ---


def test_candidate_pair_caps_keep_every_gold_pair_of_the_shipped_corpus(repo):
    from veille.annotation.corpus import read_corpus
    from veille.models.decoding import pair_entities

    schema = load_schema()
    examples = read_corpus(sorted((repo / "annotation" / "corpus").glob("*.jsonl")))
    lost = []
    for example in examples:
        candidates = {(head.id, tail.id) for head, tail in pair_entities(example.entities, schema)}
        lost += [(example.id, r) for r in example.relations if (r.head, r.tail) not in candidates]
    assert sum(len(e.relations) for e in examples) > 2000 and lost == []


def test_candidate_pairs_grow_linearly_with_sentence_length():
    """2,000 entities in one unpunctuated sentence: a bounded number of candidates per entity, not 2,000² pairs."""
    from veille.annotation.document import Entity
    from veille.models.decoding import MAX_PAIR_GAP, MAX_PAIR_NEIGHBOURS, pair_entities

    entities = [Entity(f"T{i}", 10 * i, 10 * i + 6, "ORG") for i in range(2000)]
    pairs = pair_entities(entities, load_schema())
    assert len(pairs) <= 2 * MAX_PAIR_NEIGHBOURS * len(entities)
    assert all(max(h.start, t.start) - min(h.end, t.end) <= MAX_PAIR_GAP for h, t in pairs)
    found = {(h.id, t.id) for h, t in pairs}
    assert {("T0", "T1"), ("T1", "T0"), ("T500", "T520")} <= found and ("T0", "T1999") not in found


def test_relation_head_runs_in_bounded_chunks_with_the_same_result(predictor, monkeypatch):
    import veille.models.predictor as predictor_module
    from veille.annotation.document import Entity, Example

    words = [f"Société{i}" for i in range(600)]
    text = " ".join(words)
    starts = [sum(len(w) + 1 for w in words[:i]) for i in range(len(words))]
    entities = [Entity(f"T{i + 1}", start, start + len(word), "ORG" if i % 3 else "PER") for i, (start, word) in enumerate(zip(starts, words))]
    sizes = []
    original = predictor.model.relation_logits

    def recording(states, pair_sentence, *args):
        sizes.append(len(pair_sentence))
        return original(states, pair_sentence, *args)

    monkeypatch.setattr(predictor.model, "relation_logits", recording)
    chunked = predictor.predict_relations([Example("long", text, entities)], relation_threshold=0.0)[0]
    assert len(sizes) > 1 and max(sizes) <= predictor_module.PAIR_CHUNK
    monkeypatch.setattr(predictor_module, "PAIR_CHUNK", predictor_module.PAIR_BUCKET)
    smaller = predictor.predict_relations([Example("long", text, entities)], relation_threshold=0.0)[0]
    assert chunked.relations and [(r.head, r.tail, r.label) for r in smaller.relations] == [(r.head, r.tail, r.label) for r in chunked.relations]


def test_a_long_sentence_goes_through_the_encoder_a_batch_of_windows_at_a_time(predictor):
    windows = []
    handle = predictor.model.encoder.register_forward_pre_hook(lambda module, args, kwargs: windows.append(kwargs["input_ids"].shape[0]), with_kwargs=True)
    try:
        small = predictor.predict([LONG], batch_size=2)[0]
    finally:
        handle.remove()
    assert len(windows) > 1 and max(windows) <= 2
    whole = predictor.predict([LONG], batch_size=64)[0]
    assert [e.span() for e in small.entities] == [e.span() for e in whole.entities]
