"""The ONNX runtime (issue 12): `veille export onnx`, parity with torch, stale exports, int8, --runtime on every command."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys

import pytest
from typer.testing import CliRunner

from veille.annotation.corpus import read_corpus
from veille.annotation.document import Example
from veille.cli import app
from veille.models.checkpoint import CheckpointError, load_model, save_model
from veille.models.predictor import Predictor
from veille.models.runtime import FILES, VERSION_KEY, OnnxUnavailable, export_path

from conftest import assert_same_outputs

MISSING = "the ONNX tests need the onnx extra: pip install 'veille[onnx]'"
if importlib.util.find_spec("onnxruntime") is None:  # skipped locally without the extra; .ci/run installs it, so CI fails
    if os.environ.get("CI"):
        pytest.fail(MISSING, pytrace=False)
    pytest.skip(MISSING, allow_module_level=True)



def run(*args: object):
    return CliRunner().invoke(app, [*map(str, args)], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def exported(tiny_trained_model, tmp_path_factory):
    """A copy of the tiny trained model with its float32 and int8 ONNX exports, made by the CLI."""
    model = tmp_path_factory.mktemp("onnx") / "model"
    shutil.copytree(tiny_trained_model, model)
    result = run("export", "onnx", model, "--int8")
    assert result.exit_code == 0, result.output
    return model


def shipped_sentences(repo) -> list[Example]:
    corpus = repo / "annotation" / "corpus"
    return read_corpus([corpus / "test.jsonl", corpus / "seed.jsonl"])


def test_export_writes_both_files_stamped_with_the_weights_version(exported) -> None:
    import onnx

    assert sorted(p.name for p in (exported / "onnx").iterdir()) == sorted(FILES.values())  # no staging folder left
    version = load_model(exported).version
    for precision in FILES:
        metadata = {p.key: p.value for p in onnx.load(str(export_path(exported, precision)), load_external_data=False).metadata_props}
        assert metadata[VERSION_KEY] == version


def test_float32_export_predicts_what_torch_predicts_on_the_test_and_seed_splits(exported, repo) -> None:
    texts = [example.text for example in shipped_sentences(repo)]
    torch_side = Predictor.load(exported, device="cpu", runtime="torch")
    onnx_side = Predictor.load(exported, device="cpu", runtime="onnx", dtype="float32")
    assert (onnx_side.runtime, onnx_side.dtype, torch_side.runtime) == ("onnx", "float32", "torch")
    ours = torch_side.predict(texts)
    assert sum(len(x.entities) for x in ours) > 100 and sum(len(x.relations) for x in ours) > 10
    assert_same_outputs(ours, onnx_side.predict(texts))
    gold = shipped_sentences(repo)[:60]
    assert_same_outputs(torch_side.predict_relations(gold), onnx_side.predict_relations(gold))


def test_int8_export_predicts_through_the_cli(exported, tmp_path) -> None:
    article = tmp_path / "a.txt"
    article.write_text("Arthur Mensch, cofondateur de Mistral AI, a annoncé une levée de 600 millions d'euros à Paris.", encoding="utf-8")
    lines = {}
    for runtime, dtype in (("torch", "float32"), ("onnx", "int8")):
        result = run("predict", "--model", exported, article, "--runtime", runtime, "--dtype", dtype, "--threads", "1", "-q")
        assert result.exit_code == 0, result.output
        lines[runtime] = json.loads(result.stdout.splitlines()[0])
    assert lines["onnx"]["entities"] and {e["label"] for e in lines["onnx"]["entities"]} <= {e["label"] for e in lines["torch"]["entities"]} | {"ORG", "PER", "LOC", "MONEY"}
    assert lines["onnx"]["meta"]["model_version"] == lines["torch"]["meta"]["model_version"]


def test_auto_takes_the_int8_export_on_cpu_and_threads_are_set_once(exported, tiny_trained_model) -> None:
    chosen = Predictor.load(exported, device="cpu", threads=1)
    assert (chosen.runtime, chosen.dtype) == ("onnx", "int8")
    assert chosen.encoder.session.get_session_options().intra_op_num_threads == 1
    assert Predictor.load(tiny_trained_model, device="cpu").runtime == "torch"  # no export: torch


def test_stale_export_is_refused_by_onnx_and_passed_over_by_auto(exported, tmp_path, capsys) -> None:
    retrained = tmp_path / "model"
    shutil.copytree(exported, retrained)
    loaded = load_model(retrained)
    save_model(retrained, loaded.model, loaded.tokenizer, loaded.schema, loaded.training_config, loaded.info["base_model"])  # a new save, a new version
    with pytest.raises(CheckpointError, match=rf"exported from weights version {loaded.version} but the model is version .*run `veille export onnx {retrained}` again"):
        Predictor.load(retrained, device="cpu", runtime="onnx")
    assert Predictor.load(retrained, device="cpu", runtime="auto").runtime == "torch"
    assert "running the torch encoder instead" in capsys.readouterr().err
    result = run("predict", "--model", retrained, "-", "--runtime", "onnx")
    assert result.exit_code == 2 and "trained again since" in result.output


def test_runtime_choices_that_cannot_work_are_refused_with_the_way_out(exported, tiny_trained_model) -> None:
    with pytest.raises(ValueError, match="--dtype int8 runs on the ONNX runtime only"):
        Predictor.load(exported, device="cpu", runtime="torch", dtype="int8")
    with pytest.raises(ValueError, match="runs on the CPU only"):
        Predictor.load(exported, device="cuda", runtime="onnx")
    with pytest.raises(ValueError, match="not bfloat16"):
        Predictor.load(exported, device="cpu", runtime="onnx", dtype="bfloat16")
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        Predictor.load(exported, runtime="tensorrt")
    with pytest.raises(CheckpointError, match=rf"no ONNX export; run `veille export onnx {tiny_trained_model}`"):
        Predictor.load(tiny_trained_model, device="cpu", runtime="onnx")


def test_without_the_extra_export_and_runtime_say_how_to_install_it(exported, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(OnnxUnavailable, match=r"pip install 'veille\[onnx\]'"):
        Predictor.load(exported, device="cpu", runtime="onnx")
    result = run("export", "onnx", exported)
    assert result.exit_code == 2 and "pip install 'veille[onnx]'" in result.output
    assert Predictor.load(exported, device="cpu").runtime == "torch"  # auto passes the export over


def test_evaluate_with_the_onnx_runtime_scores_as_torch(exported, mini_gold, tmp_path) -> None:
    scores = {}
    for runtime in ("torch", "onnx"):
        result = run("evaluate", "-m", exported, "-d", mini_gold, "-o", tmp_path / runtime, "--runtime", runtime, "--dtype", "float32")
        assert result.exit_code == 0, result.output
        metrics = json.loads((tmp_path / runtime / "metrics.json").read_text())
        assert metrics["runtime"] == runtime
        scores[runtime] = (metrics["entities"]["micro"], metrics["relations"]["micro"])
    assert scores["onnx"] == scores["torch"]


def test_serve_runs_the_onnx_runtime(exported, veille_serve) -> None:
    import httpx

    text = "Alexandr Wang, PDG de Scale AI, rejoint Meta."
    expected = Predictor.load(exported, device="cpu", runtime="onnx", dtype="int8").predict([text])[0]
    with veille_serve(exported, "--runtime", "onnx", "--threads", "1") as (url, _):
        info = httpx.get(f"{url}/v1/info").json()
        found = httpx.post(f"{url}/v1/extract", json={"texts": [text]}).json()["results"][0]
    assert (info["runtime"], info["dtype"]) == ("onnx", "int8")
    assert [(e["start"], e["end"], e["label"]) for e in found["entities"]] == [(e.start, e.end, e.label) for e in expected.entities]


def test_throughput_benchmark_compares_every_runtime_in_one_run(exported, tmp_path, monkeypatch) -> None:
    import veille.serving.benchmark as module
    from veille.serving.benchmark import app as benchmark

    short = ["Alexandr Wang, PDG de Scale AI, rejoint Meta.", "Arthur Mensch dirige Mistral AI à Paris.", "Mistral AI concurrence OpenAI."]
    # short sentences: the tiny encoder has 130 positions, and the HF pipeline does not cut long sentences into windows
    monkeypatch.setattr(module, "corpus_sentences", lambda count: [short[i % len(short)] for i in range(count)])
    out = tmp_path / "throughput.json"
    result = CliRunner().invoke(benchmark, ["throughput", "--model", str(exported), "--sentences", "48", "--repeats", "1", "--threads", "1", "--no-cold-start", "--json", str(out)])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert list(figures["veille"]) == ["torch", "onnx", "onnx-int8"]  # torch and both exports, found by default
    torch_side, onnx_side = figures["veille"]["torch"], figures["veille"]["onnx"]
    assert (onnx_side["runtime"], onnx_side["dtype"], figures["veille"]["onnx-int8"]["dtype"]) == ("onnx", "float32", "int8")
    assert (onnx_side["entities"], onnx_side["relations"]) == (torch_side["entities"], torch_side["relations"]) and torch_side["entities"] > 0
    assert all(side["ratio"] > 0 and side["tokens_per_s"] > side["sentences_per_s"] > 0 for side in figures["veille"].values())
    assert "cold_start_s" not in figures
