"""The learning-curve simulation (``training/learning_curve.py``) end to end on the tiny CamemBERT."""

from __future__ import annotations

import json

import pytest

from veille.annotation.corpus import read_corpus, write_corpus
from veille.training import learning_curve, trainer
from veille.training.learning_curve import main, sentences_to_reach


@pytest.fixture()
def splits(mini_gold, tmp_path):
    """The mini gold cut by document: four documents are the pool, one is dev, one is test."""
    gold = read_corpus(mini_gold)
    docs = sorted({g.doc for g in gold})
    files = {}
    for name, chosen in (("train", docs[:4]), ("dev", docs[4:5]), ("test", docs[5:])):
        files[name] = tmp_path / f"{name}.jsonl"
        write_corpus(files[name], [g for g in gold if g.doc in chosen])
    return files


def arguments(splits, tiny_base_model, out) -> list[str]:
    tiny = {
        "base_model": json.dumps(str(tiny_base_model)), "epochs": "1", "batch_size": "4", "max_length": "64", "stride": "16",
        "freeze_embeddings": "false", "freeze_layers": "0", "device": "'cpu'", "predicted_pairs_after": "0",
        "min_epoch_sentences": "0",  # quick repeats small sets to 1,600 sentences an epoch: too long for a test
    }
    return [
        "--out", str(out), "--seeds", "1", "--steps", "4", "8", "12", "--strategies", "random", "uncertainty",
        "--train", str(splits["train"]), "--dev", str(splits["dev"]), "--test", str(splits["test"]),
        *(item for key, value in tiny.items() for item in ("--set", f"{key}={value}")),
    ]


def counting_trainings(monkeypatch) -> list[str]:
    """Count the real trainings the simulation starts (their output folders)."""
    calls: list[str] = []
    real = trainer.train

    def counted(config, **kwargs):
        calls.append(config.output)
        return real(config, **kwargs)

    monkeypatch.setattr(trainer, "train", counted)
    return calls


def test_curve_adds_pool_sentences_once_resumes_without_retraining_and_writes_outputs(splits, tiny_base_model, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "curve"
    args = arguments(splits, tiny_base_model, out)
    trainings = counting_trainings(monkeypatch)
    assert main(args) == 0
    assert len(trainings) == 5  # one shared start, then 2 steps × 2 strategies

    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    runs = saved["runs"]
    assert [(r["strategy"], r["sentences"]) for r in runs] == [("random", 4), ("random", 8), ("random", 12), ("uncertainty", 4), ("uncertainty", 8), ("uncertainty", 12)]
    pool = {e.id for e in read_corpus(splits["train"])}
    held_out = {e.id for name in ("dev", "test") for e in read_corpus(splits[name])}
    for strategy in ("random", "uncertainty"):
        steps = [r for r in runs if r["strategy"] == strategy]
        for earlier, later in zip(steps, steps[1:]):
            chosen = earlier["next"][strategy]
            assert later["labelled"] == earlier["labelled"] + chosen  # the chosen batch, added to what was labelled
            assert len(chosen) == 4 and not set(chosen) & set(earlier["labelled"])
        assert len(set(steps[-1]["labelled"])) == 12 and set(steps[-1]["labelled"]) <= pool and not set(steps[-1]["labelled"]) & held_out
        assert all(0.0 <= r[split][kind] <= 1.0 for r in steps for split in ("dev", "test") for kind in ("entities", "relations"))
    assert runs[0] == {**runs[3], "strategy": "random"}  # both strategies share the seed's start training
    assert runs[1]["labelled"] != runs[4]["labelled"]  # …then choose differently
    assert set(saved["bar"]["sentences_to_reach"]) == {"uncertainty"}

    table = (out / "learning_curve.md").read_text(encoding="utf-8")
    assert "| uncertainty | 12 | 1 |" in table and "random selection's mean test F1 at 12 sentences" in table
    assert table in capsys.readouterr().out
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    steps_left = sorted(p.relative_to(out).as_posix() for p in (out / "seed1").rglob("*"))
    assert steps_left == sorted([f"seed1/{d}" for d in ("start-4", "random-8", "random-12", "uncertainty-8", "uncertainty-12")] + [f"seed1/{d}/results.json" for d in ("start-4", "random-8", "random-12", "uncertainty-8", "uncertainty-12")])

    assert main(args) == 0  # everything done: nothing retrained, same results
    assert len(trainings) == 5 and json.loads((out / "results.json").read_text(encoding="utf-8")) == saved
    (out / "seed1" / "uncertainty-12" / "results.json").unlink()  # as if killed during the last training
    assert main([*args, "--report-only"]) == 0  # what finished, training nothing
    partial = (out / "learning_curve.md").read_text(encoding="utf-8")
    assert len(trainings) == 5 and "| uncertainty | 8 | 1 |" in partial and "| uncertainty | 12 |" not in partial and "No seed has finished every step" in partial
    assert main(args) == 0
    assert trainings[5:] == [str(out / "seed1" / "uncertainty-12" / "model")]


def test_between_points_label_the_head_of_the_batch_and_leave_the_schedule_as_it_was(splits, tiny_base_model, tmp_path, monkeypatch) -> None:
    out = tmp_path / "curve"
    args = arguments(splits, tiny_base_model, out)
    trainings = counting_trainings(monkeypatch)
    assert main(args) == 0
    plain = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert main([*args, "--between", "6", "10"]) == 0
    assert len(trainings) == 5 + 4  # 2 points × 2 strategies; no step trained again
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    runs = {(r["strategy"], r["sentences"]): r for r in saved["runs"]}
    assert sorted(runs) == sorted((s, n) for s in ("random", "uncertainty") for n in (4, 6, 8, 10, 12))
    for strategy in ("random", "uncertainty"):
        assert runs[(strategy, 6)]["labelled"] == runs[(strategy, 8)]["labelled"][:6]  # the first 2 of the batch chosen at 4
        assert runs[(strategy, 10)]["labelled"] == runs[(strategy, 12)]["labelled"][:10]
        assert runs[(strategy, 6)]["next"] == {} and runs[(strategy, 8)] == next(r for r in plain["runs"] if (r["strategy"], r["sentences"]) == (strategy, 8))
    assert saved["complete_seeds"] == plain["complete_seeds"] == [1]
    assert "| uncertainty | 6 | 1 |" in (out / "learning_curve.md").read_text(encoding="utf-8")
    assert main([*args, "--between", "6", "10"]) == 0 and len(trainings) == 9  # all done: nothing retrained
    stepped = tmp_path / "stepped"  # a schedule with a real step at 6 chooses the very sentences the point at 6 labelled
    assert main([*arguments(splits, tiny_base_model, stepped), "--steps", "4", "6", "12"]) == 0
    for record in json.loads((stepped / "results.json").read_text(encoding="utf-8"))["runs"]:
        if record["sentences"] == 6:
            assert record["labelled"] == runs[(record["strategy"], 6)]["labelled"]


@pytest.mark.parametrize("size", ["4", "13", "2"])
def test_a_between_point_must_lie_between_steps(splits, tiny_base_model, tmp_path, capsys, size) -> None:
    with pytest.raises(SystemExit):
        main([*arguments(splits, tiny_base_model, tmp_path / "curve"), "--between", size])
    assert "each --between size must lie between two --steps" in capsys.readouterr().err


def test_a_pool_holding_a_dev_sentence_is_refused(splits, tiny_base_model, tmp_path) -> None:
    leaky = tmp_path / "leaky.jsonl"
    write_corpus(leaky, read_corpus(splits["train"]) + read_corpus(splits["dev"])[:1])
    args = arguments({**splits, "train": leaky}, tiny_base_model, tmp_path / "curve")
    with pytest.raises(SystemExit, match="is also in .*dev.jsonl"):
        main(args)
    assert not (tmp_path / "curve").exists()


def test_a_bad_gold_line_is_named_by_file_line_and_field(splits, tiny_base_model, tmp_path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text(splits["test"].read_text(encoding="utf-8") + '{"id": "x", "entities": []}\n', encoding="utf-8")
    lines = len(broken.read_text(encoding="utf-8").splitlines())
    with pytest.raises(SystemExit, match=rf"invalid gold file:\n.*broken\.jsonl:{lines}: text"):
        main(arguments({**splits, "test": broken}, tiny_base_model, tmp_path / "curve"))
    assert not (tmp_path / "curve").exists()


def test_steps_must_increase(splits, tiny_base_model, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        main([*arguments(splits, tiny_base_model, tmp_path / "curve"), "--steps", "8", "4"])
    assert "--steps must be positive and increasing" in capsys.readouterr().err


def test_sentences_to_reach_interpolates_between_steps() -> None:
    curve = [(100, 0.5), (200, 0.6), (400, 0.8)]
    assert sentences_to_reach(curve, 0.7) == pytest.approx(300)
    assert sentences_to_reach(curve, 0.4) == 100
    assert sentences_to_reach(curve, 0.9) is None


def test_bar_compares_each_strategy_with_random_at_its_last_step() -> None:
    means = {
        ("random", 100): {"seeds": 2, "dev": {"entities": 0.4, "relations": 0.1}, "test": {"entities": 0.4, "relations": 0.1}},
        ("random", 800): {"seeds": 2, "dev": {"entities": 0.7, "relations": 0.3}, "test": {"entities": 0.7, "relations": 0.3}},
        ("uncertainty", 100): {"seeds": 2, "dev": {"entities": 0.4, "relations": 0.1}, "test": {"entities": 0.4, "relations": 0.1}},
        ("uncertainty", 800): {"seeds": 2, "dev": {"entities": 0.75, "relations": 0.2}, "test": {"entities": 0.75, "relations": 0.2}},
    }
    reached = learning_curve.bar(means)
    assert reached["sentences_to_reach"]["uncertainty"] == {"entities": pytest.approx(100 + 700 * 0.3 / 0.35), "relations": None}
    assert "| uncertainty | 700 | not reached |" in learning_curve.markdown(means, reached)
