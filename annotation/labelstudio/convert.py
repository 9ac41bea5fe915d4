"""Label Studio export (a list of task dicts) → validated gold examples.

The same code serves ``veille annotate pull`` (export fetched from the server) and
``veille annotate convert`` (an export file). Label Studio itself accepts unknown
labels and relations to missing regions, so nothing it returns is trusted: every
kept example passes the gold validator, and everything left out is counted or reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..document import Example
from ..safejson import JsonInputError, decode
from ..schema import Schema
from ..scoring import score_entities, score_relations
from ..validate import check_example
from .results import TO_NAME, Issue, results_to_example
from .shape import check_tasks


class ExportError(ValueError):
    """An export file that is not a Label Studio JSON export."""


@dataclass
class Conversion:
    examples: list[Example] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    unannotated: int = 0
    cancelled: int = 0
    disagreements: int = 0
    invalid: int = 0

    @property
    def dropped(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.dropped]


def read_export(path: Path) -> list[Any]:
    """The tasks of a Label Studio JSON export file (``Export → JSON``, or the snapshot API), unchecked.

    Only the file as a whole is refused here (unreadable, not JSON, not an array); each
    task's shape is checked by :func:`convert_tasks`, which reports bad tasks and keeps the rest.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ExportError(f"{path}: cannot read a JSON export: {exc.strerror}") from None
    if not data.strip():
        raise ExportError(f"{path}: empty file, expected a JSON array of tasks (Label Studio JSON export)")
    try:
        tasks = decode(data)
    except JsonInputError as exc:
        raise ExportError(f"{path}: cannot read a JSON export: {exc.message}") from None
    if not isinstance(tasks, list):
        raise ExportError(f"{path}: expected a JSON array of tasks, each with a 'data' object (Label Studio JSON export)")
    return tasks


def live_annotations(task: dict[str, Any]) -> list[dict[str, Any]]:
    """The task's submitted (non-cancelled) annotations, oldest first (by time, then id: integers before strings)."""
    annotations = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    return sorted(annotations, key=lambda a: (a.get("updated_at") or a.get("created_at") or "", isinstance(a.get("id"), str), a.get("id") or 0))


def has_text(task: dict[str, Any]) -> bool:
    """Whether the task holds its sentence in ``data.text`` (a task of another labelling config does not)."""
    return isinstance(task["data"].get(TO_NAME), str)


def annotation_example(task: dict[str, Any], annotation: dict[str, Any], schema: Schema) -> tuple[Example, list[Issue]]:
    """One annotation of a task as an example, its id taken from the task (or ``task-<id>``)."""
    data = dict(task["data"])
    data.setdefault("example", f"task-{task.get('id')}")
    where = f"task {task.get('id')} ({data['example']}) annotation {annotation.get('id')}"
    return results_to_example(data, annotation.get("result") or [], schema, where)


def convert_tasks(tasks: list[Any], schema: Schema) -> Conversion:
    """Keep the latest submitted annotation of each task whose shape is right, checked and validated."""
    out = Conversion()
    valid, out.issues = check_tasks(tasks)
    out.invalid = len(tasks) - len(valid)
    seen: set[str] = set()
    for task in valid:
        annotations = live_annotations(task)
        if not annotations:
            if task.get("annotations"):
                out.cancelled += 1
            else:
                out.unannotated += 1
            continue
        if not has_text(task):
            out.invalid += 1
            out.issues.append(Issue(f"task {task.get('id')}", f"data.{TO_NAME}: missing or not a string (not a task of a veille project)"))
            continue
        example, issues = annotation_example(task, annotations[-1], schema)
        if len(annotations) > 1 and _disagree(task, example, annotations[:-1], schema):
            out.disagreements += 1
            ids = ", ".join(str(a.get("id")) for a in annotations)
            issues.append(Issue(f"task {task.get('id')} ({example.id})", f"{len(annotations)} annotations disagree ({ids}): kept the latest, {annotations[-1].get('id')}", dropped=False))
        out.issues.extend(issues)
        problems = check_example(example.to_json(), schema)
        if example.id in seen:
            problems.append(("id", f"example {example.id!r} is in several tasks; kept the first"))
        if problems:
            out.invalid += 1
            out.issues.extend(Issue(f"task {task.get('id')} ({example.id}) {name}", message) for name, message in problems)
            continue
        seen.add(example.id)
        out.examples.append(example)
    return out


def _disagree(task: dict[str, Any], latest_example: Example, earlier: list[dict[str, Any]], schema: Schema) -> bool:
    """Whether any earlier annotation differs from the latest one (strict spans, labels and relations)."""
    latest = [latest_example]
    for annotation in earlier:
        other = [annotation_example(task, annotation, schema)[0]]
        for counts in (score_entities(latest, other).micro, score_relations(latest, other, schema).micro):
            if counts.fp or counts.fn:
                return True
    return False
