"""``veille models …``: inspect base models before training on them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from veille.annotation.console import console, fail

# One wording of --device for every command that runs a model (train, evaluate, predict, serve).
DEVICE_HELP = "auto (the GPU when there is one), cpu, cuda, cuda:N or mps."
DeviceOption = Annotated[str, typer.Option("--device", metavar="DEVICE", help=DEVICE_HELP)]

models_app = typer.Typer(help="Base models: what an encoder is and where it is cached.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")


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
