"""Typed entity markers (``relation_encoder = "markers"``): where the marks go, what an unmarked pass is, and a
trained markers model predicting the same through torch and ONNX Runtime."""

from __future__ import annotations

import importlib.util
import shutil

import pytest
import torch
from transformers import AutoConfig, AutoTokenizer

from veille.annotation.corpus import read_corpus
from veille.annotation.schema import load_schema
from veille.models.batch import Collator
from veille.models.encoding import bio_labels, encode
from veille.models.joint import JointConfig, JointModel, entity_marks
from veille.models.predictor import Predictor

from conftest import MINI_GOLD, assert_same_outputs

SCHEMA = load_schema()


def test_every_window_position_names_its_sentence_token(tiny_base_model):
    """``window_tokens`` maps each window position back to the token it holds, in every overlapping window."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    texts = [example.text for example in read_corpus(MINI_GOLD)[:6]]
    encoded = [encode(tokenizer, text) for text in texts]
    batch = Collator(tokenizer, max_length=16, stride=4)(encoded)  # short windows: most sentences need several
    tokens = batch["token_index"].shape[1]
    assert batch["input_ids"].shape[0] > len(texts)
    seen = set()
    for (window, position), flat in zip(torch.nonzero(batch["window_tokens"] >= 0).tolist(), batch["window_tokens"][batch["window_tokens"] >= 0].tolist()):
        sentence, token = divmod(flat, tokens)
        assert batch["input_ids"][window, position] == encoded[sentence].input_ids[token]
        seen.add((sentence, token))
    assert seen == {(s, t) for s, enc in enumerate(encoded) for t in range(len(enc.input_ids))}  # every token is in some window
    assert not batch["attention_mask"][batch["window_tokens"] < 0].all()  # special and padding positions carry -1


def test_marks_type_each_argument_in_every_window_and_the_earlier_pair_wins_an_overlap():
    # Sentence 0: tokens 0-5 in one window (with a special token each side); sentence 1: tokens 0-3 in two windows.
    window_tokens = torch.tensor([
        [-1, 0, 1, 2, 3, 4, 5, -1],
        [-1, 6, 7, 8, -1, -1, -1, -1],
        [-1, 7, 8, 9, -1, -1, -1, -1],
    ])
    pairs = {
        "pair_sentence": torch.tensor([0, 0, 1]),
        "pair_spans": torch.tensor([[1, 2, 4, 4], [2, 3, 4, 4], [0, 0, 1, 2]]),  # pair 1's head overlaps pair 0's
        "pair_labels": torch.tensor([[0, 1], [2, 1], [3, 0]]),
    }
    marks = entity_marks(window_tokens, torch.Size([2, 6]), pairs["pair_sentence"], pairs["pair_spans"], pairs["pair_labels"])
    assert marks.tolist() == [
        [0, 0, 1, 2, 6, 3, 0, 0],  # type 0 on tokens 1-2 (kept over the overlapping type-2 span), type 2 only on token 3, type 1 on token 4
        [0, 7, 1, 2, 0, 0, 0, 0],  # sentence 1: type 3 on token 0, type 0 on tokens 1-2 …
        [0, 1, 2, 0, 0, 0, 0, 0],  # … in both windows that hold them
    ]


def test_an_unmarked_pass_is_the_shared_pass_and_marks_change_the_context(tiny_base_model):
    config = JointConfig(bio_labels(SCHEMA), SCHEMA.entity_labels, SCHEMA.relation_labels, max_length=64, relation_encoder="markers")
    model = JointModel.from_encoder_config(AutoConfig.from_pretrained(tiny_base_model), config).eval()
    ids = torch.tensor([[0, 11, 12, 13, 14, 15, 2]])
    mask = torch.ones_like(ids)
    plain = model.encode(ids, mask)
    assert torch.allclose(model.encode(ids, mask, torch.zeros_like(ids)), plain, atol=1e-6)
    marked = model.encode(ids, mask, torch.tensor([[0, 1, 2, 0, 0, 0, 0]]))
    assert not torch.allclose(marked[0, 4], plain[0, 4], atol=1e-4)  # an unmarked word sees the marked argument
    with pytest.raises(ValueError, match="unknown relation_encoder 'pure'"):
        JointModel.from_encoder_config(AutoConfig.from_pretrained(tiny_base_model), JointConfig(["O"], ["PER"], ["X"], max_length=64, relation_encoder="pure"))


@pytest.fixture(scope="module")
def markers_model(tiny_base_model, tmp_path_factory):
    """A markers model trained on the mini gold corpus by the real training code (as ``tiny_trained_model``)."""
    from veille.training.config import TrainConfig
    from veille.training.trainer import train

    output = tmp_path_factory.mktemp("markers") / "model"
    config = TrainConfig(
        base_model=str(tiny_base_model), train_files=[str(MINI_GOLD)], dev_files=[str(MINI_GOLD)], output=str(output), relation_encoder="markers",
        epochs=8, batch_size=8, lr_encoder=3e-3, lr_heads=1e-2, warmup_ratio=0.0, max_length=64, stride=16, device="cpu", patience=8,
    )
    train(config, progress=False)
    return output


def test_a_markers_model_predicts_through_torch_and_onnx_alike(markers_model, tmp_path):
    predictor = Predictor.load(markers_model, device="cpu", runtime="torch")
    assert predictor.model.config.relation_encoder == "markers"
    gold = read_corpus(MINI_GOLD)
    texts = [example.text for example in gold]
    ours = predictor.predict(texts)
    assert sum(len(x.relations) for x in ours) > 5
    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("the ONNX half needs the onnx extra")
    from veille.models.runtime import export_onnx

    exported = tmp_path / "model"
    shutil.copytree(markers_model, exported)
    export_onnx(exported)
    onnx_side = Predictor.load(exported, device="cpu", runtime="onnx", dtype="float32")
    assert onnx_side.encoder.takes_marks
    assert_same_outputs(ours, onnx_side.predict(texts))
    assert_same_outputs(predictor.predict_relations(gold), onnx_side.predict_relations(gold))


def test_the_models_benchmark_times_both_relation_encoders_in_one_run(markers_model, tiny_trained_model, tmp_path):
    import json

    from typer.testing import CliRunner

    from veille.serving.benchmark import app as benchmark

    out = tmp_path / "models.json"
    args = ["models", "-m", str(tiny_trained_model), "-m", str(markers_model), "--sentences", "40", "--repeats", "1", "--json", str(out)]
    result = CliRunner().invoke(benchmark, args)
    assert result.exit_code == 0, result.output
    shared, markers = json.loads(out.read_text())["models"]
    assert (shared["relation_encoder"], markers["relation_encoder"], shared["ratio_to_first"]) == ("shared", "markers", 1.0)
    assert markers["ratio_to_first"] > 0 and markers["sentences_per_s"] > 0 and shared["entities"] > 0
