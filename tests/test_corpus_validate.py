"""`veille corpus validate`: one test per rule, each checking the file:line: field: message report."""

import copy
import json

import pytest
from typer.testing import CliRunner

from veille.annotation.corpus import CorpusError, read_corpus, write_corpus
from veille.annotation.document import Entity, Example
from veille.cli import app

VALID = {
    "id": "seed-000-s012",
    "text": "Alexandr Wang, PDG de Scale AI, dirigera désormais le programme de superintelligence de Meta.",
    "entities": [
        {"id": "T1", "start": 0, "end": 13, "label": "PER"},
        {"id": "T2", "start": 15, "end": 18, "label": "ROLE", "text": "PDG"},
        {"id": "T3", "start": 22, "end": 30, "label": "ORG"},
        {"id": "T4", "start": 88, "end": 92, "label": "ORG"},
    ],
    "relations": [
        {"head": "T1", "tail": "T2", "label": "HAS_ROLE"},
        {"head": "T2", "tail": "T3", "label": "ROLE_AT"},
        {"head": "T1", "tail": "T4", "label": "EMPLOYEE_OF"},
    ],
    "meta": {"doc": "seed-000"},
}

runner = CliRunner()


def write_lines(path, *records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))  # ASCII escapes: a lone surrogate can be written
    return path


def validate(*paths):
    return runner.invoke(app, ["corpus", "validate", *map(str, paths)])


def broken(change):
    record = copy.deepcopy(VALID)
    change(record)
    return record


def test_valid_file_passes(tmp_path):
    result = validate(write_lines(tmp_path / "ok.jsonl", VALID))
    assert result.exit_code == 0, result.output
    assert "1 examples" in result.output


CASES = [
    ("offset out of range", lambda r: r["entities"][3].update(end=200), "entities[3].end", "out of range"),
    ("negative start", lambda r: r["entities"][0].update(start=-1), "entities[0].end", "out of range"),
    ("empty span", lambda r: r["entities"][0].update(end=0), "entities[0].end", "out of range"),
    ("text differs from slice", lambda r: r["entities"][1].update(text="CEO"), "entities[1].text", "does not equal"),
    ("duplicate entity id", lambda r: r["entities"][2].update(id="T1"), "entities[2].id", "duplicate entity id"),
    ("overlapping spans", lambda r: r["entities"].append({"id": "T5", "start": 9, "end": 18, "label": "PER"}), "entities[4]", "overlaps"),
    ("unknown entity label", lambda r: r["entities"][0].update(label="PERSON"), "entities[0].label", "unknown entity label"),
    ("unknown relation label", lambda r: r["relations"][0].update(label="KNOWS"), "relations[0].label", "unknown relation label"),
    ("missing relation argument", lambda r: r["relations"][2].update(tail="T9"), "relations[2]", "refers to no entity"),
    ("relation argument not a string", lambda r: r["relations"][2].update(head=["T1"]), "relations[2]", "refers to no entity of this line: head=['T1']"),
    ("disallowed argument types", lambda r: r["relations"][2].update(head="T4", tail="T1"), "relations[2].label", "does not allow ORG → PER"),
    ("non-integer offset", lambda r: r["entities"][0].update(start="0"), "entities[0].start", "integers"),
    ("missing text", lambda r: r.pop("text"), "text", "missing"),
    ("empty text", lambda r: r.update(text=" \n"), "text", "empty"),
    ("non-finite score", lambda r: r["entities"][0].update(score=float("nan")), "entities[0].score", "nan is not a finite number"),
    ("lone surrogate", lambda r: r["entities"][0].update(label="PER\ud800"), "entities[0].label", "lone surrogate U+D800 at character 3"),
]


@pytest.mark.parametrize(("name", "change", "field", "message"), CASES, ids=[c[0] for c in CASES])
def test_each_rule_is_reported_with_file_line_and_field(tmp_path, name, change, field, message):
    path = write_lines(tmp_path / "gold.jsonl", {**VALID, "id": "other"}, broken(change))
    result = validate(path)
    assert result.exit_code == 1
    assert f"{path}:2: {field}: " in result.output
    assert message in result.output


def test_invalid_json_line(tmp_path):
    path = write_lines(tmp_path / "gold.jsonl", VALID, '{"id": "x", "text": ')
    result = validate(path)
    assert result.exit_code == 1
    assert f"{path}:2: <line>: invalid JSON" in result.output


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "x", "text": "Meta", "entities": [{"id": "T1", "start": ' + "9" * 5000 + ', "end": 4, "label": "ORG"}]}', "a number of more than 4300 digits"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"id": "x", "text": "Meta", "meta": ' + "[" * 200 + "]" * 200 + "}", "nested too deeply"),
    ],
    ids=["5000-digit number", "100000 nested arrays", "200 nested arrays"],
)
def test_hostile_json_is_a_reported_line_not_a_crash(tmp_path, line, message):
    path = write_lines(tmp_path / "gold.jsonl", line, VALID)
    result = validate(path)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert f"{path}:1: " in result.output and message in result.output and f"{path}:2" not in result.output


def test_empty_file_is_said_to_be_empty(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n  \n")
    result = validate(path)
    assert result.exit_code == 1
    assert f"{path}: <file>: empty file: no examples" in result.output and "ok" not in result.output


def test_duplicate_example_ids_across_files(tmp_path):
    first = write_lines(tmp_path / "a.jsonl", VALID)
    second = write_lines(tmp_path / "b.jsonl", VALID)
    result = validate(first, second)
    assert result.exit_code == 1
    assert f"{second}:1: id: duplicate example id" in result.output
    assert f"first at {first}:1" in result.output


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(VALID, ensure_ascii=False).encode("latin-1") + b"\n")
    result = validate(path)
    assert result.exit_code == 1
    assert f"{path}:1: <line>: not UTF-8" in result.output


def test_every_problem_is_reported_not_only_the_first(tmp_path):
    record = broken(lambda r: (r["entities"][0].update(label="X"), r["relations"][0].update(label="Y")))
    result = validate(write_lines(tmp_path / "gold.jsonl", record))
    assert "entities[0].label" in result.output and "relations[0].label" in result.output


def test_read_corpus_raises_with_all_problems(tmp_path):
    path = write_lines(tmp_path / "gold.jsonl", broken(lambda r: r["entities"][0].update(end=999)))
    with pytest.raises(CorpusError) as info:
        read_corpus(path)
    assert f"{path}:1: entities[0].end" in str(info.value)


def test_read_corpus_refuses_an_empty_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(CorpusError, match="no examples"):
        read_corpus(path)


def test_write_then_read_round_trip(tmp_path):
    examples = read_corpus(write_lines(tmp_path / "in.jsonl", VALID))
    out = tmp_path / "out.jsonl"
    assert write_corpus(out, examples) == 1
    assert read_corpus(out) == examples
    assert json.loads(out.read_text())["entities"][3]["text"] == "Meta"


def test_interrupted_write_keeps_the_previous_file(tmp_path):
    out = tmp_path / "corpus.jsonl"
    write_corpus(out, read_corpus(write_lines(tmp_path / "in.jsonl", VALID)))
    before = out.read_bytes()

    def failing():
        yield Example("x1", "Meta recrute.", [Entity("T1", 0, 4, "ORG")])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_corpus(out, failing())
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl", "in.jsonl"]  # no temp file left


def test_stats_counts_labels_per_split(tmp_path):
    train = write_lines(tmp_path / "train.jsonl", VALID)
    dev = write_lines(tmp_path / "dev.jsonl", {**VALID, "id": "d1", "relations": []})
    result = runner.invoke(app, ["corpus", "stats", str(train), str(dev)])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "HAS_ROLE" in line)
    assert [cell.strip() for cell in row.strip("│ ").split("│")][1:] == ["1", "0", "1"]
    org = next(line for line in result.output.splitlines() if "│ ORG" in line)
    assert [cell.strip() for cell in org.strip("│ ").split("│")][1:] == ["2", "2", "4"]
