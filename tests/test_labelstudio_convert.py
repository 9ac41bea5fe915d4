"""``veille annotate convert`` / ``agreement`` on export files, and the server helpers, without a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from veille.annotation.corpus import read_corpus
from veille.annotation.document import Entity, Example, Relation
from veille.annotation.labelstudio import server
from veille.annotation.labelstudio.results import example_to_results, task_data
from veille.annotation.schema import load_schema
from veille.cli import app

SCHEMA = load_schema()
TEXT = "Google rachète DeepMind à Londres."
GOOGLE, DEEPMIND, LONDON = Entity("g", 0, 6, "ORG"), Entity("d", 15, 23, "ORG"), Entity("l", 26, 33, "LOC")


def annotation(ann_id: int, user: int, entities: list[Entity], relations: list[Relation] = (), cancelled: bool = False, when: str = "") -> dict:
    result = example_to_results(Example("x", TEXT, list(entities), list(relations)), SCHEMA)
    return {"id": ann_id, "completed_by": user, "result": result, "was_cancelled": cancelled, "updated_at": when or f"2026-01-01T00:00:{ann_id:02d}Z"}


def task(task_id: int, example_id: str, *annotations: dict, text: str = TEXT) -> dict:
    return {"id": task_id, "data": task_data(Example(example_id, text, meta={"doc": "d"})), "annotations": list(annotations), "predictions": []}


def convert(tmp_path: Path, tasks: list[dict]) -> tuple[int, str, Path]:
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "gold.jsonl"
    result = CliRunner().invoke(app, ["annotate", "convert", str(export), "-o", str(out)], env={"COLUMNS": "200"})
    return result.exit_code, result.output, out


def test_convert_keeps_the_latest_submitted_annotation_and_counts_the_rest(tmp_path: Path) -> None:
    acquires = Relation("g", "d", "ACQUIRES")
    tasks = [
        task(1, "s1", annotation(1, 1, [GOOGLE]), annotation(2, 1, [GOOGLE, DEEPMIND], [acquires]), annotation(3, 1, [], cancelled=True)),
        task(2, "s2"),
        task(3, "s3", annotation(4, 2, [GOOGLE], cancelled=True)),
        task(4, "s4", annotation(5, 1, [LONDON]), annotation(6, 2, [LONDON], when="2026-01-01T00:00:00Z")),
    ]
    code, out, gold = convert(tmp_path, tasks)
    assert code == 0, out
    assert "skipped 1 unannotated and 1 cancelled task(s); 1 task(s) with disagreeing annotations" in out
    examples = {e.id: e for e in read_corpus(gold)}
    assert sorted(examples) == ["s1", "s4"]
    assert examples["s1"].relations == [acquires]
    assert examples["s4"].entities == [LONDON]  # same content: no disagreement reported for it


def test_convert_reports_invalid_examples_and_exits_1(tmp_path: Path) -> None:
    overlapping = Entity("x", 0, 10, "ORG")
    tasks = [task(1, "s1", annotation(1, 1, [GOOGLE, overlapping])), task(2, "s2", annotation(2, 1, [DEEPMIND])), task(3, "s2", annotation(3, 1, [GOOGLE]))]
    code, out, gold = convert(tmp_path, tasks)
    assert code == 1
    assert "overlaps entity" in out and "in several tasks" in out
    assert [e.id for e in read_corpus(gold)] == ["s2"]


def test_a_task_without_text_is_reported_not_a_crash(tmp_path: Path) -> None:
    foreign = {"id": 9, "data": {"sentence": TEXT}, "annotations": [annotation(9, 1, [GOOGLE]), annotation(10, 2, [GOOGLE])]}
    code, out, gold = convert(tmp_path, [foreign, task(2, "s2", annotation(2, 1, [DEEPMIND]))])
    assert code == 1
    assert "task 9: data.text: missing or not a string" in out
    assert [e.id for e in read_corpus(gold)] == ["s2"]
    export = tmp_path / "export.json"
    result = CliRunner().invoke(app, ["annotate", "agreement", str(export)])
    assert result.exit_code == 1 and "no task was annotated by more than one annotator" in result.output


def test_prediction_tasks_without_a_prediction_list_or_file_are_reported(tmp_path: Path) -> None:
    from veille.annotation.labelstudio.push import read_prediction_tasks
    from veille.annotation.labelstudio.results import prediction_task

    good = prediction_task(Example("s1", TEXT, [GOOGLE]), SCHEMA, "v1")
    bare = {"data": good["data"]}
    no_result = {"data": good["data"], "predictions": [{"model_version": "v1"}]}
    path = tmp_path / "preds.json"
    path.write_text(json.dumps([good, bare, no_result]), encoding="utf-8")
    tasks, problems = read_prediction_tasks(path, SCHEMA)
    assert tasks == [good]
    assert [(p.line, p.field) for p in problems] == [(2, "predictions"), (3, "predictions")]
    tasks, problems = read_prediction_tasks(tmp_path / "missing.json", SCHEMA)
    assert tasks == [] and [(p.line, p.field) for p in problems] == [(0, "<file>")]


def test_convert_refuses_a_file_that_is_not_an_export(tmp_path: Path) -> None:
    export = tmp_path / "export.json"
    export.write_text('{"text": "not a list"}', encoding="utf-8")
    result = CliRunner().invoke(app, ["annotate", "convert", str(export), "-o", str(tmp_path / "g.jsonl")])
    assert result.exit_code == 2
    assert "expected a JSON array of tasks" in result.output
    assert not (tmp_path / "g.jsonl").exists()


def test_agreement_from_an_export_file(tmp_path: Path) -> None:
    tasks = [
        task(1, "s1", annotation(1, 7, [GOOGLE, DEEPMIND, LONDON]), annotation(2, 8, [GOOGLE, DEEPMIND])),
        task(2, "s2", annotation(3, 7, [GOOGLE])),
    ]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks), encoding="utf-8")
    result = CliRunner().invoke(app, ["annotate", "agreement", str(export)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "user 7 / user 8" in line)
    assert "0.800" in row  # 2 shared spans: P = 1, R = 2/3


def test_push_refuses_an_invalid_gold_file_before_contacting_any_server(tmp_path: Path) -> None:
    gold = tmp_path / "bad.jsonl"
    gold.write_text(json.dumps({"id": "s1", "text": TEXT, "entities": [{"id": "g", "start": 0, "end": 6, "label": "COMPANY"}]}) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["annotate", "push", "-p", "x", "--gold", str(gold), "--url", "http://127.0.0.1:9", "--token", "t"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert f"{gold}:1: entities[0].label: unknown entity label 'COMPANY'" in result.output


def test_config_command_prints_the_generated_config() -> None:
    result = CliRunner().invoke(app, ["annotate", "config"])
    assert result.exit_code == 0
    assert result.output.startswith("<View>") and '<Label value="ORG"' in result.output


def test_missing_label_studio_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VEILLE_LABEL_STUDIO", str(tmp_path / "nope"))
    with pytest.raises(server.LabelStudioError, match="not an executable"):
        server.find_executable()
    monkeypatch.delenv("VEILLE_LABEL_STUDIO")
    monkeypatch.setattr(server, "REPO_ROOT", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(server.LabelStudioError, match="install-labelstudio"):
        server.find_executable()


def test_server_env_scrubs_variables_that_leak_into_label_studio_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("USERNAME", "PASSWORD", "HOST", "PORT", "DEBUG", "LABEL_STUDIO_PORT"):
        monkeypatch.setenv(name, "leak")
    monkeypatch.setenv("PORTAL", "kept")
    env = server.server_env(tmp_path)
    assert not {"USERNAME", "PASSWORD", "HOST", "PORT", "DEBUG", "LABEL_STUDIO_PORT"} & set(env)
    assert env["PORTAL"] == "kept"
    assert env["LABEL_STUDIO_BASE_DATA_DIR"] == str(tmp_path.resolve())
    assert env["SENTRY_DSN"] == "" and env["LATEST_VERSION_CHECK"] == "false"


def test_start_refuses_a_busy_port_instead_of_moving_silently(tmp_path: Path) -> None:
    import socket

    (tmp_path / server.DATABASE).write_bytes(b"")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(server.LabelStudioError, match="already in use"):
            server.start_server(tmp_path, busy.getsockname()[1], executable="/bin/false")


def test_malformed_tasks_are_reported_with_their_id_and_the_rest_converted(tmp_path: Path) -> None:
    good = annotation(1, 1, [GOOGLE])
    region = good["result"][0]
    malformed = [
        {**task(10, "s10"), "annotations": {"id": 1}},
        {**task(11, "s11"), "annotations": "done"},
        task(12, "s12", {**good, "result": None}),
        task(13, "s13", {key: value for key, value in good.items() if key != "result"}),
        task(14, "s14", {**good, "result": 3}),
        task(15, "s15", {**good, "result": [{**region, "value": {**region["value"], "labels": 3}}]}),
        task(16, "s16", {**good, "result": [{**region, "score": "0.9"}]}),
        task(17, "s17", {**good, "result": [{**region, "value": {**region["value"], "text": ["Google"]}}]}),
        task(18, "s18", good, text="Google \ud800 rachète DeepMind."),
        task(19, "s19", {**good, "id": [1]}),
        {"id": 20, "data": [1, 2]},
        None,
    ]
    mixed_ids = task(21, "s21", annotation(1, 1, [GOOGLE], when="2026-01-01T00:00:00Z"), {**annotation(2, 1, [GOOGLE]), "id": "b", "updated_at": "2026-01-01T00:00:00Z"})
    export = tmp_path / "export.json"
    export.write_text(json.dumps([*malformed, mixed_ids, task(2, "s2", annotation(2, 1, [DEEPMIND]))]), encoding="utf-8")
    result = CliRunner().invoke(app, ["annotate", "convert", str(export), "-o", str(tmp_path / "gold.jsonl")], env={"COLUMNS": "300"})
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    for expected in [
        "task 10: annotations: Input should be a valid list",
        "task 11: annotations: Input should be a valid list",
        "task 12: annotations[0].result: Input should be a valid list",
        "task 13: annotations[0].result: Field required",
        "task 14: annotations[0].result: Input should be a valid list",
        "task 15: annotations[0].result[0].value.labels: Input should be a valid list",
        "task 16: annotations[0].result[0].score: Input should be a valid number",
        "task 17: annotations[0].result[0].value.text: Input should be a valid string",
        "task 18: data.text: not valid Unicode: lone surrogate U+D800 at character 7",
        "task 19: annotations[0].id: an id is an integer or a string, not list",
        "task 20: data: Input should be a valid dictionary",
        "task #12 of the export: expected a task object, got NoneType",
    ]:
        assert expected in result.output
    assert "12 invalid example(s)" in result.output
    assert [e.id for e in read_corpus(tmp_path / "gold.jsonl")] == ["s21", "s2"]


def test_regions_of_another_control_are_rejected_not_taken_as_entities(tmp_path: Path) -> None:
    good = annotation(1, 1, [GOOGLE, DEEPMIND])
    google, deepmind = good["result"]
    tasks = [task(1, "s1", {**good, "result": [{**google, "from_name": "sentiment"}, {**deepmind, "to_name": "title"}]}), task(2, "s2", annotation(2, 1, [DEEPMIND]))]
    code, out, gold = convert(tmp_path, tasks)
    assert code == 1
    assert "region g: drawn with 'sentiment' on 'text', not this config's 'label' on 'text'" in out
    assert "region d: drawn with 'label' on 'title'" in out
    assert {e.id: e.entities for e in read_corpus(gold)} == {"s1": [], "s2": [DEEPMIND]}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ("[" + '{"id": ' + "1" * 5000 + "}]", "a number of more than 4300 digits"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
    ids=["empty", "5000-digit number", "100000 nested arrays"],
)
def test_an_unreadable_export_is_refused_whole_with_a_message(tmp_path: Path, content: str, message: str) -> None:
    export = tmp_path / "export.json"
    export.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(app, ["annotate", "convert", str(export), "-o", str(tmp_path / "g.jsonl")], env={"COLUMNS": "300"})
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert message in result.output and not (tmp_path / "g.jsonl").exists()


def test_an_empty_text_never_becomes_an_example(tmp_path: Path) -> None:
    code, out, gold = convert(tmp_path, [task(1, "s1", annotation(1, 1, []), text="  "), task(2, "s2", annotation(2, 1, [DEEPMIND]))])
    assert code == 1 and "task 1 (s1) text: empty" in out
    assert [e.id for e in read_corpus(gold)] == ["s2"]
