"""``veille train`` and ``veille evaluate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

console = Console()
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("evaluate")(evaluate_command)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def train_command(
    config: Annotated[str, typer.Option("--config", "-c", help="Preset (default, offline, quick) or a TOML file.")] = "default",
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
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda.")] = None,
    freeze_embeddings: Annotated[Optional[bool], typer.Option("--freeze-embeddings/--train-embeddings", help="Freeze the word embeddings (much faster on CPU for large vocabularies).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a model already in the output directory.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue the interrupted run in the output directory.")] = False,
    settings_: Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE", help="Any config key, as in a preset file: --set augment_mentions=0.3 --set freeze_layers=2.")] = None,
) -> None:
    """Fine-tune the joint entity + relation model; the best dev checkpoint is the output directory."""
    from veille.annotation.corpus import CorpusError
    from veille.annotation.schema import SchemaError
    from veille.models.base import BaseModelError

    from .config import ConfigError, load_config, parse_settings
    from .trainer import TrainingError, train as run_training

    overrides = {
        "base_model": base_model, "train_files": [str(p) for p in train] if train else None, "dev_files": [str(p) for p in dev] if dev else None,
        "output": str(output) if output else None, "schema": str(schema) if schema else None, "epochs": epochs, "batch_size": batch_size,
        "grad_accum": grad_accum, "lr_encoder": lr_encoder, "lr_heads": lr_heads, "max_length": max_length, "patience": patience,
        "seed": seed, "device": device, "freeze_embeddings": freeze_embeddings,
    }
    try:
        overrides.update(parse_settings(settings_ or []))
        settings = load_config(config, overrides)
        result = run_training(settings, overwrite=overwrite, resume=resume)
    except CorpusError as exc:
        raise _fail(f"invalid training data:\n{exc}") from None
    except (ConfigError, SchemaError, BaseModelError, TrainingError, ValueError) as exc:  # ValueError: an unusable --device
        raise _fail(str(exc)) from None
    best = result.best
    console.print(
        f"[green]saved[/green] {result.output} (epoch {result.best_epoch}: dev entity F1 {best['entities']['micro']['f1']:.3f}, "
        f"relation F1 {best['relations']['micro']['f1']:.3f}; {result.train_time_s:.0f} s, {result.sentences_per_s:.1f} sentences/s)"
    )


def evaluate_command(
    model: Annotated[Path, typer.Option("--model", "-m", help="Trained model directory.")],
    data: Annotated[list[Path], typer.Option("--data", "-d", help="Gold JSONL file(s) to score against.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder for metrics.json, report.md and charts (default: <model>/eval-<data name>).")] = None,
    schema: Annotated[Optional[Path], typer.Option(help="Schema of the data (default: the model's); must match the model's.")] = None,
    batch_size: Annotated[int, typer.Option(help="Sentences per batch.")] = 32,
    relation_threshold: Annotated[float, typer.Option(help="Minimum probability of a predicted relation.")] = 0.5,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Score a model: entities (seqeval-style), relations strict end-to-end and with gold entities."""
    from veille.annotation.atomic import atomic_write_text
    from veille.annotation.corpus import CorpusError, write_corpus, read_corpus
    from veille.annotation.schema import SchemaError, load_schema
    from veille.annotation.view import write_errors_view
    from veille.models.checkpoint import CheckpointError, check_schema
    from veille.models.predictor import Predictor

    from .evaluate import evaluate
    from .report import console_table, evaluation_report, plot_per_label

    try:
        predictor = Predictor.load(model, device=device)
        if schema is not None:
            check_schema(predictor.schema, load_schema(schema), model)
        gold = read_corpus(data, predictor.schema)
    except CorpusError as exc:
        raise _fail(f"invalid evaluation data (for the model's schema {predictor.schema.name!r}):\n{exc}") from None
    except (CheckpointError, SchemaError, ValueError) as exc:  # ValueError: an unusable --device
        raise _fail(str(exc)) from None
    result = evaluate(predictor, gold, batch_size=batch_size, relation_threshold=relation_threshold)
    metrics = {"model": str(model), "model_version": predictor.model_version, "data": [str(d) for d in data], **result.to_dict()}
    out = output or model / f"eval-{'+'.join(d.stem for d in data)}"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    write_corpus(out / "predictions.jsonl", result.predictions)
    write_errors_view(out / "errors.html", gold, result.predictions, predictor.schema, {"name": predictor.model_name, "version": predictor.model_version})
    chart = out / "per_label_f1.png"
    plot_per_label(metrics, chart, title=f"{model.name} on {', '.join(d.name for d in data)}")
    atomic_write_text(out / "report.md", evaluation_report(str(model), metrics["data"], metrics, [str(chart)]))
    console.print(console_table(metrics))
    console.print(f"written to {out}/ (metrics.json, report.md, per_label_f1.png, predictions.jsonl, errors.html)")
