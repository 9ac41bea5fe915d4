"""The annotation loop against a real Label Studio server (session fixture ``labelstudio``).

Annotations are created through the API the way the editor sends them (UTF-16
offsets, random region ids, relations by region id), then pulled back with the CLI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from veille.annotation.corpus import read_corpus, write_corpus
from veille.annotation.document import Entity, Example, Relation
from veille.annotation.labelstudio.client import Connection, connect, find_project, project_tasks
from veille.annotation.labelstudio.results import prediction_task
from veille.annotation.labelstudio.server import copy_data_dir, free_port
from veille.annotation.schema import load_schema
from veille.cli import app

pytestmark = pytest.mark.labelstudio

ARTICLE = "Nexalia, basée à Paris, a levé 40 millions d'euros 🚀 auprès de Bpifrance. Camille Roussel dirige Nexalia depuis 2022."
FIRST, SECOND = ARTICLE.split(" Camille")[0], "Camille" + ARTICLE.split(" Camille")[1]


@pytest.fixture
def ls(labelstudio):
    return connect(Connection(labelstudio.url, labelstudio.token))


@pytest.fixture
def cli(labelstudio):
    """Run ``veille …`` in-process against the session server; return (exit code, output)."""
    runner = CliRunner()
    env = {"LABEL_STUDIO_URL": labelstudio.url, "LABEL_STUDIO_API_KEY": labelstudio.token, "COLUMNS": "200"}

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, [str(a) for a in args], env=env)
        return result.exit_code, result.output

    return run


@pytest.fixture
def project() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def article(tmp_path: Path) -> Path:
    path = tmp_path / "nexalia.txt"
    path.write_text(ARTICLE, encoding="utf-8")
    return path


def utf16(text: str, index: int) -> int:
    """The editor's offset: UTF-16 code units (the emoji counts two)."""
    return len(text[:index].encode("utf-16-le")) // 2


def region(text: str, mention: str, label: str, region_id: str | None = None, shift: int = 0) -> dict:
    start = text.index(mention) + shift
    return {
        "id": region_id or uuid.uuid4().hex[:10],
        "from_name": "label",
        "to_name": "text",
        "type": "labels",
        "origin": "manual",
        "value": {"start": utf16(text, start), "end": utf16(text, start + len(mention)), "text": mention, "labels": [label]},
    }


def link(head: dict, tail: dict, label: str) -> dict:
    return {"from_id": head["id"], "to_id": tail["id"], "type": "relation", "direction": "right", "labels": [label]}


def tasks_by_example(ls, title: str) -> dict[str, dict]:
    return {t["data"]["example"]: t for t in project_tasks(ls, find_project(ls, title))}


def spans(example: Example) -> tuple[set, set]:
    """Entities and relations by value (mention, label), independent of region ids."""
    mention = {e.id: (example.mention(e), e.label) for e in example.entities}
    return set(mention.values()), {(mention[r.head], r.label, mention[r.tail]) for r in example.relations}


def test_push_creates_one_task_per_sentence_with_its_offsets_and_never_twice(cli, ls, project, article) -> None:
    outdated = '<View><Labels name="label" toName="text"><Label value="ORG"/></Labels><Text name="text" value="$text"/></View>'
    ls.projects.create(title=project, label_config=outdated)
    code, out = cli("annotate", "push", "--project", project, article)
    assert code == 0, out
    assert "config updated" in out and "2 task(s) created" in out
    tasks = tasks_by_example(ls, project)
    assert sorted(tasks) == ["nexalia-s000", "nexalia-s001"]
    for task in tasks.values():
        data = task["data"]
        assert data["doc"] == "nexalia"
        assert ARTICLE[data["start"] : data["end"]] == data["text"]
    assert tasks["nexalia-s001"]["data"]["text"] == SECOND

    code, out = cli("annotate", "push", "--project", project, article)
    assert code == 0, out
    assert "unchanged" in out and "0 task(s) created, 2 already there" in out
    assert len(tasks_by_example(ls, project)) == 2
    changed = article.with_name("changed.jsonl")
    changed.write_text(json.dumps({"id": "nexalia", "text": "Un autre texte. Camille Roussel dirige Nexalia depuis 2022."}) + "\n", encoding="utf-8")
    code, out = cli("annotate", "push", "--project", project, changed)
    assert code == 1 and "nexalia-s000: a task with this id but another text" in out
    assert "0 task(s) created, 1 already there" in out
    config = ls.projects.get(find_project(ls, project)).label_config
    assert 'granularity="symbol"' in config and 'value="COMPETES_WITH"' in config


def test_annotations_made_in_label_studio_pull_back_as_gold(cli, ls, project, article, tmp_path) -> None:
    assert cli("annotate", "push", "--project", project, article)[0] == 0
    tasks = tasks_by_example(ls, project)
    nexalia, paris, money, bpi = (
        region(FIRST, "Nexalia", "ORG"), region(FIRST, "Paris", "LOC"),
        region(FIRST, "40 millions d'euros", "MONEY"), region(FIRST, "Bpifrance", "ORG"),
    )
    ls.annotations.create(
        id=tasks["nexalia-s000"]["id"],
        result=[nexalia, paris, money, bpi, link(nexalia, paris, "LOCATED_IN"), link(bpi, nexalia, "INVESTS_IN")],
    )
    person, org, date = region(SECOND, "Camille Roussel", "PER"), region(SECOND, "Nexalia", "ORG"), region(SECOND, "2022", "DATE")
    ls.annotations.create(id=tasks["nexalia-s001"]["id"], result=[person, org, date, link(person, org, "EMPLOYEE_OF")])

    out_file = tmp_path / "gold.jsonl"
    code, out = cli("annotate", "pull", "--project", project, "-o", out_file)
    assert code == 0, out
    assert "re-anchored" not in out  # offsets were read right (UTF-16), not repaired
    pulled = {e.id: e for e in read_corpus(out_file)}
    assert spans(pulled["nexalia-s000"]) == (
        {("Nexalia", "ORG"), ("Paris", "LOC"), ("40 millions d'euros", "MONEY"), ("Bpifrance", "ORG")},
        {(("Nexalia", "ORG"), "LOCATED_IN", ("Paris", "LOC")), (("Bpifrance", "ORG"), "INVESTS_IN", ("Nexalia", "ORG"))},
    )
    bpifrance = next(e for e in pulled["nexalia-s000"].entities if e.label == "ORG" and e.start > 10)
    assert (bpifrance.start, bpifrance.end) == (FIRST.index("Bpifrance"), FIRST.index("Bpifrance") + 9)  # after the emoji
    assert spans(pulled["nexalia-s001"])[1] == {(("Camille Roussel", "PER"), "EMPLOYEE_OF", ("Nexalia", "ORG"))}
    assert pulled["nexalia-s001"].meta["start"] == ARTICLE.index("Camille")


def gold_examples() -> list[Example]:
    first = Example(
        "doc1-s000", FIRST,
        [Entity("T1", 0, 7, "ORG"), Entity("T2", 17, 22, "LOC"), Entity("T3", FIRST.index("Bpifrance"), FIRST.index("Bpifrance") + 9, "ORG")],
        [Relation("T1", "T2", "LOCATED_IN"), Relation("T3", "T1", "INVESTS_IN")],
        {"doc": "doc1", "start": 0, "end": len(FIRST), "split": "train"},
    )
    text = "Meta et Google se disputent les chercheurs."
    second = Example(
        "doc1-s001", text,
        [Entity("T1", 0, 4, "ORG"), Entity("T2", 8, 14, "ORG")], [Relation("T2", "T1", "COMPETES_WITH")],
        {"doc": "doc1", "start": len(FIRST) + 1, "end": len(FIRST) + 1 + len(text), "split": "train"},
    )
    return [first, second]


def test_gold_survives_push_and_pull_unchanged(cli, project, tmp_path) -> None:
    gold = tmp_path / "gold.jsonl"
    write_corpus(gold, gold_examples())
    code, out = cli("annotate", "push", "--project", project, "--gold", gold)
    assert code == 0, out
    assert "annotations 2 added" in out
    code, out = cli("annotate", "push", "--project", project, "--gold", gold)
    assert "annotations 0 added, 2 already there" in out and "0 task(s) created" in out

    pulled = tmp_path / "pulled.jsonl"
    code, out = cli("annotate", "pull", "--project", project, "-o", pulled)
    assert code == 0, out
    assert "re-anchored" not in out
    assert pulled.read_bytes() == gold.read_bytes()


def test_predictions_become_pre_annotations_with_scores_and_model_version(cli, ls, project, tmp_path) -> None:
    schema = load_schema()
    predicted = gold_examples()[0]
    predicted.entities = [Entity(e.id, e.start, e.end, e.label, score=0.5 + i / 10) for i, e in enumerate(predicted.entities)]
    file = tmp_path / "preds.labelstudio.json"
    file.write_text(json.dumps([prediction_task(predicted, schema, "tiny-v1")], ensure_ascii=False), encoding="utf-8")

    code, out = cli("annotate", "push", "--project", project, "--predictions", file)
    assert code == 0, out
    assert "predictions 1 added" in out
    code, out = cli("annotate", "push", "--project", project, "--predictions", file)
    assert "predictions 0 added, 1 already there" in out

    [task] = tasks_by_example(ls, project).values()
    [prediction] = task["predictions"]
    assert prediction["model_version"] == "tiny-v1"
    assert prediction["score"] == pytest.approx(0.5)
    scores = [r["score"] for r in prediction["result"] if r["type"] == "labels"]
    assert scores == pytest.approx([0.5, 0.6, 0.7])


def test_drift_missing_ends_cancelled_and_duplicate_annotations_are_reported(cli, ls, project, tmp_path) -> None:
    sentences = tmp_path / "sentences.jsonl"
    lines = [{"id": f"d{i}", "text": text} for i, text in enumerate([FIRST, SECOND, "Rien ici.", "Google rachète DeepMind.", "Apple aussi."])]
    sentences.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    assert cli("annotate", "push", "--project", project, sentences)[0] == 0
    tasks = tasks_by_example(ls, project)

    drifted = region(FIRST, "Bpifrance", "ORG", shift=2)  # offsets moved, text still « Bpifrance »
    lost = region(FIRST, "Paris", "LOC", shift=3)
    lost["value"]["text"] = "Lyon"  # nowhere in the sentence
    ls.annotations.create(id=tasks["d0-s000"]["id"], result=[region(FIRST, "Nexalia", "ORG"), drifted, lost])

    person, org = region(SECOND, "Camille Roussel", "PER"), region(SECOND, "Nexalia", "ORG")
    ls.annotations.create(id=tasks["d1-s000"]["id"], result=[person, org, link(person, org, "EMPLOYEE_OF"), link(person, {"id": "ghost"}, "FOUNDED")])

    ls.annotations.create(id=tasks["d2-s000"]["id"], result=[], was_cancelled=True)

    text = "Google rachète DeepMind."
    ls.annotations.create(id=tasks["d3-s000"]["id"], result=[region(text, "Google", "ORG")])
    google, deepmind = region(text, "Google", "ORG"), region(text, "DeepMind", "ORG")
    ls.annotations.create(id=tasks["d3-s000"]["id"], result=[google, deepmind, link(google, deepmind, "ACQUIRES")])

    out_file = tmp_path / "gold.jsonl"
    code, out = cli("annotate", "pull", "--project", project, "-o", out_file)
    assert code == 1, out  # something was dropped: the lost span and the dangling relation
    assert "re-anchored" in out and "'Lyon'" in out and "ghost" in out and "disagree" in out
    assert "skipped 1 unannotated and 1 cancelled task(s)" in out
    pulled = {e.id: e for e in read_corpus(out_file)}
    assert sorted(pulled) == ["d0-s000", "d1-s000", "d3-s000"]
    assert spans(pulled["d0-s000"])[0] == {("Nexalia", "ORG"), ("Bpifrance", "ORG")}
    assert spans(pulled["d1-s000"])[1] == {(("Camille Roussel", "PER"), "EMPLOYEE_OF", ("Nexalia", "ORG"))}
    assert spans(pulled["d3-s000"])[1] == {(("Google", "ORG"), "ACQUIRES", ("DeepMind", "ORG"))}  # the latest annotation


def test_agreement_scores_pairs_of_annotators(cli, ls, project, tmp_path) -> None:
    text = "Google rachète DeepMind à Londres."
    sentences = tmp_path / "s.jsonl"
    sentences.write_text(json.dumps({"id": "a", "text": text}) + "\n", encoding="utf-8")
    assert cli("annotate", "push", "--project", project, sentences)[0] == 0
    [task] = tasks_by_example(ls, project).values()
    users = [ls.users.create(username=f"{name}-{project}", email=f"{name}-{project}@veille.test", password="pw-123456789") for name in ("ana", "bob")]
    google, deepmind, london = region(text, "Google", "ORG"), region(text, "DeepMind", "ORG"), region(text, "Londres", "LOC")
    ls.annotations.create(id=task["id"], completed_by=users[0].id, result=[google, deepmind, london, link(google, deepmind, "ACQUIRES"), link(deepmind, london, "LOCATED_IN")])
    ls.annotations.create(id=task["id"], completed_by=users[1].id, result=[google, deepmind, region(text, "Londres.", "LOC"), link(google, deepmind, "ACQUIRES")])

    code, out = cli("annotate", "agreement", "--project", project)
    assert code == 0, out
    assert f"ana-{project}@veille.test / bob-{project}@veille.test" in out
    row = next(line for line in out.splitlines() if "ana-" in line)
    assert "0.667" in row  # entities: 2 of 3 match each way; relations: 1 of 2 vs 1 of 1 → 2/3


def test_server_command_starts_label_studio_on_localhost_and_stops_it(labelstudio, tmp_path) -> None:
    data_dir = tmp_path / "ls-data"
    copy_data_dir(labelstudio.template, data_dir)
    port = free_port()
    command = [sys.executable, "-m", "veille", "annotate", "server", "--data-dir", str(data_dir), "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if k != "LABEL_STUDIO_API_KEY"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "LABEL_STUDIO_API_KEY" in line:
                break
        url = f"http://127.0.0.1:{port}"
        assert f"running at {url}" in "".join(lines), "".join(lines) + process.stderr.read()
        assert f"export LABEL_STUDIO_API_KEY={labelstudio.token}" in "".join(lines)
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=5)


def test_suggestions_round_trip_ranked_queue_then_gold_that_trains(cli, ls, project, tiny_trained_model, tiny_base_model, mini_gold, tmp_path) -> None:
    """suggest → push (ranked « Suggestions » tab) → annotations through the API → pull → a gold file that validates and trains."""
    from veille.training.config import TrainConfig
    from veille.training.trainer import train

    gold = read_corpus(mini_gold)
    articles = tmp_path / "pool.jsonl"
    articles.write_text("".join(json.dumps({"id": f"art{i}", "text": " ".join(g.text for g in gold[i * 3 : i * 3 + 3])}, ensure_ascii=False) + "\n" for i in range(4)), encoding="utf-8")
    suggestions = tmp_path / "suggest.json"
    code, out = cli("annotate", "suggest", "--model", tiny_trained_model, articles, "-n", "4", "--per-document", "1", "-o", suggestions, "--device", "cpu")
    assert code == 0, out
    suggested = json.loads(suggestions.read_text(encoding="utf-8"))
    code, out = cli("annotate", "push", "--project", project, "--predictions", suggestions)
    assert code == 0, out
    assert "4 task(s) created" in out and "4 ranked suggestion(s)" in out

    project_id = find_project(ls, project)
    [view] = [v for v in ls.views.list(project=project_id) if v.data.get("title") == "Suggestions"]
    queue = [t.data for t in ls.tasks.list(project=project_id, view=view.id, fields="all")]
    assert [d["suggest_rank"] for d in queue] == [1, 2, 3, 4]
    assert [d["example"] for d in queue] == [t["data"]["example"] for t in suggested]

    reranked = tmp_path / "rerank.json"  # a later round re-ranks the tasks already there, without duplicating them
    reranked.write_text(json.dumps([{**t, "data": {**t["data"], "suggest_rank": 5 - t["data"]["suggest_rank"]}} for t in suggested], ensure_ascii=False), encoding="utf-8")
    code, out = cli("annotate", "push", "--project", project, "--predictions", reranked)
    assert code == 0 and "0 task(s) created, 4 already there" in out and "predictions 0 added, 4 already there" in out
    queue = [t.data for t in ls.tasks.list(project=project_id, view=view.id, fields="all")]
    assert [d["example"] for d in queue] == [t["data"]["example"] for t in reversed(suggested)]

    tasks = tasks_by_example(ls, project)
    for example_id, task in tasks.items():  # the annotator accepts each pre-annotation as it is
        ls.annotations.create(id=task["id"], result=task["predictions"][0]["result"])
    pulled = tmp_path / "pulled.jsonl"
    code, out = cli("annotate", "pull", "--project", project, "-o", pulled)
    assert code == 0, out
    examples = {e.id: e for e in read_corpus(pulled, load_schema())}
    assert sorted(examples) == sorted(t["data"]["example"] for t in suggested)
    for task in suggested:
        predicted = {(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]) for r in task["predictions"][0]["result"] if r["type"] == "labels"}
        assert {e.span() for e in examples[task["data"]["example"]].entities} == predicted  # no emoji here: UTF-16 = code points
    assert cli("corpus", "validate", pulled)[0] == 0
    config = TrainConfig(
        base_model=str(tiny_base_model), train_files=[str(pulled)], dev_files=[str(pulled)], output=str(tmp_path / "model"),
        epochs=1, batch_size=4, max_length=64, stride=16, device="cpu",
    )
    assert train(config, progress=False).best_epoch == 1
