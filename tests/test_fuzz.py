"""Seeded fuzzing of every input veille reads: each mutation gets a clean error or a clean result.

Valid seeds (gold lines, Label Studio tasks, article lines, API bodies) are mutated a few
hundred times each, structurally (a value replaced by a hostile one: NaN, a lone surrogate,
a 70-deep list, a 20,000-character string, a number of 400 digits…, or a string by an odd
but valid one: emoji, bidi controls, combining accents, escape sequences; a key deleted, a
list element duplicated) and as bytes (truncated, a stray byte, a 5,000-digit number, 100,000
nested brackets). Each test checks that no input raises past veille's own error reporting
(no traceback, no 500) and that nothing valid is lost, and prints its tally
(``pytest tests/test_fuzz.py -s``: the README's reliability figures).
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from veille.annotation.corpus import check_files, read_corpus
from veille.annotation.labelstudio.results import gold_task
from veille.annotation.schema import load_schema
from veille.cli import app

SCHEMA = load_schema()


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


HOSTILE: list[Any] = [
    None, True, 0, -7, 3.5, -0.0, 2**70, -(10**400), float("nan"), float("inf"),
    "", "   ", "x", "\ud800", "a\udfffb", "\x00", "é" * 50, "🙂🙂", "\u202e", "a" * 20_000, "T1", "PER", "HAS_ROLE",
    [], {}, [None, 1], {"": ""}, {"id": 1}, _nested(70),
]
# Valid but unusual strings, put in place of a string half the time: they must be accepted and processed.
ODD_TEXT = [
    "🙂 Meta rachète Scale AI 🙂", "\u202eMeta\u202c rachète Wiz", "Me\u0301ta et Mistral\u00a0AI", "Meta\u200d\u200dAI à Paris",
    "\x07\x1b[31mGoogle\x1b[0m rachète Wiz", "Meta\tà Paris\u2028et Londres", "!!!", "12345", "M" * 3000, "a.b.c.d.e.f", "\ufeffOpenAI lève 6 milliards.",
]


def _paths(value: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*path, index))


def mutate(seed: Any, rng: random.Random) -> Any:
    """One to three structural changes at random places of a copy of ``seed``."""
    value = copy.deepcopy(seed)
    for _ in range(rng.choice([1, 1, 2, 3])):
        path = rng.choice(list(_paths(value)))
        current = value
        for key in path:
            current = current[key]
        odd = isinstance(current, str) and rng.random() < 0.5
        replacement = rng.choice(ODD_TEXT) if odd else copy.deepcopy(rng.choice(HOSTILE))
        if not path:
            value = replacement
            continue
        parent = value
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        operation = "replace" if odd else rng.choice(["replace", "replace", "replace", "delete", "duplicate", "wrap"])
        if operation == "delete":
            del parent[key]
        elif operation == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif operation == "wrap":
            parent[key] = [parent[key]]
        else:
            parent[key] = replacement
    return value


def corrupt(data: bytes, rng: random.Random) -> bytes:
    """A byte-level change of serialised JSON (one time in three), never adding a line break."""
    operation = rng.choice(["none", "none", "none", "none", "truncate", "byte", "digits", "deep"])
    if operation == "truncate" and data:
        return data[: rng.randrange(len(data))]
    if operation == "byte":
        at = rng.randrange(len(data) + 1)
        return data[:at] + rng.choice([b"\xff", b"\x00", b"{", b"]", b'"', b"\\", b",", b"\xc3"]) + data[at:]
    if operation == "digits":
        return re.sub(rb"\d+", b"9" * 5000, data, count=1) if re.search(rb"\d", data) else data + b"9" * 5000
    if operation == "deep":
        return b"[" * 100_000 + data + b"]" * 100_000
    return data


def variants(seeds: list[Any], count: int, seed: int) -> Iterator[bytes]:
    """``count`` mutated serialisations of the seeds (ASCII JSON: surrogates and NaN written as a client would)."""
    rng = random.Random(seed)
    for _ in range(count):
        yield corrupt(json.dumps(mutate(rng.choice(seeds), rng)).encode("ascii"), rng)


@dataclass
class Tally:
    """What a fuzz run found; ``tracebacks`` and ``lost`` must stay 0."""

    name: str
    tried: int = 0
    errors: int = 0  # refused with a message
    results: int = 0  # accepted and processed
    tracebacks: int = 0
    lost: int = 0  # valid input that vanished without a word

    def report(self) -> None:
        print(f"\nfuzz {self.name}: {self.tried} inputs, {self.errors} clean errors, {self.results} clean results, {self.tracebacks} tracebacks, {self.lost} lost")
        assert self.tried == self.errors + self.results + self.tracebacks + self.lost
        assert self.tracebacks == 0 and self.lost == 0


def gold_lines(mini_gold: Path) -> list[dict]:
    return [json.loads(line) for line in mini_gold.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_fuzz_corpus_validate(tmp_path, mini_gold) -> None:
    """400 mutated gold lines in one file: each line is reported or kept; the CLI exits 1 with no traceback."""
    seeds = gold_lines(mini_gold)
    path = tmp_path / "fuzzed.jsonl"
    lines = list(variants(seeds, 400, seed=17))
    path.write_bytes(b"\n".join(lines) + b"\n")
    tally = Tally("corpus validate")
    examples, problems = check_files([path], SCHEMA)
    reported = {p.line for p in problems}
    for line_no, line in enumerate(lines, start=1):
        tally.tried += bool(line.strip())  # a line truncated to nothing is a blank line, which the format allows
        if line_no in reported:
            tally.errors += 1
        elif line.strip():
            tally.results += 1
    assert len(examples) == tally.results == len({example.id for example in examples})  # every line neither reported nor blank is kept
    for example in examples:
        json.dumps(example.to_json(), allow_nan=False).encode("utf-8")
    result = CliRunner().invoke(app, ["corpus", "validate", str(path)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    tally.report()


def test_fuzz_annotate_convert(tmp_path, mini_gold) -> None:
    """300 exports, each a mutated task beside an intact one: convert never crashes and never loses the intact task."""
    examples = read_corpus(mini_gold)
    seeds = [{"id": i, **gold_task(example, SCHEMA)} for i, example in enumerate(examples[1:], start=2)]
    intact = {"id": 1, **gold_task(examples[0], SCHEMA)}
    intact["annotations"][0].update(id=1, completed_by=1)
    rng = random.Random(23)
    tally = Tally("annotate convert")
    runner = CliRunner()
    for index in range(300):
        task = corrupt(json.dumps(mutate(rng.choice(seeds), rng)).encode("ascii"), rng)
        export = tmp_path / f"export-{index}.json"
        export.write_bytes(b"[" + json.dumps(intact).encode("ascii") + b", " + task + b"]")
        out = tmp_path / f"gold-{index}.jsonl"
        result = runner.invoke(app, ["annotate", "convert", str(export), "-o", str(out)], env={"COLUMNS": "200"})
        tally.tried += 1
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            tally.tracebacks += 1
        elif result.exit_code == 2:  # the file as a whole cannot be read: said, nothing written
            tally.errors += 1
            assert "error:" in result.output and not out.exists()
        elif examples[0].id not in {e.id for e in read_corpus(out)}:
            tally.lost += 1
        else:
            tally.errors += result.exit_code == 1
            tally.results += result.exit_code == 0
    tally.report()


def test_fuzz_predict_inputs(tmp_path, tiny_trained_model) -> None:
    """300 mutated article lines plus hostile files in one `veille predict` run: every line is predicted or reported."""
    seeds = [
        {"id": "a", "text": "Arthur Mensch, cofondateur de Mistral AI, a annoncé une levée de 600 millions d'euros."},
        {"id": "b", "text": "Meta a investi 14,3 milliards de dollars dans Scale AI. Alexandr Wang rejoint Meta."},
        {"id": 7, "text": "Google rachète Wiz pour 32 milliards de dollars."},
    ]
    jsonl = tmp_path / "fuzzed.jsonl"
    lines = list(variants(seeds, 300, seed=29))
    jsonl.write_bytes(b"\n".join(lines) + b"\n")
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "binary.txt").write_bytes(b"\x89PNG\x00\x00")
    (folder / "latin1.txt").write_bytes("Soci\xe9t\xe9 G\xe9n\xe9rale".encode("latin-1"))
    (folder / "empty.txt").write_text(" \n", encoding="utf-8")
    (folder / "empty.jsonl").write_text("", encoding="utf-8")
    (folder / "dangling.txt").symlink_to(tmp_path / "nowhere.txt")
    (folder / "ok.txt").write_text(seeds[0]["text"], encoding="utf-8")
    files = sorted(p for p in folder.iterdir())
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["predict", str(jsonl), str(folder), "--model", str(tiny_trained_model), "-o", str(out), "-q", "--device", "cpu"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").split("\n") if line]  # not splitlines(): U+2028 may be in a text
    for line in written:
        json.dumps(line, allow_nan=False)
    sources = {line["meta"]["source"] for line in written}
    # `skipped file:line: field: message`, or `skipped file: field: message` for a whole file
    reports = re.finditer(r"^skipped (.+?)(?::(\d+))?: ", result.stderr, flags=re.M)
    skipped = {f"{m[1]}:{m[2]}" if m[2] else m[1] for m in reports}
    tally = Tally("predict inputs")
    inputs = [f"{jsonl}:{n}" for n, line in enumerate(lines, start=1) if line.strip()] + [str(p) for p in files]
    for source in inputs:
        tally.tried += 1
        refused = any(s == source or s.startswith(f"{source}:") for s in skipped)
        if source in sources:
            tally.results += 1
        elif refused:
            tally.errors += 1
        else:
            tally.lost += 1
    assert str(folder / "ok.txt") in sources
    tally.report()


@pytest.fixture(scope="module")
def server(tiny_trained_model, veille_serve) -> Iterator[str]:
    with veille_serve(tiny_trained_model, "--max-texts", "8", "--max-text-chars", "30000") as (url, _):
        yield url


def test_fuzz_http_bodies(server) -> None:
    """240 mutated /v1/extract bodies and 60 /predict bodies: a 200 or a 4xx with a JSON body, never a 5xx."""
    texts = ["Arthur Mensch, cofondateur de Mistral AI, a annoncé une levée de 600 millions d'euros.", "Meta a investi 14,3 milliards de dollars dans Scale AI."]
    extract = [
        {"texts": texts},
        {"articles": [{"id": "a", "text": texts[0]}, {"id": "b", "text": texts[1]}], "relation_threshold": 0.3},
        {"texts": [texts[1]], "min_entity_score": 0.2},
    ]
    predict = [{"tasks": [{"id": 1, "data": {"text": texts[0]}}, {"id": 2, "data": {"text": texts[1], "doc": "d"}}], "project": "1.1", "label_config": "<View/>"}]
    tally = Tally("HTTP bodies")
    with httpx.Client(base_url=server, timeout=60, headers={"content-type": "application/json"}) as client:
        for endpoint, seeds, count, seed in (("/v1/extract", extract, 240, 31), ("/predict", predict, 60, 37)):
            for body in variants(seeds, count, seed):
                response = client.post(endpoint, content=body)
                tally.tried += 1
                if response.status_code >= 500:
                    tally.tracebacks += 1
                    continue
                answer = response.json()
                if response.status_code == 200:
                    tally.results += 1
                    sent = json.loads(body)
                    asked = len(sent.get("texts") or sent.get("articles") or []) if endpoint == "/v1/extract" else len(sent["tasks"])
                    assert len(answer["results"]) == asked  # one result per text: nothing lost
                else:
                    tally.errors += 1
                    assert 400 <= response.status_code < 500 and answer["detail"]
    tally.report()
