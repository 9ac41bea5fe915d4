"""``veille corpus …``: validate, count and split the data, before any training."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from .articles import Article, read_articles, sentence_examples, warn_duplicate_ids
from .atomic import atomic_open
from .console import console, err, fail, warning
from .authoring import REGISTERS, Document, assign_register_splits, far_relation_share, read_sources, source_batches
from .corpus import check_files, write_corpus
from .validate import Problem, check_example
from .schema import SchemaError, load_schema
from .stats import SplitStats, corpus_stats

corpus_app = typer.Typer(help="Gold corpus tools: validate, stats, split articles into sentences.", no_args_is_help=True)

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
        raise fail(str(exc)) from None


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
            warning(f"{path}: {len(problems)} invalid line(s) skipped (run `veille corpus validate`)")
        by_file[str(path)] = examples
    print_stats(corpus_stats(by_file), loaded, markdown)


def print_stats(per_split: dict[str, SplitStats], schema, markdown: bool = False) -> None:
    """Counts per label and split, as a rich table or a Markdown table (for data cards)."""
    sections = [
        [("documents", [len(s.documents) for s in per_split.values()]), ("sentences", [s.sentences for s in per_split.values()])],
        [(label, [s.entities[label] for s in per_split.values()]) for label in schema.entity_labels],
        [(label, [s.relations[label] for s in per_split.values()]) for label in schema.relation_labels],
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
        for item in warn_duplicate_ids(read_articles(inputs), lambda message: print(f"warning: {message}", file=sys.stderr)):
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


def _checked(splits: dict[str, list[Document]], schema, where: Path) -> list[Problem]:
    """Tag each example with its split and check it against the schema."""
    problems: list[Problem] = []
    for name, documents in splits.items():
        for document in documents:
            for example in document.examples:
                example.meta["split"] = name
                source = example.meta.get("source", where)
                problems += [Problem(str(source), 0, f"{example.id}.{f}", m) for f, m in check_example(example.to_json(), schema)]
    return problems


@corpus_app.command("compile")
def compile_corpus(
    src: Annotated[Path, typer.Option(help=f"Folder of sources: <register>[-<batch>]-<part>.jsonl ({', '.join(REGISTERS)}) and seeds.jsonl.")] = CORPUS_DIR / "src",
    out: Annotated[Path, typer.Option(help="Folder for train/dev/test*/seed.jsonl.")] = CORPUS_DIR,
    seed: Annotated[int, typer.Option(help="Seed of the document shuffle that assigns splits.")] = 13,
    schema: SchemaOption = None,
) -> None:
    """Compile the authored sources into gold files: offsets computed from mention strings, splits by document.

    Each register is split 70/15/15 on its own, each later batch of it too (``press-v6-e.jsonl``
    is a batch of ``press``: earlier documents keep their split): train and dev pool every
    register, and each register keeps a test split of its own (``authoring.REGISTERS``: test,
    test-articles, …).
    """
    loaded = schema_or_exit(schema)
    batches: list[tuple[str, list[Document]]] = []
    problems: list[Problem] = []
    for register in REGISTERS:
        for paths in source_batches(src, register).values():
            documents, found = read_sources(paths)
            problems += found
            batches.append((register, documents))
    seeds, seed_problems = read_sources([src / "seeds.jsonl"])
    splits = {**assign_register_splits(batches, seed), "seed": seeds}
    problems += seed_problems + _checked(splits, loaded, src)
    report(problems)
    if problems:
        err.print(f"[red]{len(problems)} problem(s)[/red]; nothing written")
        raise typer.Exit(1)
    for name, documents in splits.items():
        count = write_corpus(out / f"{name}.jsonl", (e for d in documents for e in d.examples))
        console.print(f"{out / f'{name}.jsonl'}: {len(documents)} documents, {count} sentences")


@corpus_app.command("check-sources")
def check_sources(
    files: Annotated[list[Path], typer.Argument(help="Authored source files (one document per line, see src/FORMAT.md).")],
    schema: SchemaOption = None,
) -> None:
    """Check authored sources without writing anything: mentions found, labels and relations allowed; print counts.

    For authors while they write: every problem is `file:line: field: message`, then the
    documents, sentences, entity and relation counts, and the share of relations whose
    arguments are more than 60 characters apart.
    """
    loaded = schema_or_exit(schema)
    documents, problems = read_sources(files)
    problems += _checked({"source": documents}, loaded, files[0])
    report(problems)
    examples = [e for d in documents for e in d.examples]
    far, total = far_relation_share(examples)
    print_stats(corpus_stats({"sources": examples}), loaded)
    console.print(f"{len(documents)} documents, {len(examples)} sentences, {total} relations, "
                  f"{far} ({far / max(total, 1):.0%}) with arguments > 60 characters apart")
    if problems:
        err.print(f"[red]{len(problems)} problem(s)[/red]")
        raise typer.Exit(1)
