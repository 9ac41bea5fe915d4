"""``veille predict`` end to end on a tiny trained model: inputs, offsets, formats, errors, streaming."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from itertools import count

import pytest
from typer.testing import CliRunner

from veille.annotation.articles import Article, read_articles
from veille.annotation.labelstudio.push import read_prediction_tasks
from veille.annotation.schema import load_schema
from veille.annotation.sentences import split_sentences
from veille.cli import app
from veille.serving.pipeline import PredictOptions, predict_articles

ARTICLES = {
    "mistral": "Arthur Mensch, cofondateur de Mistral AI, a annoncé une levée de 600 millions d'euros.\n\n"
    "La start-up parisienne rivalise avec OpenAI et Anthropic. Elle emploie 150 personnes à Paris.",
    "meta": "Meta a investi 14,3 milliards de dollars dans Scale AI. Alexandr Wang, PDG de Scale AI, rejoint Meta.",
}


def predict(*args: object, stdin: bytes | None = None):
    return CliRunner().invoke(app, ["predict", *map(str, args)], input=stdin, env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def predictor(tiny_trained_model):
    from veille.models.predictor import Predictor

    return Predictor.load(tiny_trained_model, device="cpu")


@pytest.fixture
def corpus(tmp_path):
    """A folder with nested .txt articles, plus a JSONL file with good and bad lines."""
    folder = tmp_path / "articles"
    (folder / "2025").mkdir(parents=True)
    (folder / "mistral.txt").write_text(ARTICLES["mistral"], encoding="utf-8")
    (folder / "2025" / "meta.txt").write_text(ARTICLES["meta"], encoding="utf-8")
    jsonl = tmp_path / "batch.jsonl"
    jsonl.write_bytes(
        b'{"id": "j1", "text": "Google rach\xc3\xa8te Wiz pour 32 milliards de dollars."}\n'
        b"{not json\n"
        b'{"id": "j3", "text": "   "}\n'
        b'{"id": "j4", "text": "Hugging Face s\'installe \xc3\xa0 Paris."}\n'
    )
    return folder, jsonl


def test_article_offsets_are_the_sentence_predictions_shifted(predictor, tiny_trained_model, corpus, tmp_path) -> None:
    """Each article line holds exactly what the model predicts on its sentences, moved to article offsets."""
    folder, _ = corpus
    out = tmp_path / "out.jsonl"
    result = predict(folder, "--model", tiny_trained_model, "-o", out, "--relation-threshold", "0.0")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["id"] for line in lines] == ["2025/meta", "mistral"]
    for line in lines:
        text = line["text"]
        sentences = split_sentences(text)
        expected = []
        for sentence, example in zip(sentences, predictor.predict([s.text for s in sentences], relation_threshold=0.0)):
            expected += [(e.start + sentence.start, e.end + sentence.start, e.label, round(e.score, 4)) for e in example.entities]
        assert [(e["start"], e["end"], e["label"], e["score"]) for e in line["entities"]] == expected
        assert all(text[e["start"] : e["end"]] == e["text"] for e in line["entities"])
        ids = [e["id"] for e in line["entities"]]
        assert len(set(ids)) == len(ids)
        assert all(r["head"] in ids and r["tail"] in ids and 0.0 <= r["score"] <= 1.0 for r in line["relations"])
        assert line["meta"]["model"] == predictor.model_name and line["meta"]["model_version"] == predictor.model_version


def test_bad_inputs_are_reported_skipped_and_the_rest_is_written(tiny_trained_model, corpus, tmp_path) -> None:
    folder, jsonl = corpus
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Soci\xe9t\xe9 G\xe9n\xe9rale".encode("latin-1"))
    out = tmp_path / "out.jsonl"
    result = predict(jsonl, latin1, folder, "--model", tiny_trained_model, "-o", out, "-q")
    assert result.exit_code == 1
    assert f"{jsonl}:2: <line>: invalid JSON" in result.stderr
    assert f"{jsonl}:3: text: missing, empty or not a string" in result.stderr
    assert f"{latin1}:1: <text>: not UTF-8" in result.stderr
    assert "3 input(s) skipped" in result.stderr
    ids = [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert ids == ["j1", "j4", "2025/meta", "mistral"]


def test_hostile_jsonl_lines_are_reported_and_skipped_never_abort_the_run(tiny_trained_model, tmp_path) -> None:
    """A huge number, 100,000 nested arrays, a lone surrogate: each a reported line, the rest predicted."""
    jsonl = tmp_path / "hostile.jsonl"
    lines = [
        json.dumps({"id": "first", "text": ARTICLES["meta"]}),
        '{"id": ' + "7" * 5000 + ', "text": "Meta rachète Scale AI."}',
        "[" * 100_000 + "]" * 100_000,
        '{"id": "surrogate", "text": "Meta \\ud800 rachète Scale AI."}',
        '{"id": "nan", "text": "Meta rachète Scale AI.", "score": NaN}',
        json.dumps({"id": "last", "text": ARTICLES["mistral"]}),
    ]
    jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = predict(jsonl, "--model", tiny_trained_model, "-o", out, "-q")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert f"{jsonl}:2: <line>: a number of more than 4300 digits" in result.stderr
    assert f"{jsonl}:3: <line>: nested too deeply" in result.stderr
    assert f"{jsonl}:4: text: not valid Unicode: lone surrogate U+D800 at character 5" in result.stderr
    assert f"{jsonl}:5: score: nan is not a finite number" in result.stderr
    assert "4 input(s) skipped" in result.stderr
    assert [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()] == ["first", "last"]


def test_sigterm_leaves_the_previous_output_and_no_temp_file(tiny_trained_model, tmp_path) -> None:
    """SIGTERM while predicting (here: waiting for more stdin) unwinds like Ctrl-C; a dead writer's temp file goes at start."""
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n", encoding="utf-8")
    stale = tmp_path / ".out.jsonl.999999999.abcd1234.tmp"  # left by a writer killed with kill -9
    stale.write_text("half", encoding="utf-8")
    alive = tmp_path / f".out.jsonl.{os.getpid()}.abcd1234.tmp"  # a writer still running: kept
    alive.write_text("half", encoding="utf-8")
    command = [sys.executable, "-m", "veille", "predict", "-", "--model", str(tiny_trained_model), "-o", str(out), "--device", "cpu", "-q"]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdin.write(json.dumps({"id": "a", "text": ARTICLES["meta"]}).encode() + b"\n")
    process.stdin.flush()
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(f".out.jsonl.{process.pid}.*.tmp")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.glob(f".out.jsonl.{process.pid}.*.tmp")) and not stale.exists()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 130
    assert "interrupted: no output written" in process.stderr.read().decode()
    assert out.read_text(encoding="utf-8") == "previous\n" and alive.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, alive.name])


def test_stdin_jsonl_to_stdout(tiny_trained_model) -> None:
    stdin = "".join(json.dumps({"id": key, "text": text}, ensure_ascii=False) + "\n" for key, text in ARTICLES.items())
    result = predict("-", "--model", tiny_trained_model, "-q", stdin=stdin.encode("utf-8"))
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["id"], line["text"]) for line in lines] == list(ARTICLES.items())
    twice = stdin + json.dumps({"id": "meta", "text": ARTICLES["mistral"]}, ensure_ascii=False) + "\n"
    result = predict("-", "--model", tiny_trained_model, "-q", stdin=twice.encode("utf-8"))
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 3
    assert "warning: <stdin>:3: id: duplicate article id 'meta' (first at <stdin>:2)" in result.stderr


def test_chunking_across_articles_does_not_change_results(predictor, corpus) -> None:
    """Pooling sentences of several articles into one length-sorted batch gives the same predictions."""
    folder, _ = corpus
    results = {}
    for chunk in (1, 3, 1000):
        options = PredictOptions(batch_size=2, relation_threshold=0.0, chunk_sentences=chunk)
        results[chunk] = [p.example.to_json() for p in predict_articles(predictor, read_articles([folder]), options)]
    assert results[1] == results[3] == results[1000]


def test_streaming_reads_only_what_the_current_chunk_needs(predictor) -> None:
    """The first prediction comes out before the input is exhausted: memory does not grow with the input."""
    consumed = count()

    def endless():
        for i in consumed:
            yield Article(f"a{i}", ARTICLES["meta"], "generated")

    stream = predict_articles(predictor, endless(), PredictOptions(chunk_sentences=4))
    first = next(stream)
    assert first.article.id == "a0"
    assert next(consumed) <= 3  # two sentences per article: the chunk closed after the second article


def test_formats_written_beside_the_output(tiny_trained_model, corpus, tmp_path) -> None:
    folder, _ = corpus
    out = tmp_path / "preds.json"
    result = predict(folder, "--model", tiny_trained_model, "-o", out, "--format", "labelstudio", "--format", "tsv", "-q")
    assert result.exit_code == 0, result.stderr
    tasks = json.loads(out.read_text(encoding="utf-8"))
    texts = [s.text for key in ("meta", "mistral") for s in split_sentences(ARTICLES[key])]
    assert [task["data"]["text"] for task in tasks] == texts
    assert all(task["predictions"][0]["model_version"] for task in tasks)
    accepted, problems = read_prediction_tasks(out, load_schema())  # what `veille annotate push --predictions` reads
    assert problems == [] and len(accepted) == len(tasks)
    header = (tmp_path / "preds.tsv").read_text(encoding="utf-8").splitlines()[0]
    assert header.split("\t")[:4] == ["article", "kind", "id", "label"]


def test_thresholds_filter_entities(tiny_trained_model, corpus) -> None:
    folder, _ = corpus
    result = predict(folder, "--model", tiny_trained_model, "--min-entity-score", "1.0", "-q")
    assert result.exit_code == 0, result.stderr
    assert all(json.loads(line)["entities"] == [] for line in result.stdout.splitlines())


def test_bad_model_or_options_exit_2_and_keep_the_previous_output(corpus, tmp_path) -> None:
    folder, _ = corpus
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n", encoding="utf-8")
    result = predict(folder, "--model", tmp_path / "nothing", "-o", out)
    assert result.exit_code == 2
    assert "cannot load model" in result.stderr
    result = predict(folder, "--model", tmp_path / "nothing", "--format", "xml")
    assert result.exit_code == 2 and "unknown format 'xml'" in result.stderr
    assert out.read_text(encoding="utf-8") == "previous\n"


def test_show_prints_the_best_scored_relation_of_each_label(tiny_trained_model, corpus) -> None:
    folder, _ = corpus
    result = predict(folder, "--model", tiny_trained_model, "--relation-threshold", "0.0", "--show", "2", "-q")
    assert result.exit_code == 0, result.stderr
    best_per_label: dict[str, float] = {}
    for line in map(json.loads, result.stdout.splitlines()):
        for r in line["relations"]:
            best_per_label[r["label"]] = max(r["score"], best_per_label.get(r["label"], 0.0))
    assert best_per_label, "with a threshold of 0 the tiny model finds relations"
    shown = sorted(best_per_label.items(), key=lambda item: -item[1])[:2]
    table = result.stderr.split("best-scored relations (one per label)")[1]
    assert f"{len(shown)} best-scored relations (one per label)" in result.stderr
    for label, score in shown:  # the JSON score is rounded to 4 decimals, the table's to 2 from the exact one: 0.53498 is 0.535 and 0.53
        assert label in table and any(f"{value:.2f}" in table for value in (score - 5e-5, score, score + 5e-5))
    rows = sum(len(re.findall(rf"(?<![A-Z_]){label}(?![A-Z_])", table)) for label in best_per_label)
    assert rows == len(shown)  # one row per label shown, none for the others
    assert "articles/s" in result.stderr
