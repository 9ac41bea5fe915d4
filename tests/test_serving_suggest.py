"""``veille annotate suggest``, on the tiny trained model (its ranking: test_models_active_learning.py)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from veille.annotation.corpus import read_corpus
from veille.annotation.labelstudio.push import read_prediction_tasks
from veille.annotation.labelstudio.results import SUGGEST_RANK, SUGGEST_SCORE
from veille.annotation.schema import load_schema
from veille.cli import app


def test_suggest_command_writes_ranked_tasks_that_push_reads(tiny_trained_model, mini_gold, tmp_path) -> None:
    gold = read_corpus(mini_gold)
    articles = tmp_path / "pool.jsonl"
    lines = [{"id": f"art{i}", "text": " ".join(g.text for g in gold[i * 5 : i * 5 + 5])} for i in range(5)]
    articles.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    known = tmp_path / "known.jsonl"
    known.write_text("".join(json.dumps(g.to_json(), ensure_ascii=False) + "\n" for g in gold[:5]), encoding="utf-8")
    out = tmp_path / "suggest.json"
    result = CliRunner().invoke(
        app, ["annotate", "suggest", "--model", str(tiny_trained_model), str(articles), "-n", "8", "--per-document", "2", "--gold", str(known), "-o", str(out), "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    tasks, problems = read_prediction_tasks(out, load_schema())
    assert problems == [] and len(tasks) == 8
    assert [t["data"][SUGGEST_RANK] for t in tasks] == list(range(1, 9))
    scores = [t["data"][SUGGEST_SCORE] for t in tasks]
    assert scores == sorted(scores) and [t["predictions"][0]["score"] for t in tasks] == scores
    docs = [t["data"]["doc"] for t in tasks]
    assert "art0" not in docs  # its five sentences are all in the gold file
    assert all(docs.count(doc) <= 2 for doc in docs)
    for task in tasks:
        article = next(line["text"] for line in lines if line["id"] == task["data"]["doc"])
        assert article[task["data"]["start"] : task["data"]["end"]] == task["data"]["text"]


def test_suggest_with_no_existing_input_or_an_unknown_strategy_stops_before_loading_the_model(tmp_path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["annotate", "suggest", "--model", str(tmp_path / "no-model"), str(tmp_path / "missing.txt")])
    assert missing.exit_code == 2 and "nothing to rank" in missing.output and "cannot load model" not in missing.output
    unknown = runner.invoke(app, ["annotate", "suggest", "--model", str(tmp_path / "no-model"), str(tmp_path), "--strategy", "loudest"])
    assert unknown.exit_code == 2 and "unknown strategy 'loudest'" in unknown.output
