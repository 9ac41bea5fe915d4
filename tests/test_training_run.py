"""``veille train`` / ``veille evaluate`` end to end on the tiny CamemBERT, and their bad-input errors."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import torch
from typer.testing import CliRunner

from veille.annotation.corpus import CorpusError, read_corpus
from veille.annotation.scoring import score_entities, score_relations
from veille.models.base import BaseModelError
from veille.models.predictor import Predictor
from veille.training import trainer
from veille.training.config import TrainConfig
from veille.training.evaluate import Evaluation
from veille.training.trainer import TrainingError, train

runner = CliRunner()


def tiny_config(base, data, output, **overrides) -> TrainConfig:
    settings = dict(
        base_model=str(base), train_files=[str(data)], dev_files=[str(data)], output=str(output), epochs=1, batch_size=8,
        lr_encoder=1e-3, lr_heads=1e-2, max_length=64, stride=16, device="cpu", patience=5,
    )
    return TrainConfig(**{**settings, **overrides})


def test_learns_a_small_training_set(tmp_path, tiny_base_model, mini_gold):
    """Overfitting 12 sentences must reach a high F1 on them: a broken loss or alignment cannot."""
    lines = mini_gold.read_text(encoding="utf-8").splitlines()[:12]
    data = tmp_path / "small.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = tiny_config(tiny_base_model, data, tmp_path / "model", epochs=25, batch_size=4, lr_encoder=3e-3, lr_heads=1e-2, warmup_ratio=0.0, patience=25, dropout=0.0)
    train(config, progress=False)
    gold = read_corpus(data)
    predictor = Predictor.load(tmp_path / "model")
    predicted = predictor.predict([g.text for g in gold])
    for g, p in zip(gold, predicted):
        p.id = g.id
    assert score_entities(gold, predicted).micro.f1 >= 0.9
    assert score_relations(gold, predicted, predictor.schema).micro.f1 >= 0.7


def test_same_seed_same_weights_on_cpu(tmp_path, tiny_base_model, mini_gold):
    for name in ("a", "b"):
        train(tiny_config(tiny_base_model, mini_gold, tmp_path / name), progress=False)
    from safetensors.torch import load_file

    first, second = (load_file(str(tmp_path / name / "model.safetensors")) for name in ("a", "b"))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)  # bit-identical weights


def test_existing_model_is_kept_unless_overwrite(tmp_path, tiny_base_model, mini_gold):
    config = tiny_config(tiny_base_model, mini_gold, tmp_path / "model")
    train(config, progress=False)
    before = (tmp_path / "model" / "model.safetensors").read_bytes()
    with pytest.raises(TrainingError, match="already holds a model; pass --overwrite"):
        train(config, progress=False)
    assert (tmp_path / "model" / "model.safetensors").read_bytes() == before
    train(tiny_config(tiny_base_model, mini_gold, tmp_path / "model", seed=99), overwrite=True, progress=False)
    assert (tmp_path / "model" / "model.safetensors").read_bytes() != before


def test_resume_continues_an_interrupted_run(tmp_path, tiny_base_model, mini_gold):
    """Kill a real training process after its first epoch, then resume it to the end."""
    output = tmp_path / "model"
    config = tiny_config(tiny_base_model, mini_gold, output, epochs=3)
    script = f"from veille.training.config import from_dict; from veille.training.trainer import train; train(from_dict({config.to_dict()!r}), progress=False)"
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = output / ".resume" / "trainer_state.json"
    deadline = time.monotonic() + 120
    while not state.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()
    process.wait()
    assert state.is_file(), "the run finished or failed before its first epoch was saved"
    done = json.loads(state.read_text())["epoch"]
    assert 1 <= done < 3
    with pytest.raises(TrainingError, match="already holds a model"):
        train(config, progress=False)
    result = train(config, resume=True, progress=False)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert not (output / ".resume").exists()
    with pytest.raises(TrainingError, match="nothing to resume"):
        train(config, resume=True, progress=False)


@dataclasses.dataclass
class EveryEpochBest(Evaluation):
    """The real dev evaluation, with a score that rises every epoch: the model directory then holds the last epoch's weights."""

    epoch: int = 0

    @property
    def score(self) -> float:
        return float(self.epoch)


@contextlib.contextmanager
def last_epoch_kept() -> Iterator[None]:
    calls = []

    def rising(*args, **kwargs) -> EveryEpochBest:
        calls.append(1)
        return EveryEpochBest(**vars(trainer.tune_and_evaluate.__wrapped__(*args, **kwargs)), epoch=len(calls))

    rising.__wrapped__ = trainer.tune_and_evaluate
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer, "tune_and_evaluate", rising)
        yield


def weights(output):
    from safetensors.torch import load_file

    return load_file(str(output / "model.safetensors"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_base_model, mini_gold):
    output = tmp_path_factory.mktemp("uninterrupted") / "model"
    with last_epoch_kept():
        result = train(tiny_config(tiny_base_model, mini_gold, output, epochs=3), progress=False)
    return result, weights(output)


@pytest.mark.parametrize(
    "where",
    [
        pytest.param("epoch", id="killed-during-epoch-3"),
        pytest.param("save", id="killed-between-optimizer-and-run-state-of-epoch-2"),
    ],
)
def test_a_resumed_run_equals_the_uninterrupted_run(tmp_path, tiny_base_model, mini_gold, uninterrupted, where):
    """Same weights bit for bit on CPU: data order, dropout RNG, optimizer and scheduler all continue exactly."""
    config = tiny_config(tiny_base_model, mini_gold, tmp_path / "model", epochs=3)
    with last_epoch_kept():
        with pytest.MonkeyPatch.context() as patch:
            if where == "epoch":
                real_epoch = trainer._train_epoch

                def train_epoch(*args, **kwargs):
                    if next(a for a in args if isinstance(a, str)).startswith("epoch 3/"):  # the progress description
                        raise KeyboardInterrupt
                    return real_epoch(*args, **kwargs)

                patch.setattr(trainer, "_train_epoch", train_epoch)
            else:
                real_save, saves = trainer.Accelerator.save_state, []

                def save_state(self, *args, **kwargs):
                    real_save(self, *args, **kwargs)
                    saves.append(1)
                    if len(saves) == 2:
                        raise KeyboardInterrupt

                patch.setattr(trainer.Accelerator, "save_state", save_state)
            with pytest.raises(KeyboardInterrupt):
                train(config, progress=False)
        resumed = train(config, resume=True, progress=False)
    reference, expected = uninterrupted
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in reference.history]
    got = weights(tmp_path / "model")
    assert got.keys() == expected.keys() and all(torch.equal(got[name], expected[name]) for name in got)


def test_bad_training_inputs_are_refused_clearly(tmp_path, tiny_base_model, mini_gold):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(CorpusError, match="no examples"):
        train(tiny_config(tiny_base_model, empty, tmp_path / "m1"), progress=False)
    invalid = tmp_path / "invalid.jsonl"
    invalid.write_text(mini_gold.read_text(encoding="utf-8").splitlines()[0] + "\n{not json\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"invalid.jsonl:2: <line>: invalid JSON"):
        train(tiny_config(tiny_base_model, invalid, tmp_path / "m2"), progress=False)
    with pytest.raises(BaseModelError, match="no-such-model"):
        train(tiny_config(tmp_path / "no-such-model", mini_gold, tmp_path / "m3"), progress=False)
    assert not (tmp_path / "m1").exists() and not (tmp_path / "m3").exists()


def test_a_window_the_encoder_cannot_embed_is_refused_before_training(tmp_path, tiny_base_model, mini_gold):
    with pytest.raises(TrainingError, match="max_length 500 exceeds the encoder's position limit of 128 tokens"):
        train(tiny_config(tiny_base_model, mini_gold, tmp_path / "m", max_length=500), progress=False)
    assert not (tmp_path / "m").exists()


def test_seed_or_test_sentences_never_select_a_model_or_tune_thresholds(tmp_path, tiny_base_model, mini_gold):
    for split in ("seed", "test", "test-articles"):
        dev = tmp_path / f"{split}.jsonl"
        lines = [json.loads(line) for line in mini_gold.read_text(encoding="utf-8").splitlines()[:3]]
        lines[2]["meta"] = {"split": split}
        dev.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n", encoding="utf-8")
        with pytest.raises(TrainingError, match=f"dev data holds 'mini-000-s002' of the held-out split '{split}'"):
            train(tiny_config(tiny_base_model, mini_gold, tmp_path / "m", dev_files=[str(dev)]), progress=False)


def test_cli_train_reports_errors_without_traceback(tmp_path, mini_gold):
    from veille.cli import app

    result = runner.invoke(app, ["train", "--config", "quick", "--base-model", str(tmp_path / "missing"), "--train", str(mini_gold), "--dev", str(mini_gold), "-o", str(tmp_path / "m")])
    assert result.exit_code == 2 and "cannot load base model" in result.output
    result = runner.invoke(app, ["train", "--config", "nope"])
    assert result.exit_code == 2 and "no such config file or preset" in result.output


def test_cli_evaluate_writes_metrics_errors_report_and_charts(tmp_path, tiny_trained_model, mini_gold):
    from veille.cli import app

    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", "--model", str(tiny_trained_model), "--data", str(mini_gold), "-o", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["sentences"] == 26 and metrics["dtype"] == "float32"
    assert set(metrics) >= {"entities", "relations", "relations_gold_entities", "relation_thresholds"}
    assert metrics["relation_thresholds"] == json.loads((tiny_trained_model / "joint_config.json").read_text())["joint"]["relation_thresholds"]
    assert metrics["entities"]["micro"]["support"] == sum(len(e.entities) for e in read_corpus(mini_gold))
    errors = json.loads((out / "errors.json").read_text())
    missed = sum(cause["total"] for cause in errors["relations"]["false_negatives"].values())
    assert missed == metrics["relations"]["micro"]["fn"]  # every missed relation has its cause
    report = (out / "report.md").read_text()
    assert "### Entities" in report and "### Errors" in report and "#### Relations in gold, not predicted" in report
    for chart in ("per_label_f1.png", "confusion.png"):
        assert (out / chart).stat().st_size > 1000
    assert len(read_corpus(out / "predictions.jsonl")) == 26
    assert "macro F1" in result.output and "Relations, strict" in result.output  # the printed table, per section


def test_cli_evaluate_scores_several_splits_each_on_its_own(tmp_path, tiny_trained_model, mini_gold):
    from veille.cli import app

    lines = mini_gold.read_text(encoding="utf-8").splitlines()
    test, seed = tmp_path / "test.jsonl", tmp_path / "seed.jsonl"
    test.write_text("\n".join(lines[:10]) + "\n", encoding="utf-8")
    seed.write_text("\n".join(lines[10:]) + "\n", encoding="utf-8")
    model = tmp_path / "model"
    shutil.copytree(tiny_trained_model, model)
    result = runner.invoke(app, ["evaluate", "-m", str(model), "-d", str(test), "-d", str(seed), "--device", "cpu", "--relation-threshold", "0.3"])
    assert result.exit_code == 0, result.output
    out = model / "eval-test+seed"
    summary = json.loads((out / "metrics.json").read_text())
    assert {name: m["sentences"] for name, m in summary["splits"].items()} == {str(test): 10, str(seed): 16}
    for name, sentences in (("test", 10), ("seed", 16)):
        metrics = json.loads((out / name / "metrics.json").read_text())
        assert metrics["sentences"] == sentences and set(metrics["relation_thresholds"].values()) == {0.3}
        assert (out / name / "errors.json").is_file() and (out / name / "confusion.png").is_file()
    report = (out / "report.md").read_text()
    assert f"## `{test}` (10 sentences)" in report and f"## `{seed}` (16 sentences)" in report and "(test/confusion.png)" in report
    twice = runner.invoke(app, ["evaluate", "-m", str(model), "-d", str(test), "-d", str(tmp_path / "x" / "test.jsonl")])
    assert twice.exit_code == 2 and "several --data files are named test" in twice.output


def test_cli_evaluate_runs_at_the_precision_predict_and_serve_use(monkeypatch, tmp_path, tiny_trained_model, mini_gold):
    import veille.models.devices as devices
    from veille.cli import app

    monkeypatch.setattr(devices, "half_precision", lambda device: "bfloat16")  # as on a GPU with bfloat16
    result = runner.invoke(app, ["evaluate", "-m", str(tiny_trained_model), "-d", str(mini_gold), "-o", str(tmp_path / "e"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["dtype"] == "bfloat16"


def test_cli_evaluate_refuses_schema_mismatch_and_unknown_labels(tmp_path, tiny_trained_model, mini_gold):
    from veille.cli import app

    schema = json.loads((tiny_trained_model / "schema.json").read_text())
    schema["entities"].append({"label": "EVENT", "description": "x"})
    other = tmp_path / "other.json"
    other.write_text(json.dumps(schema))
    result = runner.invoke(app, ["evaluate", "-m", str(tiny_trained_model), "-d", str(mini_gold), "--schema", str(other)])
    assert result.exit_code == 2 and "schema mismatch" in result.output
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text(json.dumps({"id": "x", "text": "Paris 2024", "entities": [{"id": "T1", "start": 0, "end": 5, "label": "EVENT"}]}) + "\n")
    result = runner.invoke(app, ["evaluate", "-m", str(tiny_trained_model), "-d", str(foreign)])
    assert result.exit_code == 2 and "foreign.jsonl:1: entities[0].label: unknown entity label 'EVENT'" in result.output
    result = runner.invoke(app, ["evaluate", "-m", str(tmp_path), "-d", str(mini_gold)])
    assert result.exit_code == 2 and "incomplete model directory" in result.output


def test_the_model_directory_records_no_absolute_path(tiny_trained_model, repo, mini_gold):
    """Data files are recorded by portable path and checksum: the directory can travel to another machine."""
    import hashlib

    for name in ("README.md", "training_config.json", "metrics.json", "joint_config.json"):
        text = (tiny_trained_model / name).read_text(encoding="utf-8")
        assert str(repo) not in text and str(tiny_trained_model.parent) not in text, name
    metrics = json.loads((tiny_trained_model / "metrics.json").read_text(encoding="utf-8"))
    digest = hashlib.sha256(mini_gold.read_bytes()).hexdigest()
    assert metrics["data"]["train_files"] == [{"file": "tests/data/mini_gold.jsonl", "sha256": digest}]
    assert f"`tests/data/mini_gold.jsonl` (sha256 {digest[:12]})" in (tiny_trained_model / "README.md").read_text(encoding="utf-8")
