"""The ``veille`` command: it only assembles the sub-commands that each stage registers.

Stage modules import their heavy dependencies (torch, transformers) inside the
commands, so ``veille --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer
import typer.core

from veille import __version__

STAGES = ("annotation", "models", "serving", "training")

# Placeholders in help screens as git and spaCy write them: a flag shows none, a value its
# metavar or an upper-case kind (PATH, N, TEXT). Typer ≥ 0.20 prints Python type names
# instead (`<bool>` beside --help, `<list[Path]>`), which read as noise to a newcomer.
_KINDS = {"int": "N", "float": "NUMBER", "str": "TEXT", "bool": "BOOLEAN", "path": "PATH", "Path": "PATH", "file": "FILE", "directory": "DIR"}


def _placeholder(param, ctx) -> str | None:
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return None
    if param.metavar:
        return param.metavar
    kind = _ORIGINAL_DISPLAY_TYPE(param, ctx).strip("<>")
    inner = kind.removeprefix("list[").removesuffix("]").removesuffix(" range")  # the range itself is shown after
    name = _KINDS.get(inner, inner.upper() if inner.isidentifier() else inner)
    return f"{name}…" if kind.startswith("list[") else name


_ORIGINAL_DISPLAY_TYPE = getattr(typer.core.TyperOption, "display_type", None)
if _ORIGINAL_DISPLAY_TYPE is not None:  # older typer shows click's own placeholders already
    typer.core.TyperOption.display_type_rich = _placeholder
    typer.core.TyperArgument.display_type_rich = _placeholder

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
