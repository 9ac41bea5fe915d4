"""``veille predict --engine ray``: the local engine's pipeline on Ray Data, over one machine or a cluster.

A monitoring service runs extraction over millions of articles on many machines; Ray Data
is the scheduler ML teams already run for that, so veille plugs into it rather than
growing its own. The stages:

1. The driver lists the input files (local paths with the local engine's ids and
   messages; ``s3://``, ``gs://``, ``file://``… URIs through ``pyarrow.fs``) and cuts
   each local JSONL file into runs of ``--shard-articles`` lines, each Parquet file into
   runs of row groups: one large dump keeps every actor busy.
2. An actor pool (``map_batches`` with a callable class: one model load per actor) takes
   the files (or parts of them) one by one; an actor reads its task with the local engine's reader
   (:func:`veille.annotation.articles.from_handle`: articles, and error rows ``(file,
   line, field, message)``) and runs :func:`veille.serving.pipeline.predict_articles`
   over each ``--shard-articles`` of them, the very code of the local engine (sentence
   splitting, pooling, assembly), so results are the same, writing each as one output
   shard with the local engine's writers.
3. The driver prints the error rows, then commits: ``manifest.json`` is written last, in a
   staging folder renamed onto ``-o`` (local paths); on an object store, where nothing
   renames, the manifest is the commit marker. The output is complete or absent.

Ray is an extra (``pip install 'veille[ray]'``): it is imported only here, on use.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from veille.annotation.articles import (
    INPUT_SUFFIXES,
    JSONL_SUFFIXES,
    PARQUET_SUFFIXES,
    Article,
    Part,
    from_handle,
    from_path,
    input_files,
    is_uri,
    jsonl_parts,
    parquet_parts,
)
from veille.annotation.atomic import atomic_write_text, sigterm_as_ctrl_c
from veille.annotation.console import fail, progress_interval, warning
from veille.annotation.validate import Problem

from .pipeline import PredictOptions, predict_articles
from .writers import BINARY_FORMATS, SUFFIXES, make_writer

if TYPE_CHECKING:
    from pyarrow.fs import FileSystem

    from .cli import RunSummary

INSTALL_HINT = "--engine ray needs Ray Data: pip install 'veille[ray]' (or pip install 'ray[data]')"
MANIFEST = "manifest.json"
DEFAULT_SHARD_ARTICLES = 1000
WHOLE_FILE = Part(1, 0, -1)  # a task that reads its file from start to end


class Engine(str, Enum):
    """Where ``veille predict`` runs; a str so that ``engine == "ray"`` reads plainly."""

    local = "local"
    ray = "ray"


EngineOption = Annotated[Engine, typer.Option("--engine", help="local (this process) or ray (Ray Data actors: this machine's cores, or a cluster).")]
WorkersOption = Annotated[
    Optional[int],
    typer.Option("--workers", min=1, help="ray: model actors, one model load each (default: as many as the cluster's CPUs, or GPUs, hold for the per-worker resources; at most one per task)."),
]
CpusOption = Annotated[float, typer.Option("--cpus-per-worker", min=0.0, help="ray: CPUs each actor reserves (its torch threads).")]
GpusOption = Annotated[float, typer.Option("--gpus-per-worker", min=0.0, help="ray: GPUs each actor reserves (1: one GPU per actor; 0.5: two actors share one).")]
ShardOption = Annotated[int, typer.Option("--shard-articles", min=1, help="ray: articles per actor call and per output shard.")]
AddressOption = Annotated[
    Optional[str], typer.Option("--address", metavar="ADDRESS", help="ray: the cluster to join (default $RAY_ADDRESS; else a local Ray on 127.0.0.1 with this machine's CPUs).")
]


@dataclass(frozen=True)
class RaySettings:
    """The ``--engine ray`` options that the local engine has no use for."""

    workers: int | None = None  # None: as many as fit (see auto_workers)
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    shard_articles: int = DEFAULT_SHARD_ARTICLES
    address: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """What each actor needs to load the model itself (a path every node sees)."""

    path: str
    device: str
    dtype: str | None
    runtime: str = "auto"  # --runtime, as the local engine takes it (an actor on a GPU runs torch under auto)


def predict_on_ray(
    inputs: list[str], spec: ModelSpec, output: Path | None, formats: list[str], options: PredictOptions,
    settings: RaySettings, summary: RunSummary, quiet: bool, check_model: Callable[[], None],
) -> str:
    """Run the job on Ray, add its counts and errors to ``summary``; return where the output went.

    Exits like the local engine: 2 before any work (no Ray, no ``-o``, stdin), 130 when
    interrupted (nothing committed).

    ``check_model`` (the driver's check of the model directory, exit 2 when it refuses)
    runs in a thread while Ray starts and its actors load the model: seconds of reading
    that the job no longer waits for before its first actor starts. A model it refuses
    stops the job before the pipeline is built when the check ends first (the usual case:
    Ray takes longer to start), else at the first result, before anything is committed.
    """
    try:
        import ray
    except ImportError:
        raise fail(INSTALL_HINT) from None
    if output is None:
        raise fail("--engine ray writes a folder of shards and a manifest: give -o FOLDER (a local path or a URI such as s3://bucket/preds)")
    if "-" in inputs:
        raise fail("--engine ray reads files, not standard input: save it to a .jsonl file first")
    target = output_target(output)
    if not is_uri(target) and Path(target).exists() and not (Path(target) / MANIFEST).is_file() and (Path(target).is_file() or any(Path(target).iterdir())):
        raise fail(f"{output} exists and is not the output of an earlier --engine ray run (no {MANIFEST}): choose a new folder")
    files, problems = list_inputs(inputs, settings.shard_articles)
    for problem in problems:
        warning(str(problem), tag="skipped")
    summary.skipped += len(problems)
    with ThreadPoolExecutor(1, thread_name_prefix="veille-check") as pool:
        checked = pool.submit(check_model)
        started_ray = connect(ray, settings.address)
        try:
            if checked.done():
                checked.result()
            staging = Staging(target, uuid.uuid4().hex[:8])
            settings = replace(settings, workers=settings.workers or auto_workers(ray.cluster_resources(), settings, len(files)))
            return _run_and_commit(ray, files, spec, staging, formats, options, settings, summary, problems, quiet, checked)
        finally:
            if started_ray:
                ray.shutdown()


def _run_and_commit(
    ray: Any, files: list[dict[str, Any]], spec: ModelSpec, staging: Staging, formats: list[str], options: PredictOptions,
    settings: RaySettings, summary: RunSummary, problems: list[Problem], quiet: bool, checked: Future,
) -> str:
    """Run the pipeline and commit its shards; on any failure or interruption, leave no output."""
    try:
        with sigterm_as_ctrl_c():
            shards = _run(ray, files, spec, staging, formats, options, settings, summary, problems, quiet, checked)
            checked.result()  # no input rows: the check still decides
            staging.commit(shards, _manifest(spec, formats, settings, summary, shards, problems))
    except KeyboardInterrupt:
        staging.abort()
        warning(f"no output written ({staging.target} left as it was); exit code 130", tag="interrupted")
        raise typer.Exit(130) from None
    except ray.exceptions.ActorDiedError as exc:
        staging.abort()
        checked.result()  # a model the driver's check refuses: its message, not the actor's
        cause = getattr(exc.args[0], "cause", None) if exc.args else None  # Ray wraps the constructor's error in a RayTaskError
        if exc.actor_init_failed and isinstance(cause, (OSError, ValueError)):  # what the driver's check reads no values for
            raise fail(f"cannot load model {spec.path}: {cause}") from None
        raise
    except BaseException:
        staging.abort()
        raise
    return f"{staging.target} ({len(shards)} shard(s), {MANIFEST})"


def auto_workers(resources: dict[str, float], settings: RaySettings, tasks: int) -> int:
    """The default ``--workers``: as many actors as the cluster's CPUs and GPUs hold at the per-worker resources, one per task at most.

    Measured on 2 cores (README): two 1-CPU actors beat one 2-CPU actor by 14 %, since
    torch's second thread buys little at these sizes; more actors than tasks would only
    load models that wait. Each actor holds its own model (0.5 to 1 GB for e5-small or a
    base encoder in float32): give ``--workers`` where memory is short of that.
    """
    fits = [int(resources.get(kind, 0) // need) for kind, need in (("CPU", settings.cpus_per_worker), ("GPU", settings.gpus_per_worker)) if need > 0]
    return max(1, min([*fits, tasks]))


def output_target(output: Path) -> str:
    """``-o`` as a URI or an absolute path. Typer hands it over as a Path, which folds ``s3://b/x`` into ``s3:/b/x``."""
    text = str(output)
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]+:/(?!/)", text):
        return text.replace(":/", "://", 1)
    return str(output.resolve())


def connect(ray: Any, address: str | None) -> bool:
    """Join ``address`` (or ``$RAY_ADDRESS``), reuse a Ray already initialised here, else start a local one.

    A local Ray gets this machine's CPUs, listens on 127.0.0.1 only and runs no dashboard:
    a batch job on a laptop or a server should open nothing to the network. Returns
    whether it was started here (then the job shuts it down at the end).
    """
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    else:
        start_local_ray(ray, os.cpu_count() or 1)
    return True


def start_local_ray(ray: Any, cpus: int) -> None:
    """A single-node Ray on the loopback interface, no dashboard (the tests start theirs with this too).

    Ray maps 127.0.0.1 to the machine's network address on Linux; only with its
    single-node mode (the one it uses on macOS, where clusters are off) does it keep the
    loopback address. That mode is read when Ray resolves the node's address, so setting
    it on the module works even after ``import ray``.

    Ray lowers its workers' priority (nice 15) by default: on a machine shared with other
    jobs the actors then get a fraction of the CPU the local engine gets. Here the workers
    keep the priority ``veille predict`` was started with (``nice -n 5 veille predict``
    still works), as the local engine does.
    """
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False, _system_config={"worker_niceness": 0})


def list_inputs(inputs: list[str], records_per_part: int) -> tuple[list[dict[str, Any]], list[Problem]]:
    """The actors' tasks, and the problems found: a row ``{source, id, path, first, start, end}`` per input file or part of one.

    ``source`` is the file as typed, ``id`` the id of a ``.txt`` article, ``path`` where
    workers open it. Local paths go through the local engine's listing (same ids, same
    messages); URIs are listed with ``pyarrow.fs`` (a folder: every file with an input
    suffix, recursive). So that one large file keeps every actor busy, a file with more
    than ``records_per_part`` records becomes one task per :class:`Part` of it: runs of
    lines of a local JSONL file, runs of row groups of a Parquet file (local or URI, read
    from its footer); other files are read whole (``end`` -1).
    """
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for item in inputs:
        found = _list_uri(item) if is_uri(item) else input_files([item])
        for entry in found:
            if isinstance(entry, Problem):
                problems.append(entry)
                continue
            source, article_id = str(entry[0]), entry[1]
            path = source if is_uri(item) else str(Path(source).resolve())
            rows += [{"source": source, "id": article_id, "path": path, **asdict(part)} for part in _file_parts(path, records_per_part)]
    return rows, problems


def _file_parts(path: str, records: int) -> list[Part]:
    """A file's tasks: its parts of ``records`` records when it is a JSONL (local) or Parquet file of more, else the whole file."""
    suffix = PurePosixPath(path).suffix.lower()
    try:
        if suffix in PARQUET_SUFFIXES:
            fs, inner = filesystem(path)
            with fs.open_input_file(inner) as handle:
                parts = parquet_parts(handle, records)
        elif suffix in JSONL_SUFFIXES and not is_uri(path):
            parts = jsonl_parts(Path(path), records)
        else:
            return [WHOLE_FILE]
    except (OSError, ValueError):  # unreadable or not Parquet (pyarrow's ArrowInvalid is a ValueError): the actor reads it whole and reports it, as the local engine does
        return [WHOLE_FILE]
    return parts if len(parts) > 1 else [WHOLE_FILE]


def _list_uri(uri: str) -> Iterator[tuple[str, str] | Problem]:
    from pyarrow.fs import FileSelector, FileType

    fs, path = filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == FileType.File:
        yield uri, PurePosixPath(path).stem
    elif info.type == FileType.Directory:
        files = sorted(
            f.path for f in fs.get_file_info(FileSelector(path, recursive=True)) if f.type == FileType.File and PurePosixPath(f.path).suffix.lower() in INPUT_SUFFIXES
        )
        if not files:
            yield Problem(uri, 0, "<folder>", "no .txt, .jsonl or .parquet files in this folder")
        prefix = uri[: len(uri) - len(path)] if uri.endswith(path) else uri.split("://", 1)[0] + "://"
        for file in files:
            yield prefix + file, str(PurePosixPath(file).relative_to(path).with_suffix(""))
    else:
        yield Problem(uri, 0, "<file>", "no such file or folder")


def filesystem(target: str) -> tuple[FileSystem, str]:
    """The ``pyarrow.fs`` filesystem of a URI (``s3://``, ``gs://``, ``file://``…) or of a local path, and the path in it."""
    from pyarrow.fs import FileSystem, LocalFileSystem

    if is_uri(target):
        return FileSystem.from_uri(target)
    return LocalFileSystem(), str(Path(target).resolve())


def read_file(source: str, article_id: str, path: str, part: Part) -> Iterator[Article | Problem]:
    """One task's articles and problems, lazily (a row of :func:`list_inputs`): the local engine's reader, on any filesystem."""
    whole = part == WHOLE_FILE
    if not is_uri(path):
        yield from from_path(Path(path), article_id, source, None if whole else part)
        return
    fs, path = filesystem(source)
    try:
        handle = fs.open_input_file(path)
    except OSError as exc:
        yield Problem(source, 0, "<file>", f"cannot read: {exc}")
        return
    with handle:  # a Parquet part fetches only its row groups; a whole file is read into a stream the readers iterate by line
        yield from from_handle(io.BytesIO(handle.read()) if whole else handle, source, article_id, None if whole else part)


def chunks(items: Iterator[Article | Problem], size: int) -> Iterator[list[Article | Problem]]:
    """``items`` in lists of ``size`` (the last one shorter), never holding more than one list."""
    while chunk := list(itertools.islice(items, size)):
        yield chunk


class ShardPredictor:
    """The actor of the pool: loads the model once, then reads input files and writes a shard per ``shard_articles`` of their articles.

    The actor reads its files itself: a separate read stage ran each file in another Ray
    worker process, whose start (Python, Ray, pyarrow) cost more CPU than the reading and
    took it from the actors while they loaded the model.
    """

    def __init__(self, spec: ModelSpec, options: PredictOptions, formats: list[str], staging: Staging, show: int, shard_articles: int) -> None:
        import ray
        import torch

        from veille.models.predictor import Predictor

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 0)
        if cpus >= 1:  # torch's threads match what Ray reserved, so actors on one node do not fight for cores
            torch.set_num_threads(int(cpus))
        self.predictor = Predictor.load(spec.path, device=spec.device, dtype=spec.dtype, runtime=spec.runtime)
        self.options, self.formats, self.staging, self.show, self.shard_articles = options, formats, staging, show, shard_articles

    def __call__(self, batch: dict[str, Any]) -> Iterator[dict[str, list]]:
        """A result row per shard of the batch's files, as each is written (progress per shard, not per file)."""
        for source, article_id, path, first, start, end in zip(*(batch[key] for key in ("source", "id", "path", "first", "start", "end"))):
            part = Part(int(first), int(start), int(end))
            for chunk in chunks(read_file(str(source), str(article_id), str(path), part), self.shard_articles):
                yield {key: [value] for key, value in self._shard(chunk).items()}

    def _shard(self, items: list[Article | Problem]) -> dict[str, Any]:
        from .cli import RunSummary

        started = time.perf_counter()
        summary = RunSummary(self.show)
        predictions = []
        for item in predict_articles(self.predictor, items, self.options):
            if isinstance(item, Problem):
                summary.skipped += 1
            else:
                predictions.append(item)
                summary.add(item)
        files = self.staging.write_shard(predictions, self.formats, self.predictor.schema) if predictions else {}
        part = {key: value for key, value in asdict(summary).items() if key not in ("show", "started")}
        problems = [asdict(item) for item in items if isinstance(item, Problem)]
        model = {"name": self.predictor.model_name, "version": self.predictor.model_version}
        return {
            "files": json.dumps(files), "summary": json.dumps(part), "problems": json.dumps(problems), "model": json.dumps(model),
            "seconds": time.perf_counter() - started,  # the actor's busy time: per-worker throughput, start-up excluded
        }


@dataclass(frozen=True)
class Staging:
    """Where shards go until the manifest commits them: a sibling folder renamed onto a local ``-o``; ``-o`` itself on an object store."""

    target: str
    run: str

    @property
    def local(self) -> bool:
        return not is_uri(self.target)

    @property
    def folder(self) -> str:
        if self.local:
            path = Path(self.target)
            return str(path.with_name(f".{path.name}.{self.run}.tmp"))
        return self.target.rstrip("/")

    def write_shard(self, predictions: list, formats: list[str], schema: Any) -> dict[str, str]:
        """Write one shard per format; return ``{format: file name}``. Names are unique, so a retried task never overwrites."""
        fs, folder = filesystem(self.folder)
        fs.create_dir(folder, recursive=True)
        name = f"part-{self.run}-{uuid.uuid4().hex[:12]}"
        files = {}
        for fmt in formats:
            files[fmt] = name + SUFFIXES[fmt]
            with fs.open_output_stream(f"{folder}/{files[fmt]}") as raw:
                handle = raw if fmt in BINARY_FORMATS else io.TextIOWrapper(raw, encoding="utf-8", newline="")
                writer = make_writer(fmt, handle, schema)
                for prediction in predictions:
                    writer.write(prediction)
                writer.finish()
                if handle is not raw:
                    handle.detach()
        return files

    def commit(self, shards: list[dict[str, Any]], manifest: dict[str, Any]) -> None:
        """Drop what failed task attempts left, write the manifest last, and (locally) rename the folder onto ``-o``."""
        fs, folder = filesystem(self.folder)
        fs.create_dir(folder, recursive=True)
        kept = {name for shard in shards for name in shard["files"].values()}
        for name in self._own_files(fs, folder) - kept:
            fs.delete_file(f"{folder}/{name}")
        text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
        if not self.local:
            with fs.open_output_stream(f"{folder}/{MANIFEST}") as handle:
                handle.write(text.encode("utf-8"))
            return
        atomic_write_text(Path(folder) / MANIFEST, text)
        target = Path(self.target)
        previous = target.with_name(f".{target.name}.{self.run}.old")
        if target.exists():
            target.rename(previous)
        Path(folder).rename(target)
        if previous.is_dir():
            shutil.rmtree(previous)
        elif previous.exists():
            previous.unlink()

    def abort(self) -> None:
        """Remove this run's shards: the staging folder locally, this run's files on an object store."""
        if self.local:
            shutil.rmtree(self.folder, ignore_errors=True)
            return
        fs, folder = filesystem(self.folder)
        with contextlib.suppress(OSError):
            for name in self._own_files(fs, folder):
                fs.delete_file(f"{folder}/{name}")

    def _own_files(self, fs: FileSystem, folder: str) -> set[str]:
        from pyarrow.fs import FileSelector

        names = (PurePosixPath(info.path).name for info in fs.get_file_info(FileSelector(folder, allow_not_found=True)))
        return {name for name in names if name.startswith(f"part-{self.run}-")}


def _run(
    ray: Any, files: list[dict[str, Any]], spec: ModelSpec, staging: Staging, formats: list[str], options: PredictOptions,
    settings: RaySettings, summary: RunSummary, problems: list[Problem], quiet: bool, checked: Future,
) -> list[dict[str, Any]]:
    """Build the Ray Data pipeline, stream its result rows (one per shard) and fold them into ``summary`` and ``problems``.

    Each row first waits for the driver's model check (``checked``; done long before, in practice).
    """
    from tqdm import tqdm

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # veille's own bar below, as the local engine shows
    shards: list[dict[str, Any]] = []
    if not files:
        return shards
    dataset = ray.data.from_items(files, override_num_blocks=min(len(files), 64 * settings.workers)).map_batches(
        ShardPredictor,
        fn_constructor_kwargs={"spec": spec, "options": options, "formats": formats, "staging": staging, "show": summary.show, "shard_articles": settings.shard_articles},
        batch_size=1,  # a file per call: files spread over the actors, each read by the actor that predicts it
        compute=ray.data.ActorPoolStrategy(size=settings.workers),
        num_cpus=settings.cpus_per_worker,
        num_gpus=settings.gpus_per_worker or None,
    )  # Ray Data's actor defaults restart a dead actor and retry its file (the shard names are new, the failed attempt's files are dropped)
    with tqdm(desc="predict (ray)", unit=" articles", file=sys.stderr, disable=quiet, dynamic_ncols=True, mininterval=progress_interval()) as bar:
        for row in dataset.iter_rows():
            checked.result()
            for problem in (Problem(**fields) for fields in json.loads(row["problems"])):
                bar.write(f"skipped {problem}", file=sys.stderr)
                problems.append(problem)
            part = json.loads(row["summary"])
            merge_summary(summary, part)
            files_written = json.loads(row["files"])
            if files_written:
                shards.append({"files": files_written, "articles": part["articles"], "sentences": part["sentences"], "seconds": round(row["seconds"], 3), "model": json.loads(row["model"])})
            bar.update(part["articles"])
            bar.set_postfix(sentences=summary.sentences, refresh=False)
    return shards


def merge_summary(summary: RunSummary, part: dict[str, Any]) -> None:
    """Add one shard's counts to the run's, and keep the best-scored relation of each label across shards."""
    for key in ("articles", "sentences", "entities", "relations", "skipped"):
        setattr(summary, key, getattr(summary, key) + part[key])
    for label, (score, example) in part["best"].items():
        if score > summary.best.get(label, (-1.0,))[0]:
            summary.best[label] = (score, tuple(example))


def _manifest(
    spec: ModelSpec, formats: list[str], settings: RaySettings, summary: RunSummary, shards: list[dict[str, Any]], problems: list[Problem]
) -> dict[str, Any]:
    """The run's record, written last: the shards (the output is exactly these files), counts, and the error rows of skipped inputs."""
    model = shards[0]["model"] if shards else {}
    return {
        "engine": "ray",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {"path": spec.path, **model},
        "formats": formats,
        "workers": settings.workers,
        "articles": summary.articles,
        "sentences": summary.sentences,
        "entities": summary.entities,
        "relations": summary.relations,
        "skipped": summary.skipped,
        "errors": [{"file": p.path, "line": p.line, "field": p.field, "message": p.message} for p in problems],
        "shards": [{key: value for key, value in shard.items() if key != "model"} for shard in shards],
    }
