"""``veille corpus …``: validate, count and split the data, before any training."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from .articles import Article, read_articles, sentence_examples
from .atomic import atomic_open
from .authoring import assign_splits, read_sources
from .corpus import check_files, write_corpus
from .validate import Problem, check_example
from .schema import SchemaError, load_schema
from .stats import corpus_stats

corpus_app = typer.Typer(help="Gold corpus tools: validate, stats, split articles into sentences.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

CORPUS_DIR = Path(__file__).parent / "corpus"
SchemaOption = Annotated[Optional[Path], typer.Option("--schema", help="Schema file (default: the built-in v1 scheme).")]


def register(app: typer.Typer) -> None:
    from .labelstudio.cli import annotate_app

    app.add_typer(corpus_app, name="corpus")
    app.add_typer(annotate_app, name="annotate")


def schema_or_exit(path: Path | None):
    """Load the schema, turning a malformed file into a clean CLI error."""
    try:
        return load_schema(path)
    except SchemaError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def report(problems: list[Problem], prefix: str = "") -> None:
    """One unwrapped ``file:line: field: message`` line per problem on stderr, for editors and grep."""
    for problem in problems:
        print(f"{prefix}{problem}", file=sys.stderr)


@corpus_app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="Gold JSONL files.")], schema: SchemaOption = None) -> None:
    """Check every rule of the gold format and the schema; print each problem as file:line: field: message."""
    examples, problems = check_files(files, schema_or_exit(schema))
    report(problems)
    if problems:
        err.print(f"[red]{len(problems)} problem(s)[/red] in {len(files)} file(s)")
        raise typer.Exit(1)
    console.print(f"[green]ok[/green]: {len(examples)} examples in {len(files)} file(s)")


@corpus_app.command()
def stats(
    files: Annotated[list[Path], typer.Argument(help="Gold JSONL files.")],
    markdown: Annotated[bool, typer.Option("--markdown", help="Print a Markdown table (for data cards).")] = False,
    schema: SchemaOption = None,
) -> None:
    """Count documents, sentences, entities and relations per label and per split."""
    loaded = schema_or_exit(schema)
    by_file = {}
    for path in files:
        examples, problems = check_files([path], loaded)
        if problems:
            err.print(f"[yellow]warning:[/yellow] {path}: {len(problems)} invalid line(s) skipped (run `veille corpus validate`)")
        by_file[str(path)] = examples
    per_split = corpus_stats(by_file)
    sections = [
        [("documents", [len(s.documents) for s in per_split.values()]), ("sentences", [s.sentences for s in per_split.values()])],
        [(label, [s.entities[label] for s in per_split.values()]) for label in loaded.entity_labels],
        [(label, [s.relations[label] for s in per_split.values()]) for label in loaded.relation_labels],
    ]
    if markdown:
        print("| | " + " | ".join(per_split) + " |")
        print("|---|" + "---:|" * len(per_split))
        for section in sections:
            for name, counts in section:
                print(f"| {name} | " + " | ".join(map(str, counts)) + " |")
        return
    table = Table(title="Corpus")
    table.add_column("")
    for split_name in per_split:
        table.add_column(split_name, justify="right")
    for section in sections:
        for name, counts in section:
            table.add_row(name, *map(str, counts))
        table.rows[-1].end_section = True
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
                report([item], prefix="skipped: ")
                skipped += 1
                continue
            for example in sentence_examples(item):
                yield json.dumps(example.to_json(), ensure_ascii=False)

    if output is None:
        for line in lines():
            print(line)
    else:
        with atomic_open(output) as handle:
            for line in lines():
                handle.write(line + "\n")
    if skipped:
        raise typer.Exit(1)


@corpus_app.command("compile")
def compile_corpus(
    src: Annotated[Path, typer.Option(help="Folder of authored sources (authored-*.jsonl, seeds.jsonl).")] = CORPUS_DIR / "src",
    out: Annotated[Path, typer.Option(help="Folder for train/dev/test/seed.jsonl.")] = CORPUS_DIR,
    seed: Annotated[int, typer.Option(help="Seed of the document shuffle that assigns splits.")] = 13,
    schema: SchemaOption = None,
) -> None:
    """Compile the authored sources into gold files: offsets computed from mention strings, splits by document."""
    loaded = schema_or_exit(schema)
    authored, problems = read_sources(sorted(src.glob("authored-*.jsonl")))
    seeds, seed_problems = read_sources([src / "seeds.jsonl"])
    splits = {**assign_splits(authored, seed), "seed": seeds}
    problems += seed_problems
    for name, documents in splits.items():
        for document in documents:
            for example in document.examples:
                example.meta["split"] = name
                where = example.meta.get("source", src)
                problems += [Problem(str(where), 0, f"{example.id}.{f}", m) for f, m in check_example(example.to_json(), loaded)]
    report(problems)
    if problems:
        err.print(f"[red]{len(problems)} problem(s)[/red]; nothing written")
        raise typer.Exit(1)
    for name, documents in splits.items():
        count = write_corpus(out / f"{name}.jsonl", (e for d in documents for e in d.examples))
        console.print(f"{out / f'{name}.jsonl'}: {len(documents)} documents, {count} sentences")
