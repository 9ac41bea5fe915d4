"""``veille corpus …``: validate, count and split the data, before any training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from .articles import Article, read_articles
from .atomic import atomic_open
from .corpus import check_files
from .schema import SchemaError, load_schema
from .sentences import split_sentences
from .stats import corpus_stats

corpus_app = typer.Typer(help="Gold corpus tools: validate, stats, split articles into sentences.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

SchemaOption = Annotated[Optional[Path], typer.Option("--schema", help="Schema file (default: the built-in v1 scheme).")]


def register(app: typer.Typer) -> None:
    app.add_typer(corpus_app, name="corpus")


def schema_or_exit(path: Path | None):
    """Load the schema, turning a malformed file into a clean CLI error."""
    try:
        return load_schema(path)
    except SchemaError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


@corpus_app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="Gold JSONL files.")], schema: SchemaOption = None) -> None:
    """Check every rule of the gold format and the schema; print each problem as file:line: field: message."""
    examples, problems = check_files(files, schema_or_exit(schema))
    for problem in problems:
        err.print(str(problem), markup=False, highlight=False)
    if problems:
        err.print(f"[red]{len(problems)} problem(s)[/red] in {len(files)} file(s)")
        raise typer.Exit(1)
    console.print(f"[green]ok[/green]: {len(examples)} examples in {len(files)} file(s)")


@corpus_app.command()
def stats(files: Annotated[list[Path], typer.Argument(help="Gold JSONL files.")], schema: SchemaOption = None) -> None:
    """Count documents, sentences, entities and relations per label and per split."""
    loaded = schema_or_exit(schema)
    by_file = {}
    for path in files:
        examples, problems = check_files([path], loaded)
        if problems:
            err.print(f"[yellow]warning:[/yellow] {path}: {len(problems)} invalid line(s) skipped (run `veille corpus validate`)")
        by_file[str(path)] = examples
    per_split = corpus_stats(by_file)
    table = Table(title="Corpus")
    table.add_column("")
    for split in per_split:
        table.add_column(split, justify="right")
    table.add_row("documents", *(str(len(s.documents)) for s in per_split.values()))
    table.add_row("sentences", *(str(s.sentences) for s in per_split.values()), end_section=True)
    for label in loaded.entity_labels:
        table.add_row(label, *(str(s.entities[label]) for s in per_split.values()))
    table.rows[-1].end_section = True
    for label in loaded.relation_labels:
        table.add_row(label, *(str(s.relations[label]) for s in per_split.values()))
    console.print(table)


@corpus_app.command()
def split(
    inputs: Annotated[list[str], typer.Argument(help="Articles: .txt files, folders, JSONL {id, text}, or - for stdin.")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Write JSONL here (atomically) instead of stdout.")] = None,
) -> None:
    """Split articles into sentences, as gold-format lines with no annotation yet (offsets in meta)."""
    skipped = 0

    def lines():
        nonlocal skipped
        for item in read_articles(inputs):
            if not isinstance(item, Article):
                err.print(f"[yellow]skipped[/yellow] {item}", markup=True, highlight=False)
                skipped += 1
                continue
            for i, sentence in enumerate(split_sentences(item.text)):
                meta = {"doc": item.id, "source": item.source, "start": sentence.start, "end": sentence.end}
                yield json.dumps({"id": f"{item.id}-s{i:03d}", "text": sentence.text, "entities": [], "relations": [], "meta": meta}, ensure_ascii=False)

    if output is None:
        for line in lines():
            print(line)
    else:
        with atomic_open(output) as handle:
            for line in lines():
                handle.write(line + "\n")
    if skipped:
        raise typer.Exit(1)
