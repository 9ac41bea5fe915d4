"""The ``veille`` command: it only assembles the sub-commands that each stage registers.

Stage modules import their heavy dependencies (torch, transformers) inside the
commands, so ``veille --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from veille import __version__

STAGES = ("annotation", "models", "serving", "training")

app = typer.Typer(
    name="veille",
    help="French information extraction from news: annotate, train, evaluate, predict, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



def _print_version(value: bool) -> None:
    if value:
        print(f"veille {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print veille's version and exit.")] = False,
) -> None:
    """French information extraction from news: annotate, train, evaluate, predict, serve."""


for stage in STAGES:
    importlib.import_module(f"veille.{stage}.cli").register(app)
