"""Article ingestion: .txt files, folders, JSONL, stdin, and clear problems for bad input."""

import io
import json

from veille.annotation.articles import Article, read_articles
from veille.annotation.validate import Problem


def articles(items):
    return [i for i in items if isinstance(i, Article)]


def problems(items):
    return [str(i) for i in items if isinstance(i, Problem)]


def test_txt_file_and_folder_recursive(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("Meta recrute.", encoding="utf-8")
    (tmp_path / "sub" / "b.txt").write_text("Mistral AI lève des fonds.", encoding="utf-8")
    (tmp_path / "notes.md").write_text("ignored")
    found = list(read_articles([tmp_path]))
    assert [(a.id, a.text) for a in found] == [("a", "Meta recrute."), ("sub/b", "Mistral AI lève des fonds.")]
    assert [a.id for a in read_articles([tmp_path / "a.txt"])] == ["a"]


def test_jsonl_articles_and_bad_lines(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        b'{"id": "n1", "text": "Premier article."}\n'
        b"not json\n"
        b'{"id": "n3"}\n'
        b'{"text": "Sans id."}\n'
        b'{"id": "n5", "text": "caf\xe9"}\n'
        b"\n"
        b'{"id": 7, "text": "Id entier."}\n'
    )
    items = list(read_articles([path]))
    assert [(a.id, a.source) for a in articles(items)] == [("n1", f"{path}:1"), ("7", f"{path}:7")]
    assert problems(items) == [
        f"{path}:2: <line>: invalid JSON: Expecting value (column 1)",
        f"{path}:3: text: missing, empty or not a string",
        f"{path}:4: id: missing or not a string",
        f"{path}:5: <line>: not UTF-8 (byte 25)",
    ]


def test_binary_and_non_utf8_and_empty_files(tmp_path):
    (tmp_path / "bin.txt").write_bytes(b"\x89PNG\r\n\x00\x00")
    (tmp_path / "latin.txt").write_bytes("Première ligne\nDeuxième café".encode("latin-1"))
    (tmp_path / "empty.txt").write_text("  \n")
    items = list(read_articles([tmp_path]))
    assert articles(items) == []
    assert problems(items) == [
        f"{tmp_path / 'bin.txt'}: <file>: binary file (contains NUL bytes), expected UTF-8 text",
        f"{tmp_path / 'empty.txt'}: <text>: empty article",
        f"{tmp_path / 'latin.txt'}:1: <text>: not UTF-8 (invalid byte 0xe8 at offset 5)",
    ]


def test_missing_path_and_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert problems(read_articles([tmp_path / "nope.txt", tmp_path / "empty"])) == [
        f"{tmp_path / 'nope.txt'}: <file>: no such file or folder",
        f"{tmp_path / 'empty'}: <folder>: no .txt, .jsonl or .parquet files in this folder",
    ]


def test_stdin_as_text_or_jsonl():
    text = list(read_articles(["-"], stdin=io.BytesIO("Un article brut.\nSur deux lignes.".encode())))
    assert [(a.id, a.text) for a in text] == [("stdin", "Un article brut.\nSur deux lignes.")]
    lines = "\n".join(json.dumps({"id": f"a{i}", "text": f"Texte {i}."}) for i in range(3))
    jsonl = list(read_articles(["-"], stdin=io.BytesIO(lines.encode())))
    assert [a.id for a in jsonl] == ["a0", "a1", "a2"]
    assert problems(read_articles(["-"], stdin=io.BytesIO(b""))) == ["<stdin>: <stdin>: empty input"]


def test_dangling_symlink_and_empty_jsonl_are_reported(tmp_path):
    (tmp_path / "a.txt").write_text("Meta recrute.", encoding="utf-8")
    (tmp_path / "gone.txt").symlink_to(tmp_path / "deleted.txt")
    (tmp_path / "empty.jsonl").write_text("\n\n", encoding="utf-8")
    items = list(read_articles([tmp_path]))
    assert [a.id for a in articles(items)] == ["a"]
    assert problems(items) == [
        f"{tmp_path / 'empty.jsonl'}: <file>: empty file: no articles",
        f"{tmp_path / 'gone.txt'}: <file>: symbolic link to {tmp_path / 'deleted.txt'}, which is not a file",
    ]


def test_duplicate_article_ids_are_warned_and_both_kept(tmp_path):
    from veille.annotation.articles import warn_duplicate_ids

    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"id": key, "text": f"Texte {i}."}) + "\n" for i, key in enumerate(["a", "b", "a"])), encoding="utf-8")
    warnings = []
    kept = articles(warn_duplicate_ids(read_articles([path]), warnings.append))
    assert [a.text for a in kept] == ["Texte 0.", "Texte 1.", "Texte 2."]
    assert warnings == [f"{path}:3: id: duplicate article id 'a' (first at {path}:1); outputs keyed by id will mix them"]


def test_parquet_rows_are_articles_and_bad_rows_or_files_are_problems(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"id": ["p1", "p2", "p3"], "text": ["Meta recrute.", "   ", "Mistral AI lève des fonds."], "lang": ["fr"] * 3})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=2)  # two row groups: numbering goes on across them
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "nocol.parquet")
    (tmp_path / "fake.parquet").write_bytes(b"not parquet at all")
    found = list(read_articles([tmp_path]))
    assert [(a.id, a.source) for a in articles(found)] == [("p1", f"{tmp_path / 'in.parquet'}:1"), ("p3", f"{tmp_path / 'in.parquet'}:3")]
    assert problems(found)[0].startswith(f"{tmp_path / 'fake.parquet'}: <file>: not a Parquet file")
    assert problems(found)[1:] == [
        f"{tmp_path / 'in.parquet'}:2: text: missing, empty or not a string",
        f"{tmp_path / 'nocol.parquet'}: <file>: no id and text column (a Parquet input needs id and text)",
    ]


def test_parts_of_a_jsonl_file_read_together_what_the_whole_file_reads(tmp_path):
    """Cut into runs of 3 lines (blank, bad and CRLF lines included, no final newline): same articles and problems, same line numbers."""
    from veille.annotation.articles import from_path, jsonl_parts

    lines = [json.dumps({"id": f"a{i}", "text": f"Meta recrute {i} ingénieurs."}, ensure_ascii=False) for i in range(8)]
    lines[2], lines[4], lines[6] = "", "{not json", json.dumps({"id": "x", "text": " "}) + "\r"
    path = tmp_path / "dump.jsonl"
    path.write_bytes("\n".join(lines).encode("utf-8"))
    ranges = jsonl_parts(path, 3)
    assert [(r.first, r.start) for r in ranges] == [(1, 0), (4, ranges[0].end), (7, ranges[1].end)] and ranges[-1].end == path.stat().st_size
    whole = list(read_articles([path]))
    parts = [item for part in ranges for item in from_path(path, "dump", str(path), part)]
    assert parts == whole and len(articles(whole)) == 5
    assert problems(parts) == [f"{path}:5: <line>: invalid JSON: Expecting property name enclosed in double quotes (column 2)", f"{path}:7: text: missing, empty or not a string"]
    assert len(jsonl_parts(path, 100)) == 1
    coarse = jsonl_parts(path, 1, max_parts=4)  # 8 one-line runs would be too many: merged into runs of 2, then 4
    assert [(r.first, r.start) for r in coarse] == [(1, 0), (5, sum(len(line.encode("utf-8")) + 1 for line in lines[:4]))] and coarse[-1].end == path.stat().st_size
    assert [item for part in coarse for item in from_path(path, "dump", str(path), part)] == whole
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert [(r.first, r.start, r.end) for r in jsonl_parts(tmp_path / "empty.jsonl", 3)] == [(1, 0, 0)]


def test_parts_of_a_parquet_file_are_runs_of_whole_row_groups_and_read_together_what_the_whole_file_reads(tmp_path):
    """10 rows in row groups of 2, parts of at least 3 rows: groups [0, 2), [2, 4), [4, 5), rows numbered as the file's, a bad row included."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from veille.annotation.articles import from_path, parquet_parts

    texts = [f"Meta recrute {i} ingénieurs." for i in range(10)]
    texts[6] = " "
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": [f"p{i}" for i in range(10)], "text": texts}), path, row_group_size=2)
    with path.open("rb") as handle:
        parts = parquet_parts(handle, 3)
    assert [(p.first, p.start, p.end) for p in parts] == [(1, 0, 2), (5, 2, 4), (9, 4, 5)]
    whole = list(read_articles([path]))
    assert [item for part in parts for item in from_path(path, "rows", str(path), part)] == whole
    assert problems(whole) == [f"{path}:7: text: missing, empty or not a string"] and len(articles(whole)) == 9
    with path.open("rb") as handle:
        assert len(parquet_parts(handle, 10)) == 1
        assert parquet_parts(handle, 1, max_parts=4) == parts  # 4 one-group parts are too many: merged two by two, then the run doubles
