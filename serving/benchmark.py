"""Inference benchmarks of ``veille predict``, each against a baseline measured in the same run.

    python -m veille.serving.benchmark throughput --model runs/veille-quick --threads 1
    python -m veille.serving.benchmark memory --model runs/veille-quick --sizes 10000 --chars 5000 --chars 100000
    python -m veille.serving.benchmark load --model runs/veille-quick --requests 400 --concurrency 8
    python -m veille.serving.benchmark gpu            # camembert-base-sized encoder, batch-size sweep
    python -m veille.serving.benchmark ray --articles 1200 --shard-articles 100     # default model: random, e5-small-sized
    python -m veille.serving.benchmark models -m runs/quick-shared -m runs/quick-markers

``throughput``: veille's pipeline (sentence pooling, one encoder pass for both heads,
entities *and* relations, JSONL written), with each encoder runtime asked (torch, the
ONNX float32 and int8 exports of ``veille export onnx``), against the Hugging Face
``pipeline("token-classification", aggregation_strategy="first")`` running the same
encoder and entity-head weights (exported from the joint model as an
``AutoModelForTokenClassification``), on the same sentences, device, threads and batch
size; then the cold start of ``veille predict`` on one short article with each runtime.

``memory``: peak resident memory of a ``veille predict`` process over N sentences, for
several N (streaming: it should not grow with the input), and over one unpunctuated
article of N characters, a single sentence (bounded relation pairs: it should not grow
with the sentence's length either).

``load``: a bounded run of ``veille serve`` on 127.0.0.1: N requests from C concurrent
clients, status counts and latency p50/p95 (each request's whole round trip).

``gpu``: sentences/s and tokens/s of a randomly initialised camembert-base-sized joint
model (12 layers × 768) over batch sizes, and the smallest batch size reaching 95 % of
the best throughput (the one that saturates the GPU).

``models``: ``veille predict`` with several trained models on the same sentences (what a
training option such as ``relation_encoder = "markers"`` costs at inference).

``ray``: ``veille predict`` with the local engine, then ``--engine ray`` with 1 and 2
workers, on the same articles in one run; the Ray overhead at 1 worker, and the
per-worker throughput (from the shards' busy time) behind a written estimate for a
large job.

Sentences come from the gold corpus and the seed articles, repeated to the size asked.
Results are printed and written as JSON (``--json``) for the README.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from veille.annotation.articles import Article
from veille.annotation.atomic import atomic_write_text
from veille.annotation.corpus import read_corpus
from veille.annotation.sentences import split_sentences

from .pipeline import PredictOptions, predict_articles

REPO = Path(__file__).resolve().parent.parent
app = typer.Typer(help="veille inference benchmarks (see the module docstring).", no_args_is_help=True, add_completion=False)

ModelOption = Annotated[Path, typer.Option("--model", "-m", help="Trained model directory (e.g. runs/veille-quick).")]
JsonOption = Annotated[Optional[Path], typer.Option("--json", help="Also write the results here.")]


def corpus_sentences(count: int) -> list[str]:
    """``count`` real news sentences: the gold corpus texts and the seed articles, cycled."""
    gold = sorted((REPO / "annotation" / "corpus").glob("*.jsonl"))
    pool = [example.text for example in read_corpus(gold)] if gold else []
    for path in sorted((REPO / "seeds").glob("*.txt")):
        pool += [s.text for s in split_sentences(path.read_text(encoding="utf-8"))]
    if not pool:
        raise typer.BadParameter("no corpus or seed sentences found")
    return [pool[i % len(pool)] for i in range(count)]


def export_token_classifier(model_dir: Path, out_dir: Path) -> Path:
    """Write the encoder and the entity head of a veille model as a Hugging Face token-classification model.

    The joint model's token head reads the first sub-token of each word, which is what
    ``aggregation_strategy="first"`` does, so both compute the same entity labels.
    """
    import torch
    from transformers import AutoModelForTokenClassification

    from veille.models.checkpoint import load_model

    loaded = load_model(model_dir)
    joint = loaded.model
    config = joint.encoder.config
    config.num_labels = len(joint.config.bio_labels)
    config.id2label = dict(enumerate(joint.config.bio_labels))
    config.label2id = {label: i for i, label in enumerate(joint.config.bio_labels)}
    classifier = AutoModelForTokenClassification.from_config(config)
    getattr(classifier, classifier.base_model_prefix).load_state_dict(joint.encoder.state_dict())
    classifier.classifier.load_state_dict(joint.token_head.state_dict())
    classifier.eval()
    probe = loaded.tokenizer("Arthur Mensch dirige Mistral AI à Paris.", return_tensors="pt")
    with torch.inference_mode():
        theirs = classifier(**probe).logits
        ours = joint.token_head(joint.encoder(**probe).last_hidden_state)
    if not torch.allclose(theirs, ours, atol=1e-4):
        raise RuntimeError("the exported token classifier does not reproduce the joint model's entity logits")
    classifier.save_pretrained(out_dir)
    loaded.tokenizer.save_pretrained(out_dir)
    return out_dir


# Encoder runtimes the throughput benchmark can compare: name → (--runtime, --dtype); None: the benchmark's --dtype.
VARIANTS: dict[str, tuple[str, str | None]] = {"torch": ("torch", None), "onnx": ("onnx", "float32"), "onnx-int8": ("onnx", "int8")}


@app.command()
def throughput(
    model: ModelOption,
    sentences: Annotated[int, typer.Option(help="Sentences to predict.")] = 1000,
    batch_size: Annotated[int, typer.Option()] = 32,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    dtype: Annotated[str, typer.Option(help="float32 or bfloat16, for torch and the HF pipeline.")] = "float32",
    threads: Annotated[int, typer.Option(help="CPU threads of every side (0: the libraries' default, one per core). 1 gives stable figures on a busy machine.")] = 0,
    runtimes: Annotated[
        list[str],
        typer.Option("--runtime", help=f"veille runtimes to measure: {', '.join(VARIANTS)} (repeat; default: torch and each ONNX export the model has)."),
    ] = [],  # noqa: B006
    repeats: Annotated[int, typer.Option(help="Timed runs of each, alternating; the best counts.")] = 2,
    cold_start: Annotated[bool, typer.Option(help="Also time `veille predict` on one short article, process start to exit, per runtime.")] = True,
    json_out: JsonOption = None,
) -> None:
    """veille predict (torch, ONNX float32, ONNX int8) vs the Hugging Face token-classification pipeline on the same weights."""
    import torch
    from transformers import pipeline

    from veille.models.predictor import Predictor
    from veille.models.runtime import export_path

    unknown = [name for name in runtimes if name not in VARIANTS]
    if unknown:
        raise typer.BadParameter(f"unknown runtime(s) {', '.join(unknown)} (choose from {', '.join(VARIANTS)})")
    runtimes = runtimes or ["torch", *(name for name in VARIANTS if name != "torch" and export_path(model, VARIANTS[name][1]).is_file())]
    if threads:
        torch.set_num_threads(threads)
    texts = corpus_sentences(sentences)
    articles = [Article(f"s{i}", text, "benchmark") for i, text in enumerate(texts)]
    predictors = {name: Predictor.load(model, device=device, dtype=VARIANTS[name][1] or dtype, runtime=VARIANTS[name][0], threads=threads or None) for name in runtimes}
    tokens = sum(len(ids) for ids in next(iter(predictors.values())).tokenizer(texts)["input_ids"])
    counts: dict[str, dict[str, int]] = {name: {} for name in [*runtimes, "hf"]}

    def veille_run(name: str, items: list[Article]) -> None:
        counts[name] = predict_to_jsonl(predictors[name], items, batch_size)

    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = export_token_classifier(model, Path(tmp) / "token-classifier")
        tagger = pipeline("token-classification", model=str(hf_dir), aggregation_strategy="first", device=torch.device(device), dtype=getattr(torch, dtype))

        def hf_run(items: list[str]) -> None:
            counts["hf"] = {"entities": sum(len(found) for found in tagger(items, batch_size=batch_size))}

        hf_run(texts[:batch_size])  # warm-up
        for name in runtimes:
            veille_run(name, articles[:batch_size])
        timings = {name: Timing() for name in ["hf", *runtimes]}
        for _ in range(repeats):  # alternate, keep the best of each: fair to all against background load
            timings["hf"].measure(lambda: hf_run(texts))
            for name in runtimes:
                timings[name].measure(lambda name=name: veille_run(name, articles))
    hf = timings["hf"]
    result = {
        "benchmark": "throughput",
        "model": str(model),
        "device": device,
        "threads": threads or "default",
        "torch_threads": torch.get_num_threads(),
        "sentences": len(texts),
        "tokens": tokens,
        "batch_size": batch_size,
        "hf_pipeline": {"dtype": dtype, **_rates(len(texts), tokens, hf), **counts["hf"]},
        "veille": {
            name: {
                "runtime": predictors[name].runtime, "dtype": predictors[name].dtype, **_rates(len(texts), tokens, timings[name]),
                "ratio": round(hf.wall / timings[name].wall, 2), "ratio_cpu_time": round(hf.cpu / timings[name].cpu, 2), **counts[name],
            }
            for name in runtimes
        },
    }
    if cold_start:
        result["cold_start_s"] = {name: predict_cold_start(model, *VARIANTS[name], dtype, threads) for name in runtimes}
    _report(result, json_out)


def _rates(sentences: int, tokens: int, timing: Timing) -> dict[str, float]:
    return {"sentences_per_s": round(sentences / timing.wall, 1), "tokens_per_s": round(tokens / timing.wall)}


def predict_cold_start(model: Path, runtime: str, variant_dtype: str | None, dtype: str, threads: int, runs: int = 2) -> float:
    """Seconds from starting `veille predict` on one short article to its exit, output written (best of ``runs``).

    What a user waits for on every small job: interpreter, imports, model and session
    loading, one prediction. The best run has the files in the page cache, as on a
    machine that predicts often.
    """
    article = "Arthur Mensch, cofondateur de Mistral AI, a annoncé à Paris une levée de 600 millions d'euros auprès de Nvidia."
    best = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        source, output = Path(tmp) / "article.txt", Path(tmp) / "out.jsonl"
        source.write_text(article, encoding="utf-8")
        command = [sys.executable, "-m", "veille", "predict", "--model", str(model), str(source), "-o", str(output), "-q"]
        command += ["--device", "cpu", "--runtime", runtime, "--dtype", variant_dtype or dtype, "--threads", str(threads)]
        for _ in range(runs):
            _, elapsed = peak_rss_mb(command, {"HF_HUB_OFFLINE": "1"})
            best = min(best, elapsed)
    return round(best, 2)


@dataclass
class Timing:
    """Best wall-clock and CPU time over several runs (CPU time is robust to other processes on the machine)."""

    wall: float = float("inf")
    cpu: float = float("inf")

    def measure(self, run: Callable[[], None]) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        self.wall = min(self.wall, time.perf_counter() - wall)
        self.cpu = min(self.cpu, time.process_time() - cpu)


def peak_rss_mb(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``command``; return its peak resident memory (MB, from wait4) and its duration (s)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **env})
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{process.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, elapsed


def unpunctuated_text(chars: int) -> str:
    """``chars`` characters of corpus text without any punctuation: one sentence, however long.

    The sentence splitter cuts only at punctuation and line breaks, so this is the worst
    case for the model's per-sentence work (every entity pair of the text is in one sentence).
    """
    words: list[str] = []
    length, count = 0, 256
    while length < chars:
        words = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in " ".join(corpus_sentences(count))).split()
        length, count = len(" ".join(words)), count * 2
    return " ".join(words)[:chars].rstrip()


@app.command()
def memory(
    model: ModelOption,
    sizes: Annotated[
        list[int], typer.Option("--sizes", help="Numbers of sentences (repeat the option; 10,000 and 50,000 when neither --sizes nor --chars is given).")
    ] = [],  # noqa: B006
    chars: Annotated[
        list[int], typer.Option("--chars", help="Characters of one unpunctuated article, a single sentence (repeat the option).")
    ] = [],  # noqa: B006
    per_article: Annotated[int, typer.Option(help="Sentences per generated article.")] = 10,
    device: Annotated[str, typer.Option()] = "cpu",
    dtype: Annotated[str, typer.Option(help="--dtype of veille predict (bfloat16 is faster on CPUs with AMX).")] = "float32",
    threads: Annotated[int, typer.Option(help="OMP_NUM_THREADS of veille predict (0: torch's default).")] = 0,
    json_out: JsonOption = None,
) -> None:
    """Peak RSS of `veille predict` for each input size (streaming: flat) and each sentence length (bounded pairs: flat)."""
    runs = []
    if not sizes and not chars:
        sizes = [10_000, 50_000]
    with tempfile.TemporaryDirectory() as tmp:
        inputs: list[tuple[dict[str, int], list[str]]] = []
        for size in sizes:
            texts = corpus_sentences(size)
            inputs.append(({"sentences": size}, [" ".join(texts[start : start + per_article]) for start in range(0, size, per_article)]))
        inputs += [({"unpunctuated_chars": count}, [unpunctuated_text(count)]) for count in chars]
        for what, articles in inputs:
            source, output = Path(tmp) / "articles.jsonl", Path(tmp) / "out.jsonl"
            with source.open("w", encoding="utf-8") as handle:
                for index, article in enumerate(articles):
                    handle.write(json.dumps({"id": f"a{index}", "text": article}, ensure_ascii=False) + "\n")
            command = [sys.executable, "-m", "veille", "predict", "--model", str(model), str(source), "-o", str(output), "--device", device, "--dtype", dtype, "-q"]
            rss, elapsed = peak_rss_mb(command, {"OMP_NUM_THREADS": str(threads)} if threads else {})
            runs.append({**what, "peak_rss_mb": round(rss, 1), "seconds": round(elapsed, 1), "output_mb": round(output.stat().st_size / 2**20, 1)})
            print(f"{what}: peak RSS {rss:.0f} MB in {elapsed:.0f} s", file=sys.stderr)
    result = {"benchmark": "memory", "model": str(model), "device": device, "dtype": dtype, "runs": runs}
    for key in ("sentences", "unpunctuated_chars"):
        peaks = [r["peak_rss_mb"] for r in runs if key in r]
        if peaks:
            result[f"max_over_min_{key}"] = round(max(peaks) / min(peaks), 3)
    _report(result, json_out)


@app.command()
def load(
    model: ModelOption,
    requests: Annotated[int, typer.Option(min=1, help="Requests to send, then stop (a bounded run).")] = 400,
    concurrency: Annotated[int, typer.Option(min=1, help="Clients sending at the same time.")] = 8,
    texts: Annotated[int, typer.Option(min=1, help="Corpus sentences per request.")] = 2,
    device: Annotated[str, typer.Option()] = "cpu",
    json_out: JsonOption = None,
) -> None:
    """A bounded load run: `veille serve` on 127.0.0.1 (a free port), ``requests`` requests from ``concurrency`` clients."""
    import statistics
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from veille.annotation.labelstudio.server import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "veille", "serve", "--model", str(model), "--port", str(port), "--device", device],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    sentences = corpus_sentences(requests * texts)
    bodies = [{"texts": sentences[i * texts : (i + 1) * texts]} for i in range(requests)]
    try:
        _wait_until_healthy(url, server)
        with httpx.Client(base_url=url, timeout=120) as client, ThreadPoolExecutor(concurrency) as pool:

            def send(body: dict[str, Any]) -> tuple[int, float]:
                started = time.perf_counter()
                status = client.post("/v1/extract", json=body).status_code
                return status, time.perf_counter() - started

            started = time.perf_counter()
            answers = list(pool.map(send, bodies))
            wall = time.perf_counter() - started
            batching = client.get("/v1/info").json()["batching"]
    finally:
        server.terminate()
        server.wait(timeout=60)
    latencies = sorted(seconds for _, seconds in answers)
    statuses: dict[str, int] = {}
    for status, _ in answers:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    _report(
        {
            "benchmark": "load",
            "model": str(model),
            "device": device,
            "requests": requests,
            "concurrency": concurrency,
            "texts_per_request": texts,
            "statuses": statuses,
            "p50_ms": round(1000 * statistics.median(latencies), 1),
            "p95_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 1),
            "max_ms": round(1000 * latencies[-1], 1),
            "requests_per_s": round(requests / wall, 1),
            "model_calls": batching["model_calls"],
        },
        json_out,
    )


def _wait_until_healthy(url: str, server: subprocess.Popen, timeout: float = 180) -> None:
    """Poll ``/v1/health`` until it answers (model loaded), for at most ``timeout`` seconds."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"veille serve exited with {server.returncode} before answering")
        try:
            if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"veille serve did not answer within {timeout:.0f} s")


@app.command()
def gpu(
    sentences: Annotated[int, typer.Option(help="Sentences per measurement.")] = 4096,
    batch_sizes: Annotated[list[int], typer.Option("--batch-size", help="Batch sizes to sweep (repeat the option).")] = [8, 16, 32, 64, 128, 256, 512],  # noqa: B006
    device: Annotated[str, typer.Option()] = "cuda",
    dtype: Annotated[Optional[str], typer.Option(help="Default: the inference policy (bfloat16 on GPUs that support it).")] = None,
    json_out: JsonOption = None,
) -> None:
    """Throughput of a camembert-base-sized joint model (random weights) over batch sizes."""
    import torch

    from veille.models.predictor import Predictor

    texts = corpus_sentences(sentences)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_base_sized_model(Path(tmp) / "base-sized")
        predictor = Predictor.load(model_dir, device=device, dtype=dtype)
        tokens = sum(len(ids) for ids in predictor.tokenizer(texts, add_special_tokens=True)["input_ids"])
        articles = [Article(f"s{i}", text, "benchmark") for i, text in enumerate(texts)]
        sweep = []
        for batch_size in batch_sizes:
            options = PredictOptions(batch_size=batch_size)

            def run(items: list[Article], options: PredictOptions = options) -> None:
                for _ in predict_articles(predictor, items, options):
                    pass
                if device.startswith("cuda"):
                    torch.cuda.synchronize()

            run(articles[: 2 * batch_size])  # warm-up
            timing = Timing()
            timing.measure(lambda: run(articles))
            seconds = timing.wall
            sweep.append({"batch_size": batch_size, "sentences_per_s": round(len(texts) / seconds, 1), "tokens_per_s": round(tokens / seconds)})
            print(sweep[-1], file=sys.stderr)
    best = max(r["sentences_per_s"] for r in sweep)
    saturating = min(r["batch_size"] for r in sweep if r["sentences_per_s"] >= 0.95 * best)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    _report({"benchmark": "gpu", "device": name, "sentences": len(texts), "tokens": tokens, "sweep": sweep, "saturating_batch_size": saturating}, json_out)


@app.command("ray")
def ray_engine(
    model: Annotated[Optional[Path], typer.Option("--model", "-m", help="Model directory (default: random weights of e5-small's shape, 12 × 384).")] = None,
    articles: Annotated[int, typer.Option(help="Articles to predict.")] = 200,
    per_article: Annotated[int, typer.Option(help="Corpus sentences per article.")] = 3,
    shard_articles: Annotated[int, typer.Option(help="--shard-articles of the Ray runs (lines per task of the one input file): several tasks per worker.")] = 25,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds of the three runs, alternated; the best of each is kept (the machine is shared).")] = 2,
    target: Annotated[int, typer.Option(help="Articles of the written estimate.")] = 10_000_000,
    sentences_per_target_article: Annotated[int, typer.Option(help="Sentences per article in the estimate (news articles: 20-40).")] = 25,
    gpu_encoder_rate: Annotated[
        float, typer.Option("--gpu-encoder-sentences-per-s", help="ASSUMED encoder sentences/s of one GPU for the GPU estimate (no GPU is measured here).")
    ] = 5000.0,
    json_out: JsonOption = None,
) -> None:
    """`veille predict` local vs --engine ray with 1 and 2 workers, same input, same run; the Ray overhead at 1 worker.

    Each run goes through the CLI (model check, reading, writing, commit), the Ray runs
    inside one local Ray started first (its start-up, Ray Data's own actors included, is
    reported apart: a cluster is already up). Every configuration uses all the machine's
    cores: the local engine's torch threads, one actor with all the CPUs, or two actors
    with half each. The estimate for a large job uses the per-worker throughput measured
    from the shards' busy time (actor start-up excluded).
    """
    import ray
    from typer.testing import CliRunner

    from veille.cli import app as cli

    from .ray_engine import start_local_ray

    cpus = os.cpu_count() or 1
    texts = corpus_sentences(articles * per_article)
    with tempfile.TemporaryDirectory() as tmp:
        model = model or build_base_sized_model(Path(tmp) / "e5-small-sized", hidden=384)
        source = Path(tmp) / "articles.jsonl"  # one dump: the Ray engine's driver cuts it into tasks of --shard-articles lines
        bodies = [" ".join(texts[i * per_article : (i + 1) * per_article]) for i in range(articles)]
        source.write_text("".join(json.dumps({"id": f"a{i}", "text": body}, ensure_ascii=False) + "\n" for i, body in enumerate(bodies)), encoding="utf-8")

        def run(output: Path, *options: str) -> float:
            started = time.perf_counter()
            result = CliRunner().invoke(cli, ["predict", str(source), "--model", str(model), "--device", "cpu", "-q", "-o", str(output), *options])
            if result.exit_code != 0:
                raise RuntimeError(f"veille predict {' '.join(options)} failed ({result.exit_code}):\n{result.output[-2000:]}")
            return time.perf_counter() - started

        ray_options = ("--engine", "ray", "--shard-articles", str(shard_articles))
        configs = {
            "local": (),
            "ray_1_worker": (*ray_options, "--workers", "1", "--cpus-per-worker", str(cpus)),
            "ray_2_workers": (*ray_options, "--workers", "2", "--cpus-per-worker", str(cpus / 2)),
        }
        walls = {name: math.inf for name in configs}
        busy = {name: math.inf for name in configs if name != "local"}
        started = time.perf_counter()
        start_local_ray(ray, cpus)
        ray.data.range(1).materialize()  # Ray Data's own actors (statistics, autoscaling) start with the first dataset
        startup = time.perf_counter() - started
        try:
            run(Path(tmp) / "warm-up.jsonl")  # file cache and imports, paid once for all
            for round_ in range(rounds):
                for name, options in configs.items():
                    output = Path(tmp) / f"{name}-{round_}{'.jsonl' if name == 'local' else ''}"
                    walls[name] = min(walls[name], run(output, *options))
                    if name in busy:
                        manifest = json.loads((output / "manifest.json").read_text(encoding="utf-8"))
                        busy[name] = min(busy[name], sum(shard["seconds"] for shard in manifest["shards"]))
                    print(f"round {round_ + 1}: {name} {walls[name]:.1f} s (best)", file=sys.stderr)
        finally:
            ray.shutdown()
        share = encoder_share(model, [Article(f"a{i}", body, "benchmark") for i, body in enumerate(bodies[:200])])
    sentences = manifest["sentences"]
    per_core = sentences / (busy["ray_2_workers"] / 2)  # sentences/s of one 1-CPU worker while it predicts (busy time is summed over both)
    # A GPU actor (one CPU core, a share of a GPU) keeps the CPU-side work measured here and hands the encoder to the GPU,
    # at the assumed rate; actors are added on one GPU until its encoder rate is used up.
    per_gpu_actor = 1 / ((1 - share) / per_core + 1 / gpu_encoder_rate)
    actors_per_gpu = max(1, math.floor(gpu_encoder_rate / per_gpu_actor))
    per_gpu = min(gpu_encoder_rate, actors_per_gpu * per_gpu_actor)
    total = target * sentences_per_target_article
    _report(
        {
            "benchmark": "ray",
            "model": str(model),
            "cpus": cpus,
            "articles": articles,
            "sentences": sentences,
            "shard_articles": shard_articles,
            "rounds": rounds,
            "ray_startup_s": round(startup, 1),
            **{f"{name}_s": round(wall, 1) for name, wall in walls.items()},
            **{f"{name}_articles_per_s": round(articles / wall, 2) for name, wall in walls.items()},
            **{f"{name}_busy_s": round(seconds, 1) for name, seconds in busy.items()},
            "ray_overhead_1_worker": round(walls["ray_1_worker"] / walls["local"] - 1, 3),
            "per_worker_sentences_per_s": {"1_cpu": round(per_core, 1), f"{cpus}_cpus": round(sentences / busy["ray_1_worker"], 1)},
            "encoder_share_of_cpu_time": round(share, 3),
            "estimate": {
                "articles": target,
                "sentences_per_article": sentences_per_target_article,
                "cpu_worker_hours": round(total / per_core / 3600),
                "cpu_workers_for_24h": math.ceil(total / per_core / 3600 / 24),
                "gpu_assumed_encoder_sentences_per_s": gpu_encoder_rate,
                "gpu_actor_sentences_per_s": round(per_gpu_actor),
                "gpu_actors_per_gpu": actors_per_gpu,
                "gpu_sentences_per_s": round(per_gpu),
                "gpu_hours": round(total / per_gpu / 3600, 1),
                "gpus_for_24h": math.ceil(total / per_gpu / 3600 / 24),
            },
        },
        json_out,
    )


@app.command("models")
def compare_models(
    models: Annotated[list[Path], typer.Option("--model", "-m", metavar="DIR", help="Model directories to compare (repeat; the first is the baseline).")],
    sentences: Annotated[int, typer.Option(help="Sentences to predict.")] = 600,
    batch_size: Annotated[int, typer.Option()] = 32,
    threads: Annotated[int, typer.Option(help="CPU threads (0: torch's default, one per core). 1 gives stable figures on a busy machine.")] = 1,
    repeats: Annotated[int, typer.Option(help="Timed runs of each, alternating; the best counts.")] = 2,
    json_out: JsonOption = None,
) -> None:
    """veille predict with several models on the same sentences, in one run: sentences/s and the ratio to the first.

    What a training option costs at inference, e.g. ``relation_encoder = "markers"`` (a
    second encoder pass for the relation head) against ``shared``.
    """
    import torch

    from veille.models.predictor import Predictor

    if threads:
        torch.set_num_threads(threads)
    texts = corpus_sentences(sentences)
    articles = [Article(f"s{i}", text, "benchmark") for i, text in enumerate(texts)]
    predictors = [Predictor.load(model, device="cpu", runtime="torch", threads=threads or None) for model in models]
    tokens = sum(len(ids) for ids in predictors[0].tokenizer(texts)["input_ids"])
    for predictor in predictors:
        predict_to_jsonl(predictor, articles[:batch_size], batch_size)  # warm-up
    timings = [Timing() for _ in models]
    counts: list[dict[str, int]] = [{} for _ in models]
    for _ in range(repeats):
        for k, predictor in enumerate(predictors):
            timings[k].measure(lambda k=k, predictor=predictor: counts[k].update(predict_to_jsonl(predictor, articles, batch_size)))
    _report(
        {
            "benchmark": "models",
            "threads": threads or "default",
            "sentences": len(texts),
            "tokens": tokens,
            "models": [
                {
                    "model": str(model), "relation_encoder": predictor.model.config.relation_encoder, **_rates(len(texts), tokens, timing),
                    "ratio_to_first": round(timings[0].wall / timing.wall, 2), **found,
                }
                for model, predictor, timing, found in zip(models, predictors, timings, counts)
            ],
        },
        json_out,
    )


def predict_to_jsonl(predictor, articles: list[Article], batch_size: int) -> dict[str, int]:
    """``veille predict``'s whole path over ``articles`` (pooled sentences, both heads, JSONL written); the entities and relations found."""
    from .writers import open_writers

    found = {"entities": 0, "relations": 0}
    with tempfile.TemporaryDirectory() as tmp, open_writers(["jsonl"], Path(tmp) / "out.jsonl", predictor.schema, sys.stdout) as writers:
        for prediction in predict_articles(predictor, articles, PredictOptions(batch_size=batch_size)):
            writers[0].write(prediction)
            found["entities"] += len(prediction.example.entities)
            found["relations"] += len(prediction.example.relations)
    return found


def encoder_share(model: Path, articles: list[Article]) -> float:
    """The encoder's share of ``veille predict``'s time on this CPU (forward hooks around it): what a GPU would take over.

    The rest (sentence splitting, tokenisation, pooling, the heads, assembly) stays on
    the actor's CPU, which bounds a GPU actor's throughput when the encoder is fast.
    """
    from veille.models.predictor import Predictor

    predictor = Predictor.load(model, device="cpu")
    clock = {"start": 0.0, "encoder": 0.0}
    encoder = predictor.model.encoder
    hooks = [
        encoder.register_forward_pre_hook(lambda *_: clock.__setitem__("start", time.perf_counter())),
        encoder.register_forward_hook(lambda *_: clock.__setitem__("encoder", clock["encoder"] + time.perf_counter() - clock["start"])),
    ]
    started = time.perf_counter()
    for _ in predict_articles(predictor, articles, PredictOptions()):
        pass
    total = time.perf_counter() - started
    for hook in hooks:
        hook.remove()
    return clock["encoder"] / total


def build_base_sized_model(out_dir: Path, hidden: int = 768) -> Path:
    """A joint model of camembert-base's shape (12 × 768, 12 heads; ``hidden=384``: e5-small's) with the e5-small-offline tokenizer.

    The weights are random: speed does not depend on them, except through the number of
    entities found (relation candidates), so the entity head is biased towards « O » to
    find a few entities per sentence, as a trained model does.
    """
    import torch
    from transformers import AutoTokenizer, CamembertConfig, CamembertModel

    from veille.annotation.schema import load_schema
    from veille.models.base import resolve_base_model
    from veille.models.checkpoint import save_model
    from veille.models.encoding import bio_labels
    from veille.models.joint import JointConfig, JointModel

    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model("e5-small-offline"))
    schema = load_schema()
    config = CamembertConfig(vocab_size=len(tokenizer), max_position_embeddings=514, pad_token_id=tokenizer.pad_token_id, hidden_size=hidden, intermediate_size=4 * hidden)
    torch.manual_seed(0)
    joint = JointModel(JointConfig(bio_labels(schema), schema.entity_labels, schema.relation_labels), CamembertModel(config, add_pooling_layer=False))
    with torch.no_grad():
        joint.token_head.bias[0] += 2.5
    save_model(out_dir, joint, tokenizer, schema, {"benchmark": "random camembert-base-sized"}, base_model="random-camembert-base-sized")
    return out_dir


def _report(result: dict[str, Any], json_out: Path | None) -> None:
    text = json.dumps(result, indent=2)
    print(text)
    if json_out is not None:
        atomic_write_text(json_out, text + "\n")


if __name__ == "__main__":
    app()
