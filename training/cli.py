"""``veille train`` and ``veille evaluate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from veille.annotation.atomic import atomic_write_text
from veille.annotation.console import console, err, fail
from veille.models.cli import DEVICE_HELP, DeviceOption, RuntimeOption, ThreadsOption

from .config import preset_summaries

PRESETS = "; ".join(f"{name} ({summary})" for name, summary in preset_summaries().items())

if TYPE_CHECKING:
    from veille.annotation.document import Example
    from veille.annotation.schema import Schema

    from .evaluate import Evaluation



def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("evaluate")(evaluate_command)


def train_command(
    config: Annotated[
        Optional[str],
        typer.Option("--config", "-c", metavar="PRESET|FILE", help=f"A preset or a TOML file of config keys. Presets: {PRESETS}. Default: default on a GPU, offline on a CPU."),
    ] = None,
    base_model: Annotated[Optional[str], typer.Option(help="Encoder: hub id, local directory or e5-small-offline.")] = None,
    train: Annotated[Optional[list[Path]], typer.Option("--train", help="Gold JSONL training file(s).")] = None,
    dev: Annotated[Optional[list[Path]], typer.Option("--dev", help="Gold JSONL dev file(s), for model selection.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Model directory to write.")] = None,
    schema: Annotated[Optional[Path], typer.Option(help="Schema file (default: the built-in v1 scheme).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Maximum number of epochs.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Sentences per batch (per device).")] = None,
    grad_accum: Annotated[Optional[int], typer.Option(help="Gradient accumulation steps.")] = None,
    lr_encoder: Annotated[Optional[float], typer.Option(help="Learning rate of the encoder.")] = None,
    lr_heads: Annotated[Optional[float], typer.Option(help="Learning rate of the entity and relation heads.")] = None,
    max_length: Annotated[Optional[int], typer.Option(help="Encoder window in tokens; longer sentences use overlapping windows.")] = None,
    patience: Annotated[Optional[int], typer.Option(help="Stop after this many epochs without dev improvement.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed (runs repeat exactly on CPU).")] = None,
    device: Annotated[Optional[str], typer.Option(metavar="DEVICE", help=f"{DEVICE_HELP} Default: the preset's (auto).")] = None,
    freeze_embeddings: Annotated[Optional[bool], typer.Option("--freeze-embeddings/--train-embeddings", help="Freeze the word embeddings (much faster on CPU for large vocabularies).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a model already in the output directory.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue the interrupted run in the output directory.")] = False,
    settings_: Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE", help="Any config key, as in a preset file: --set augment_mentions=0.3 --set freeze_layers=2.")] = None,
) -> None:
    """Fine-tune the joint entity + relation model; the best dev checkpoint is the output directory."""
    from veille.annotation.corpus import CorpusError
    from veille.annotation.schema import SchemaError
    from veille.models.base import BaseModelError

    from .config import ConfigError, load_config, parse_settings, preset_for_machine
    from .trainer import TrainingError, train as run_training

    overrides = {
        "base_model": base_model, "train_files": [str(p) for p in train] if train else None, "dev_files": [str(p) for p in dev] if dev else None,
        "output": str(output) if output else None, "schema": str(schema) if schema else None, "epochs": epochs, "batch_size": batch_size,
        "grad_accum": grad_accum, "lr_encoder": lr_encoder, "lr_heads": lr_heads, "max_length": max_length, "patience": patience,
        "seed": seed, "device": device, "freeze_embeddings": freeze_embeddings,
    }
    try:
        overrides.update(parse_settings(settings_ or []))
        if config is None:
            config = preset_for_machine(device)
            err.print(f"preset: {config} ({'a GPU is here' if config == 'default' else 'no GPU here'}; choose with --config: {PRESETS})", markup=False)
        settings = load_config(config, overrides)
        result = run_training(settings, overwrite=overwrite, resume=resume)
    except CorpusError as exc:
        raise fail(f"invalid training data:\n{exc}") from None
    except (ConfigError, SchemaError, BaseModelError, TrainingError, ValueError) as exc:  # ValueError: an unusable --device
        raise fail(str(exc)) from None
    best = result.best
    console.print(
        f"[green]saved[/green] {result.output} (epoch {result.best_epoch}: dev entity F1 {best['entities']['micro']['f1']:.3f}, "
        f"relation F1 {best['relations']['micro']['f1']:.3f}; {result.train_time_s:.0f} s, {result.sentences_per_s:.1f} sentences/s)"
    )


def evaluate_command(
    model: Annotated[Path, typer.Option("--model", "-m", help="Trained model directory.")],
    data: Annotated[list[Path], typer.Option("--data", "-d", help="Gold JSONL file to score against; repeat it to score several splits, each on its own.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder for the results (default: <model>/eval-<data names joined by +>).")] = None,
    schema: Annotated[Optional[Path], typer.Option(help="Schema of the data (default: the model's); must match the model's.")] = None,
    batch_size: Annotated[int, typer.Option(help="Sentences per batch.")] = 32,
    relation_threshold: Annotated[
        Optional[float], typer.Option(min=0.0, max=1.0, help="Minimum probability of a predicted relation, for every label (default: each label's threshold, tuned on dev).")
    ] = None,
    device: DeviceOption = "auto",
    dtype: Annotated[
        Optional[str], typer.Option(help="float32, bfloat16 or float16 with torch; float32 or int8 with onnx (default: as veille predict).")
    ] = None,
    runtime: RuntimeOption = "auto",
    threads: ThreadsOption = 0,
) -> None:
    """Score a model: entities (seqeval-style), relations strict end-to-end and with gold entities, and why it errs.

    Each data file is one split with its own scores, error analysis and charts; with one
    file they go straight into the output folder, with several into one sub-folder per
    file, beside a report.md and metrics.json that cover them all.
    """
    from veille.annotation.corpus import CorpusError, read_corpus
    from veille.annotation.schema import SchemaError, load_schema
    from veille.models.checkpoint import CheckpointError, check_schema
    from veille.models.predictor import Predictor

    from .evaluate import evaluate
    from .report import ScoredSplit, console_table, evaluation_report

    names = [d.stem for d in data]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise fail(f"several --data files are named {', '.join(repeated)}: each split needs its own file name")
    try:
        predictor = Predictor.load(model, device=device, dtype=dtype, runtime=runtime, threads=threads or None)
        if schema is not None:
            check_schema(predictor.schema, load_schema(schema), model)
        splits = {d: read_corpus(d, predictor.schema) for d in data}
    except CorpusError as exc:
        raise fail(f"invalid evaluation data (for the model's schema {predictor.schema.name!r}):\n{exc}") from None
    except (CheckpointError, SchemaError, ValueError) as exc:  # ValueError: an unusable --device or --dtype
        raise fail(str(exc)) from None
    out = output or model / f"eval-{'+'.join(names)}"
    header = {"model": str(model), "model_version": predictor.model_version, "runtime": predictor.runtime, "dtype": predictor.dtype}
    scored = []
    for path, gold in splits.items():
        folder = out if len(data) == 1 else out / path.stem
        result = evaluate(predictor, gold, batch_size=batch_size, relation_threshold=relation_threshold, progress=True)
        metrics, errors = _write_split(folder, header | {"data": str(path)}, gold, result, predictor.schema, f"{model.name} on {path.name}")
        scored.append(ScoredSplit(str(path), metrics, errors, [str(Path(folder.relative_to(out)) / name) for name in CHARTS]))
        console.print(console_table(metrics, title=path.name))
    if len(data) > 1:
        _write_json(out / "metrics.json", header | {"splits": {s.data: s.metrics for s in scored}})
    atomic_write_text(out / "report.md", evaluation_report(str(model), scored))
    console.print(f"written to {out}/ (report.md, and per split: metrics.json, errors.json, errors.html, predictions.jsonl, {', '.join(CHARTS)})")


CHARTS = ("per_label_f1.png", "confusion.png")


def _write_split(folder: Path, header: dict, gold: list[Example], result: Evaluation, schema: Schema, title: str) -> tuple[dict, dict]:
    """One split's metrics.json, errors.json, predictions.jsonl and charts; returns its metrics and errors."""
    from veille.annotation.corpus import write_corpus
    from veille.annotation.errors import analyse_errors
    from veille.annotation.view import write_errors_view

    from .error_report import plot_confusion
    from .report import plot_per_label

    folder.mkdir(parents=True, exist_ok=True)
    metrics = header | result.to_dict()
    errors = analyse_errors(gold, result.predictions, schema).to_dict()
    _write_json(folder / "metrics.json", metrics)
    _write_json(folder / "errors.json", errors)
    write_corpus(folder / "predictions.jsonl", result.predictions)
    plot_per_label(metrics, folder / CHARTS[0], title=title)
    plot_confusion(errors, folder / CHARTS[1], title=title)
    write_errors_view(folder / "errors.html", gold, result.predictions, schema, {"name": Path(header["model"]).name, "version": header["model_version"]})
    return metrics, errors


def _write_json(path: Path, content: dict) -> None:
    atomic_write_text(path, json.dumps(content, indent=2, ensure_ascii=False) + "\n")
