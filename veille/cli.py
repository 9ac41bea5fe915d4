"""The ``veille`` command: it only assembles the sub-commands that each stage registers.

Stage modules import their heavy dependencies (torch, transformers) inside the
commands, so ``veille --help`` stays fast.
"""

from __future__ import annotations

import importlib

import typer

STAGES = ("annotation", "models", "serving", "training")

app = typer.Typer(
    name="veille",
    help="French information extraction from news: annotate, train, evaluate, predict, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for stage in STAGES:
    importlib.import_module(f"veille.{stage}.cli").register(app)
