"""The terminal side of every stage's commands: one stdout console, one stderr console, one way to say an error.

Messages carry data — file paths, model names, package extras such as
``pip install 'veille[offline]'`` — that rich would read as markup: ``[offline]``
vanished and ``runs/[draft]`` printed as ``runs/``. Every message goes through
:func:`error` or :func:`warning`, which escape it, so no command can forget to. The
consoles never wrap hard (``soft_wrap``): a closing line is never cut inside a number,
and a log keeps one line per message. This lives in the first stage because every stage
may import it (the import rule points one way, towards ``annotation``).
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

console = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


def error(message: str) -> None:
    err.print(f"[red]error:[/red] {escape(message)}")


def warning(message: str, tag: str = "warning") -> None:
    err.print(f"[yellow]{escape(tag)}:[/yellow] {escape(message)}")


def progress_interval() -> float:
    """Seconds between progress-bar updates (tqdm's ``mininterval``).

    A terminal redraws a bar in place; a log file keeps every update (a training run wrote
    ~117 KB of them), so when stderr is not a terminal the bar updates every 30 s.
    """
    return 0.1 if sys.stderr.isatty() else 30.0


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as an error and return the exit to raise (``raise fail(…)``): 2 means nothing was done."""
    error(message)
    return typer.Exit(code)
