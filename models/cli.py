"""``veille models …`` (inspect base models before training on them) and ``veille export onnx`` (a fast CPU runtime)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from veille.annotation.console import console, fail

# One wording of --device for every command that runs a model (train, evaluate, predict, serve).
DEVICE_HELP = "auto (the GPU when there is one), cpu, cuda, cuda:N or mps."
DeviceOption = Annotated[str, typer.Option("--device", metavar="DEVICE", help=DEVICE_HELP)]

# One --runtime and one --threads for every command that runs a trained model (evaluate, predict, serve).
RuntimeOption = Annotated[
    str,
    typer.Option(
        "--runtime", metavar="RUNTIME",
        help="torch, onnx (the export of `veille export onnx`, on CPU) or auto (onnx on CPU when the model has a current export, else torch).",
    ),
]
ThreadsOption = Annotated[int, typer.Option("--threads", min=0, metavar="N", help="CPU threads of the model (0: one per core).")]

models_app = typer.Typer(help="Base models: what an encoder is and where it is cached.", no_args_is_help=True)
export_app = typer.Typer(help="Export a trained model for another runtime.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
    app.add_typer(export_app, name="export")


@export_app.command("onnx")
def export_onnx_command(
    model_dir: Annotated[Path, typer.Argument(metavar="MODEL_DIR", help="Trained model directory (from `veille train`).")],
    int8: Annotated[bool, typer.Option("--int8", help="Also write an int8 export (dynamic quantization of the linear layers): faster on CPU.")] = False,
) -> None:
    """Export the model's encoder to ONNX into MODEL_DIR/onnx/, for `--runtime onnx` (the heads stay in torch)."""
    from veille.models.checkpoint import CheckpointError
    from veille.models.runtime import export_onnx

    try:
        written = export_onnx(model_dir, int8=int8)
    except CheckpointError as exc:  # no or broken model directory, onnx not installed, an architecture that does not export
        raise fail(str(exc)) from None
    for path in written:
        console.print(f"{path} ({path.stat().st_size / 2**20:,.0f} MiB)")


@models_app.command()
def info(name: Annotated[str, typer.Argument(help="Hub id, local checkpoint directory, or e5-small-offline.")]) -> None:
    """Print a base model's architecture, size and location (converts e5-small-offline on first use)."""
    from veille.models.base import BaseModelError
    from veille.models.info import describe_base_model

    try:
        found = describe_base_model(name)
    except BaseModelError as exc:
        raise fail(str(exc)) from None
    table = Table(title=f"Base model {found.name}", show_header=False)
    table.add_row("architecture", found.architecture)
    table.add_row("layers", str(found.layers))
    table.add_row("hidden size", str(found.hidden_size))
    table.add_row("attention heads", str(found.heads))
    table.add_row("max positions", str(found.max_positions))
    table.add_row("vocabulary", "no tokenizer" if found.tokenizer_vocab is None else f"{found.tokenizer_vocab:,} tokens")
    table.add_row("embedding rows", f"{found.embedding_rows:,}")
    table.add_row("parameters", f"{found.parameters:,} ({found.parameters / 1e6:.1f} M)")
    table.add_row("location", found.location)
    if found.disk_bytes is not None:
        table.add_row("size on disk", f"{found.disk_bytes / 2**20:,.0f} MiB")
    console.print(table)
