"""``veille annotate …``: the round trip between raw articles, Label Studio and gold JSONL.

Every command but ``server`` talks to a running server over HTTP with the API token
from ``--token`` or ``LABEL_STUDIO_API_KEY`` (``--url`` or ``LABEL_STUDIO_URL``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..atomic import sigterm_as_ctrl_c
from ..cli import SchemaOption, schema_or_exit
from ..console import console, err, error, warning

annotate_app = typer.Typer(help="Label Studio loop: config, server, push, pull, convert, agreement (and suggest, registered by the serving stage).", no_args_is_help=True)

ProjectOption = Annotated[str, typer.Option("--project", "-p", help="Label Studio project title.")]
UrlOption = Annotated[Optional[str], typer.Option("--url", envvar="LABEL_STUDIO_URL", help="Server URL (default http://127.0.0.1:8080).")]
TokenOption = Annotated[Optional[str], typer.Option("--token", envvar="LABEL_STUDIO_API_KEY", help="API token.", show_default=False)]
OutputOption = Annotated[Path, typer.Option("-o", "--output", help="Gold JSONL to write (atomically).")]


@dataclass
class ServerArgs:
    data_dir: Path
    port: int
    host: str
    email: str
    password: Optional[str]
    token: Optional[str]


@annotate_app.command()
def config(schema: SchemaOption = None) -> None:
    """Print the Label Studio labelling config generated from the schema."""
    from .config import labeling_config

    print(labeling_config(schema_or_exit(schema)), end="")


@annotate_app.command()
def server(
    data_dir: Annotated[Path, typer.Option("--data-dir", envvar="VEILLE_LS_DATA_DIR", help="Label Studio data directory (database, media).")] = Path("label-studio-data"),
    port: Annotated[int, typer.Option("--port", envvar="VEILLE_LS_PORT")] = 8080,
    host: Annotated[str, typer.Option("--host", help="Interface to bind; 0.0.0.0 exposes the server to the network.")] = "127.0.0.1",
    email: Annotated[str, typer.Option("--email", envvar="VEILLE_LS_EMAIL", help="Admin account (created on first start).")] = "admin@veille.local",
    password: Annotated[Optional[str], typer.Option("--password", envvar="VEILLE_LS_PASSWORD", help="Admin password (generated and printed if absent on first start).", show_default=False)] = None,
    token: TokenOption = None,
) -> None:
    """Start a local Label Studio for the annotation team; stop it with Ctrl-C."""
    _run_server(ServerArgs(data_dir, port, host, email, password, token))


def _run_server(args: ServerArgs) -> None:
    from .server import Account, LabelStudioError, init_data_dir, is_initialised, saved_token, start_server, token_works

    try:
        if not is_initialised(args.data_dir):
            err.print(f"initialising {escape(str(args.data_dir))} (database migrations: about a minute)…")
            account = init_data_dir(args.data_dir, Account(args.email, args.password, args.token))
            if not args.password:
                console.print(f"admin: {account.email}  password: {account.password}", markup=False, highlight=False, soft_wrap=True)
        token = args.token or saved_token(args.data_dir)
        running = start_server(args.data_dir, args.port, args.host)
    except LabelStudioError as exc:
        error(str(exc))
        raise typer.Exit(2) from None
    with sigterm_as_ctrl_c():  # so that Label Studio never outlives this command
        try:
            if token and not token_works(running.url, token):
                warning("the API token is not accepted by this server (data dir initialised with another one)")
            console.print(f"Label Studio is running at {running.url}  (log: {running.log})", markup=False, highlight=False, soft_wrap=True)
            console.print(f"export LABEL_STUDIO_URL={running.url}", markup=False, highlight=False, soft_wrap=True)
            if token:
                console.print(f"export LABEL_STUDIO_API_KEY={token}", markup=False, highlight=False, soft_wrap=True)
            running.process.wait()
            error(f"Label Studio exited with code {running.process.returncode}; see {running.log}")
            raise typer.Exit(1)
        except KeyboardInterrupt:
            err.print("stopping Label Studio…")
        finally:
            running.stop()


@annotate_app.command()
def push(
    project: ProjectOption,
    inputs: Annotated[Optional[list[str]], typer.Argument(help="Articles: .txt files, folders, JSONL {id, text}, or - for stdin.")] = None,
    gold: Annotated[Optional[Path], typer.Option("--gold", help="Gold JSONL imported as annotations, for review.")] = None,
    predictions: Annotated[Optional[Path], typer.Option("--predictions", help="Tasks from `veille predict --format labelstudio`, as pre-annotations.")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    schema: SchemaOption = None,
) -> None:
    """Create (or update) the project and import sentences as tasks; nothing is imported twice."""
    from ..corpus import CorpusError, read_corpus
    from .client import RANKED_VIEW
    from .push import push as push_tasks
    from .push import read_prediction_tasks, sentence_examples

    loaded = schema_or_exit(schema)
    if not (inputs or gold or predictions):
        error("nothing to push: give articles, --gold or --predictions")
        raise typer.Exit(2)
    sentences, problems = sentence_examples(inputs or [], warning)
    tasks = []
    try:
        examples = read_corpus(gold, loaded) if gold else []
    except CorpusError as exc:
        error(f"invalid gold file:\n{exc}")
        raise typer.Exit(2) from None
    if predictions:
        tasks, bad = read_prediction_tasks(predictions, loaded)
        problems += bad
    for problem in problems:
        warning(str(problem), tag="skipped")
    report = push_tasks(_client(url, token), project, loaded, sentences, examples, tasks)
    for issue in report.issues:
        warning(issue, tag="skipped")
    console.print(
        f"project {project!r} (id {report.project_id}, {report.project}): "
        f"{report.tasks_created} task(s) created, {report.tasks_present} already there; "
        f"annotations {report.annotations_added} added, {report.annotations_present} already there; "
        f"predictions {report.predictions_added} added, {report.predictions_present} already there"
        + (f"; {report.tasks_ranked} ranked suggestion(s), sorted in the {RANKED_VIEW!r} tab" if report.tasks_ranked else ""),
        highlight=False,
        soft_wrap=True,
    )
    if problems or report.issues:
        raise typer.Exit(1)


@annotate_app.command()
def pull(project: ProjectOption, output: OutputOption, url: UrlOption = None, token: TokenOption = None, schema: SchemaOption = None) -> None:
    """Export the project and convert it to gold JSONL (latest submitted annotation per task)."""
    from .client import export_tasks

    loaded = schema_or_exit(schema)
    ls = _client(url, token)
    _write_conversion(export_tasks(ls, _project_id(ls, project)), loaded, output)


@annotate_app.command()
def convert(export: Annotated[Path, typer.Argument(help="Label Studio JSON export file.")], output: OutputOption, schema: SchemaOption = None) -> None:
    """Convert a Label Studio JSON export file to gold JSONL, with no server."""
    from .convert import ExportError, read_export

    loaded = schema_or_exit(schema)
    try:
        tasks = read_export(export)
    except ExportError as exc:
        error(str(exc))
        raise typer.Exit(2) from None
    _write_conversion(tasks, loaded, output)


@annotate_app.command()
def agreement(
    export: Annotated[Optional[Path], typer.Argument(help="Label Studio JSON export file (or use --project).")] = None,
    project: Annotated[Optional[str], typer.Option("--project", "-p", help="Read the annotations from this project instead.")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    schema: SchemaOption = None,
) -> None:
    """Entity and relation F1 between annotators, on tasks annotated by more than one."""
    from .agreement import agreement as score_agreement
    from .client import export_tasks, user_emails
    from .convert import ExportError, read_export

    loaded = schema_or_exit(schema)
    if (export is None) == (project is None):
        error("give an export file or --project, not both")
        raise typer.Exit(2)
    names = None
    try:
        if export is not None:
            tasks = read_export(export)
        else:
            ls = _client(url, token)
            tasks, names = export_tasks(ls, _project_id(ls, project)), user_emails(ls)
    except ExportError as exc:
        error(str(exc))
        raise typer.Exit(2) from None
    result = score_agreement(tasks, loaded, names)
    if not result.pairs:
        err.print("[yellow]no task was annotated by more than one annotator[/yellow]")
        raise typer.Exit(1)
    table = Table(title=f"Agreement on {result.shared_tasks} shared task(s) (strict F1)")
    for column in ("annotators", "tasks", "entity F1", "relation F1"):
        table.add_column(column, justify="left" if column == "annotators" else "right")
    for pair in result.pairs:
        table.add_row(f"{pair.first} / {pair.second}", str(pair.tasks), _f1(pair.entities), _f1(pair.relations))
    table.add_row("all pairs", str(result.shared_tasks), _f1(result.entities), _f1(result.relations), style="bold")
    console.print(table)


def _f1(report) -> str:
    """F1, or n/a when neither annotator marked anything (0 would read as total disagreement)."""
    counts = report.micro
    return f"{counts.f1:.3f}" if counts.tp + counts.fp + counts.fn else "n/a"


def _client(url: str | None, token: str | None):
    from .client import Connection, connect

    try:
        return connect(Connection(url, token))
    except ValueError as exc:
        error(str(exc))
        raise typer.Exit(2) from None


def _project_id(ls, title: str) -> int:
    from .client import find_project

    project_id = find_project(ls, title)
    if project_id is None:
        error(f"no project titled {title!r} on this server")
        raise typer.Exit(2)
    return project_id


def _write_conversion(tasks: list[dict], schema, output: Path) -> None:
    """Convert, report every issue and count, write the kept examples; exit 1 if anything was dropped."""
    from ..corpus import write_corpus
    from .convert import convert_tasks

    result = convert_tasks(tasks, schema)
    for issue in result.issues:
        colour = "red" if issue.dropped else "yellow"
        err.print(f"[{colour}]{'dropped' if issue.dropped else 'note'}[/{colour}] {escape(str(issue))}", highlight=False, soft_wrap=True)
    written = write_corpus(output, result.examples)
    console.print(
        f"{written} example(s) written to {output}; skipped {result.unannotated} unannotated and "
        f"{result.cancelled} cancelled task(s); {result.disagreements} task(s) with disagreeing annotations; "
        f"{result.invalid} invalid example(s) and {len(result.dropped)} dropped item(s)",
        highlight=False,
        soft_wrap=True,
    )
    if result.dropped:
        raise typer.Exit(1)
