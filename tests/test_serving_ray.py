"""``veille predict --engine ray`` on a real local Ray (2 CPUs, 127.0.0.1): the local engine's results, sharded and committed."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from conftest import copy_with_weight
from typer.testing import CliRunner

from veille.cli import app
from veille.serving.ray_engine import INSTALL_HINT, MANIFEST, Staging, start_local_ray

SENTENCES = [
    "Arthur Mensch, cofondateur de Mistral AI, a annoncé une levée de 600 millions d'euros.",
    "Meta a investi 14,3 milliards de dollars dans Scale AI.",
    "Alexandr Wang, PDG de Scale AI, rejoint Meta.",
    "Google rachète Wiz pour 32 milliards de dollars.",
    "Hugging Face s'installe à Paris et recrute 40 ingénieurs.",
    "Nvidia prend une participation de 5 % dans Intel.",
    "Sam Altman dirige OpenAI depuis 2019.",
]


def predict(*args: object):
    return CliRunner().invoke(app, ["predict", *map(str, args)], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def local_ray():
    """One real Ray for the module: 2 CPUs, 127.0.0.1, no dashboard. Without Ray: skipped locally, failed under CI."""
    try:
        import ray
    except ImportError:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(INSTALL_HINT)
    start_local_ray(ray, cpus=2)
    assert ray.util.get_node_ip_address() == "127.0.0.1"
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[Path]:
    """Some 300 sentences: a JSONL file of 60 articles with two bad lines, a folder of .txt articles, a Parquet file of three row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("ray-inputs")
    article = lambda i: " ".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(4))  # noqa: E731
    lines = [json.dumps({"id": f"j{i}", "text": article(i)}, ensure_ascii=False) for i in range(60)]
    lines[10], lines[30] = "{not json", json.dumps({"id": "empty", "text": " "})
    (root / "batch.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "folder" / "sub").mkdir(parents=True)
    for i in range(5):
        (root / "folder" / ("sub" if i % 2 else "") / f"t{i}.txt").write_text(article(i) + "\n\n" + article(i + 3), encoding="utf-8")
    pq.write_table(pa.table({"id": [f"p{i}" for i in range(12)], "text": [article(i + 1) for i in range(12)]}), root / "rows.parquet", row_group_size=4)
    return [root / "batch.jsonl", root / "folder", root / "rows.parquet"]


def read_shards(folder: Path) -> tuple[dict, list[dict], list[dict]]:
    """The manifest, the JSONL lines and the Parquet rows (if written) of every shard it lists."""
    import pyarrow.parquet as pq

    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    lines, rows = [], []
    for shard in manifest["shards"]:
        lines += [json.loads(line) for line in (folder / shard["files"]["jsonl"]).read_text(encoding="utf-8").splitlines()]
        if "parquet" in shard["files"]:
            rows += pq.read_table(folder / shard["files"]["parquet"]).to_pylist()
    return manifest, lines, rows


def test_ray_engine_writes_what_the_local_engine_writes(local_ray, tiny_trained_model, inputs, tmp_path) -> None:
    """Same articles, entities, relations and scores (order aside), same skipped lines, exit code and counts."""
    import pyarrow.parquet as pq

    common = [*inputs, "--model", tiny_trained_model, "--relation-threshold", "0.0", "-f", "jsonl", "-f", "parquet", "-q"]
    local = predict(*common, "-o", tmp_path / "local.jsonl")
    out = tmp_path / "ray-out"
    (out / "stale").mkdir(parents=True)
    refused = predict(*common, "-o", out, "--engine", "ray")
    assert refused.exit_code == 2 and "is not the output of an earlier --engine ray run" in refused.stderr  # never replaces a user's folder
    (out / MANIFEST).write_text("{}", encoding="utf-8")  # a previous run's output: replaced as a whole
    ray = predict(*common, "-o", out, "--engine", "ray", "--workers", "2", "--shard-articles", "16")
    assert local.exit_code == ray.exit_code == 1, ray.output
    skipped = [line for line in local.stderr.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 2 and sorted(skipped) == sorted(line for line in ray.stderr.splitlines() if line.startswith("skipped "))
    assert "2 input(s) skipped" in ray.stderr and "75 articles" in local.stderr and "75 articles" in ray.stderr

    manifest, lines, rows = read_shards(out)
    expected = [json.loads(line) for line in (tmp_path / "local.jsonl").read_text(encoding="utf-8").splitlines()]
    key = lambda line: line["meta"]["source"] if "meta" in line else line["source"]  # noqa: E731
    assert sorted(lines, key=key) == sorted(expected, key=key)
    assert sum(len(line["relations"]) for line in expected) > 0 and sum(len(line["entities"]) for line in expected) > 0
    assert sorted(rows, key=key) == sorted(pq.read_table(tmp_path / "local.parquet").to_pylist(), key=key)

    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST, *(f for shard in manifest["shards"] for f in shard["files"].values())])
    assert len(manifest["shards"]) >= 5 and sum(shard["articles"] for shard in manifest["shards"]) == manifest["articles"] == 75
    assert {(e["file"], e["line"]) for e in manifest["errors"]} == {(str(inputs[0]), 11), (str(inputs[0]), 31)}
    assert manifest["skipped"] == 2 and manifest["model"]["name"] and manifest["entities"] == sum(len(line["entities"]) for line in expected)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ray-out")]  # no staging folder left


def test_an_actor_killed_mid_job_is_restarted_and_the_output_is_whole(local_ray, tiny_trained_model, inputs, tmp_path) -> None:
    """SIGKILL the model actor once its first shard is written: Ray starts another and retries the batch; the output is the local engine's, no extra file."""
    import signal
    import threading
    import time

    import psutil

    common = [*inputs, "--model", tiny_trained_model, "-q"]
    assert predict(*common, "-o", tmp_path / "local.jsonl").exit_code == 1  # the two bad lines
    actors: list[int] = []
    killed: list[int] = []
    done = threading.Event()

    def kill_once() -> None:
        while not done.is_set():
            pids = [p.pid for p in psutil.process_iter(["cmdline"]) if "ShardPredictor" in " ".join(p.info["cmdline"] or [])]
            actors.extend(pid for pid in pids if pid not in actors)
            if not killed and pids and any(tmp_path.glob(".out.*.tmp/part-*")):
                os.kill(pids[0], signal.SIGKILL)  # mid-job: one-line tasks, one-article shards
                killed.append(pids[0])
            time.sleep(0.01)

    killer = threading.Thread(target=kill_once, daemon=True)
    killer.start()
    try:
        result = predict(*common, "-o", tmp_path / "out", "--engine", "ray", "--workers", "1", "--shard-articles", "1")
    finally:
        done.set()
        killer.join()
    assert killed and len(actors) >= 2, (killed, actors)  # killed, and a new actor took over
    assert result.exit_code == 1 and "75 articles" in result.stderr, result.output
    manifest, lines, _ = read_shards(tmp_path / "out")
    expected = [json.loads(line) for line in (tmp_path / "local.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(lines, key=lambda line: line["meta"]["source"]) == sorted(expected, key=lambda line: line["meta"]["source"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([MANIFEST, *(f for shard in manifest["shards"] for f in shard["files"].values())])


def test_ray_engine_reads_uris(local_ray, tiny_trained_model, inputs, tmp_path) -> None:
    """A folder and a Parquet file given as URIs (here file://, as s3:// on a cluster) are listed and read by the workers, ids as for a path.

    The Parquet file is three tasks of one row group (--shard-articles 4), each fetched on its own, rows numbered as the file's.
    """
    out = tmp_path / "uri-out"
    result = predict(inputs[1].as_uri(), inputs[2].as_uri(), "--model", tiny_trained_model, "-o", out, "--engine", "ray", "--shard-articles", "4", "-q")
    assert result.exit_code == 0, result.output
    manifest, lines, _ = read_shards(out)
    assert sorted(line["id"] for line in lines if line["id"].startswith(("t", "sub/"))) == ["sub/t1", "sub/t3", "t0", "t2", "t4"]
    rows = sorted((line["meta"]["source"], line["id"]) for line in lines if line["meta"]["source"].endswith(tuple(f".parquet:{n}" for n in range(1, 13))))
    assert rows == sorted((f"{inputs[2].as_uri()}:{i + 1}", f"p{i}") for i in range(12))
    assert manifest["workers"] == 2  # no --workers: one 1-CPU actor per CPU of the local Ray
    assert all(line["meta"]["source"].startswith("file://") for line in lines)


def test_commit_keeps_only_listed_shards_and_abort_leaves_nothing(tmp_path) -> None:
    """A retried task's half shard is dropped at commit; a failed run removes its staging folder and keeps the old output."""
    out = tmp_path / "preds"
    out.mkdir()
    (out / "old.jsonl").write_text("previous\n", encoding="utf-8")
    failed = Staging(str(out), "run1")
    Path(failed.folder).mkdir()
    (Path(failed.folder) / "part-run1-a.jsonl").write_text("half", encoding="utf-8")
    failed.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds"] and (out / "old.jsonl").exists()

    staging = Staging(str(out), "run2")
    Path(staging.folder).mkdir()
    for name in ("part-run2-kept.jsonl", "part-run2-retried.jsonl"):
        (Path(staging.folder) / name).write_text("{}\n", encoding="utf-8")
    staging.commit([{"files": {"jsonl": "part-run2-kept.jsonl"}}], {"shards": 1})
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "part-run2-kept.jsonl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds"]


def test_a_model_the_actors_refuse_stops_the_job_with_their_message(local_ray, tiny_trained_model, inputs, tmp_path) -> None:
    """NaN in the encoder passes the driver's check (it reads no encoder value): the actors' own load refuses it."""
    broken = copy_with_weight(tiny_trained_model, tmp_path / "model", "encoder.embeddings.word_embeddings.weight", float("nan"))
    result = predict(*inputs, "--model", broken, "--engine", "ray", "-o", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "cannot load model" in result.stderr and "hold NaN or infinite values (encoder.embeddings.word_embeddings.weight)" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_large_jsonl_file_is_cut_into_tasks_of_shard_articles_lines(inputs) -> None:
    """One dump keeps several actors busy: runs of 16 lines numbered as the file's, runs of row groups of a Parquet file; .txt files stay one task each."""
    from veille.serving.ray_engine import list_inputs

    rows, problems = list_inputs([str(item) for item in inputs], 16)
    assert not problems
    batch = [row for row in rows if row["source"] == str(inputs[0])]
    assert [row["first"] for row in batch] == [1, 17, 33, 49] and batch[0]["start"] == 0
    assert [row["start"] for row in batch[1:]] == [row["end"] for row in batch[:-1]] and batch[-1]["end"] == inputs[0].stat().st_size
    assert [(row["first"], row["start"], row["end"]) for row in rows if row not in batch] == [(1, 0, -1)] * 6  # 12 rows: one task
    assert [(row["first"], row["start"], row["end"]) for row in list_inputs([inputs[2].as_uri()], 4)[0]] == [(1, 0, 1), (5, 1, 2), (9, 2, 3)]
    assert [row["first"] for row in list_inputs([str(inputs[0])], 100)[0]] == [1]


def test_default_workers_fill_the_cluster_one_per_task_at_most() -> None:
    from veille.serving.ray_engine import RaySettings, auto_workers

    assert auto_workers({"CPU": 16.0}, RaySettings(), tasks=100) == 16
    assert auto_workers({"CPU": 16.0}, RaySettings(cpus_per_worker=4), tasks=100) == 4
    assert auto_workers({"CPU": 16.0}, RaySettings(), tasks=3) == 3
    assert auto_workers({"CPU": 16.0, "GPU": 2.0}, RaySettings(gpus_per_worker=0.5), tasks=100) == 4
    assert auto_workers({"CPU": 16.0}, RaySettings(gpus_per_worker=1), tasks=100) == 1  # no GPU yet (an autoscaling cluster adds one): one actor, which waits for it
    assert auto_workers({"CPU": 2.0}, RaySettings(cpus_per_worker=0), tasks=7) == 7


def test_a_model_the_drivers_check_refuses_stops_the_job_with_its_message(local_ray, tiny_trained_model, inputs, tmp_path) -> None:
    """The check runs while the actors start: its refusal (no ONNX export) is the one message, exit 2, nothing written."""
    result = predict(*inputs, "--model", tiny_trained_model, "--engine", "ray", "--runtime", "onnx", "-o", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert result.stderr.count("cannot load model") == 1 and f"cannot load model {tiny_trained_model}: " in result.stderr and "no ONNX export" in result.stderr
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_ray_engine_refusals_exit_2_and_write_nothing(tiny_trained_model, inputs, tmp_path, monkeypatch) -> None:
    result = predict(*inputs, "--model", tiny_trained_model, "--engine", "ray")
    assert result.exit_code == 2 and "give -o FOLDER" in result.stderr
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    result = predict(*inputs, "--model", tiny_trained_model, "--engine", "ray", "-o", tmp_path / "out")
    assert result.exit_code == 2 and "pip install 'veille[ray]'" in result.stderr
    assert not (tmp_path / "out").exists()


def test_output_uri_survives_typer_path_conversion(tmp_path, monkeypatch) -> None:
    from veille.serving.ray_engine import output_target

    monkeypatch.chdir(tmp_path)
    assert output_target(Path("s3://bucket/preds")) == "s3://bucket/preds"  # Path("s3://…") is s3:/…
    assert output_target(Path("preds")) == str(tmp_path / "preds")
