"""``veille predict`` (batch inference over articles) and ``veille serve`` (HTTP API).

Exit codes of ``veille predict``: 0 every article was processed; 1 some input was
skipped (each one reported as ``file:line: field: message``), the rest is written;
2 nothing was done (bad option, model directory that does not load); 130 interrupted
(Ctrl-C or SIGTERM): no output file written, an earlier one left as it was.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from veille.annotation.articles import missing_inputs, read_articles, warn_duplicate_ids
from veille.annotation.atomic import sigterm_as_ctrl_c
from veille.annotation.console import err, fail, progress_interval, warning
from veille.annotation.validate import Problem
from veille.models.cli import DeviceOption, RuntimeOption, ThreadsOption

from .pipeline import (
    DEFAULT_BATCH_SIZE,
    ArticlePrediction,
    DEFAULT_CHUNK_SENTENCES,
    DEFAULT_MIN_ENTITY_SCORE,
    PredictOptions,
    predict_articles,
)
from .limits import DEFAULT_LIMITS, ServeLimits
from .ray_engine import AddressOption, CpusOption, Engine, EngineOption, GpusOption, ModelSpec, RaySettings, ShardOption, WorkersOption, predict_on_ray
from .writers import FORMATS, open_writers, output_paths


ModelOption = Annotated[Path, typer.Option("--model", "-m", help="Trained model directory (from `veille train`).")]
DtypeOption = Annotated[
    Optional[str],
    typer.Option(
        "--dtype",
        help="float32, bfloat16 or float16 with torch; float32 or int8 with onnx (default: bfloat16/float16 on GPU, float32 on CPU; the int8 export when there is one).",
    ),
]
BatchOption = Annotated[int, typer.Option("--batch-size", min=1, help="Sentences per forward pass.")]
RelationOption = Annotated[
    Optional[float],
    typer.Option(
        "--relation-threshold", min=0.0, max=1.0,
        help="Keep a relation when its probability is at least this, for every label (default: each label's threshold, tuned on dev by training).",
    ),
]
EntityOption = Annotated[float, typer.Option("--min-entity-score", min=0.0, max=1.0, help="Drop entities scored below this (and their relations).")]


def register(app: typer.Typer) -> None:
    """``predict`` and ``serve``, and ``suggest`` under ``veille annotate``: it loads a model, so it lives here, not in the annotation stage."""
    from veille.annotation.labelstudio.cli import annotate_app

    from .suggest import suggest

    app.command()(predict)
    app.command()(serve)
    annotate_app.command()(suggest)


def load_predictor(model: Path, device: str, dtype: str | None, runtime: str = "auto", threads: int = 0):
    """Load the model, turning a bad directory or export into a clean CLI error (exit 2)."""
    from veille.models.predictor import Predictor

    with model_errors(model):
        return Predictor.load(model, device=device, dtype=dtype, runtime=runtime, threads=threads or None)


@contextlib.contextmanager
def model_errors(model: Path) -> Iterator[None]:
    """A model that cannot load (directory, weights, export) becomes a clean CLI error: exit 2, nothing done."""
    try:
        yield
    except (OSError, ValueError) as exc:
        raise fail(f"cannot load model {model}: {exc}") from None


def existing_inputs(inputs: list[str], verb: str) -> tuple[list[str], list[Problem]]:
    """The inputs that exist, and the missing ones, each reported: said before seconds go into loading a model (exit 2 when none exists)."""
    missing = missing_inputs(inputs)
    for problem in missing:
        warning(str(problem), tag="skipped")
    kept = [item for item in inputs if item not in {p.path for p in missing}]
    if not kept:
        raise fail(f"nothing to {verb}: no input exists (give .txt files, folders, JSONL files or - for stdin)")
    return kept, missing


def predict(
    inputs: Annotated[list[str], typer.Argument(help="Articles: .txt files, folders of them (recursive), JSONL {id, text}, or - for stdin.")],
    model: ModelOption,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Output file, written atomically at the end (default: stdout).")] = None,
    formats: Annotated[
        list[str], typer.Option("--format", "-f", help=f"{', '.join(FORMATS)}; repeat to also write the others beside -o.")
    ] = ["jsonl"],  # noqa: B006 (typer needs a list default)
    batch_size: BatchOption = DEFAULT_BATCH_SIZE,
    device: DeviceOption = "auto",
    dtype: DtypeOption = None,
    runtime: RuntimeOption = "auto",
    threads: ThreadsOption = 0,
    relation_threshold: RelationOption = None,
    min_entity_score: EntityOption = DEFAULT_MIN_ENTITY_SCORE,
    chunk_sentences: Annotated[
        int, typer.Option("--chunk-sentences", min=1, help="Sentences held in memory at once, pooled across articles and sorted by length.")
    ] = DEFAULT_CHUNK_SENTENCES,
    show: Annotated[int, typer.Option("--show", min=0, help="At the end, print the best-scored relation of up to this many relation labels.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    engine: EngineOption = Engine.local,
    workers: WorkersOption = None,
    cpus_per_worker: CpusOption = 1.0,
    gpus_per_worker: GpusOption = 0.0,
    shard_articles: ShardOption = RaySettings.shard_articles,
    address: AddressOption = None,
) -> None:
    """Extract entities and relations from articles: one JSON line per article (or Label Studio tasks, CSV, TSV, Parquet, an HTML page)."""
    from tqdm import tqdm

    try:
        paths = output_paths(formats, output)
    except ValueError as exc:
        raise fail(str(exc)) from None
    inputs, missing = existing_inputs(inputs, "predict")
    options = PredictOptions(batch_size, relation_threshold, min_entity_score, chunk_sentences)
    if engine == "ray":  # each actor loads the model: the driver only checks it (exit 2), while Ray and the actors start

        def check_model() -> None:
            from veille.models.predictor import Predictor

            with model_errors(model):
                Predictor.check(model, runtime)

        summary = RunSummary(show, skipped=len(missing))
        settings = RaySettings(workers, cpus_per_worker, gpus_per_worker, shard_articles, address)
        spec = ModelSpec(str(model.resolve()), device, dtype, runtime)
        return summary.close(predict_on_ray(inputs, spec, output, formats, options, settings, summary, quiet, check_model))
    predictor = load_predictor(model, device, dtype, runtime, threads)
    summary = RunSummary(show, skipped=len(missing))
    try:
        with (
            sigterm_as_ctrl_c(),  # a kill removes the temp files, as Ctrl-C does
            open_writers(formats, output, predictor.schema, sys.stdout) as writers,
            tqdm(desc="predict", unit=" articles", file=sys.stderr, disable=quiet, dynamic_ncols=True, mininterval=progress_interval()) as bar,
        ):
            articles = warn_duplicate_ids(read_articles(inputs), lambda message: bar.write(f"warning: {message}", file=sys.stderr))
            for item in predict_articles(predictor, articles, options):
                if isinstance(item, Problem):
                    bar.write(f"skipped {item}", file=sys.stderr)
                    summary.skipped += 1
                    continue
                for writer in writers:
                    writer.write(item)
                summary.add(item)
                bar.update(1)
                bar.set_postfix(sentences=summary.sentences, refresh=False)
    except KeyboardInterrupt:
        kept = ", ".join(str(p) for p in paths if p is not None)
        done = f"no output written ({kept} left as it was)" if kept else f"{summary.articles} article(s) written to stdout"
        warning(f"{done}; exit code 130", tag="interrupted")
        raise typer.Exit(130) from None
    summary.close(", ".join(str(p) for p in paths if p is not None) or "stdout")


@dataclass
class RunSummary:
    """Counts for the closing line, and the best-scored relation of each label for ``show``.

    One relation per label keeps the sample varied (the top scores are otherwise all the
    easiest label) and memory flat: at most one kept item per relation label.
    """

    show: int = 0
    articles: int = 0
    sentences: int = 0
    entities: int = 0
    relations: int = 0
    skipped: int = 0
    best: dict[str, tuple[float, tuple[str, str, str, str]]] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def add(self, prediction: ArticlePrediction) -> None:
        example = prediction.example
        self.articles += 1
        self.sentences += len(prediction.sentences)
        self.entities += len(example.entities)
        self.relations += len(example.relations)
        for relation in example.relations if self.show else ():
            head, tail = (example.mention(example.entity(x)) for x in (relation.head, relation.tail))
            score = relation.score or 0.0
            if score > self.best.get(relation.label, (-1.0,))[0]:
                self.best[relation.label] = (score, (example.id, head, relation.label, tail))

    def close(self, where: str) -> None:
        """Print the closing line; exit 1 when input was skipped (either engine)."""
        self.print(where)
        if self.skipped:
            warning(f"{self.skipped} input(s) skipped (listed above); exit code 1", tag="skipped")
            raise typer.Exit(1)

    def print(self, where: str) -> None:
        elapsed = time.perf_counter() - self.started
        err.print(
            f"{self.articles} articles, {self.sentences} sentences → {self.entities} entities, {self.relations} relations "
            f"in {elapsed:.1f} s ({self.articles / max(elapsed, 1e-9):.1f} articles/s, {self.sentences / max(elapsed, 1e-9):.0f} sentences/s) → {where}",
            highlight=False,
        )
        shown = sorted(self.best.values(), reverse=True)[: self.show]
        if shown:
            table = Table(title=f"{len(shown)} best-scored relations (one per label)")
            for column in ("article", "head", "relation", "tail", "score"):
                table.add_column(column)
            for score, (article, head, label, tail) in shown:
                table.add_row(article, head, label, tail, f"{score:.2f}")
            err.print(table)


def serve(
    model: ModelOption,
    host: Annotated[str, typer.Option("--host", help="Interface to bind; 0.0.0.0 exposes the API to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    batch_size: BatchOption = DEFAULT_BATCH_SIZE,
    device: DeviceOption = "auto",
    dtype: DtypeOption = None,
    runtime: RuntimeOption = "auto",
    threads: ThreadsOption = 0,
    relation_threshold: RelationOption = None,
    min_entity_score: EntityOption = DEFAULT_MIN_ENTITY_SCORE,
    max_request_bytes: Annotated[int, typer.Option("--max-request-bytes", min=1, help="Larger bodies get 413.")] = DEFAULT_LIMITS.max_request_bytes,
    max_texts: Annotated[int, typer.Option("--max-texts", min=1, help="Texts per /v1/extract request; more get 422.")] = DEFAULT_LIMITS.max_texts,
    max_text_chars: Annotated[int, typer.Option("--max-text-chars", min=1, help="Characters per text; longer get 422.")] = DEFAULT_LIMITS.max_text_chars,
    max_batch_sentences: Annotated[
        int, typer.Option("--max-batch-sentences", min=1, help="Sentences of concurrent requests run together in one model call.")
    ] = DEFAULT_LIMITS.max_batch_sentences,
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", min=0.0, help="How long a request waits for others to share its batch.")] = DEFAULT_LIMITS.max_wait_ms,
    shutdown_timeout: Annotated[float, typer.Option("--shutdown-timeout", min=0.0, help="Seconds given to running requests on SIGTERM/Ctrl-C.")] = 30.0,
) -> None:
    """Serve the model over HTTP: veille's JSON API (/v1/extract, /docs) and a Label Studio ML backend (/predict)."""
    import uvicorn

    from .api import create_app

    predictor = load_predictor(model, device, dtype, runtime, threads)
    limits = ServeLimits(max_request_bytes, max_texts, max_text_chars, max_batch_sentences, max_wait_ms)
    app = create_app(predictor, PredictOptions(batch_size, relation_threshold, min_entity_score), limits)
    err.print(f"veille serve: model {predictor.model_name} {predictor.model_version} on {predictor.device} ({predictor.runtime}, {predictor.dtype}); http://{host}:{port}/ (page), /docs (API)", highlight=False)
    uvicorn.run(app, host=host, port=port, timeout_graceful_shutdown=shutdown_timeout, log_level="info")
