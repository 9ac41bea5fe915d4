"""The shape of a Label Studio export, checked task by task before any of it is read.

An export is edited by hand, produced by other tools or by other Label Studio versions, so
every key the converter reads is checked first against the pydantic models below: a task
whose annotations are a dict, whose ``result`` is missing or ``null``, whose ``labels`` is
a number or whose ``score`` is a string is reported with its id and left out, instead of
crashing the conversion or silently becoming an example without entities. Types are
strict (no ``"12"`` → 12): what passes is exactly what the converter expects. Keys veille
does not read are allowed and ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from ..safejson import printable, value_problem
from .results import Issue


def _id(value: Any) -> Any:
    """Label Studio writes integer ids and other tools strings: both are read (and may be absent), nothing else."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, str))):
        raise ValueError(f"an id is an integer or a string, not {type(value).__name__}")
    return value


Id = Annotated[Any, AfterValidator(_id)]  # or None
Score = Annotated[StrictFloat, Field(allow_inf_nan=False)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="allow")


class RegionValue(_Shape):
    start: StrictInt | None = None
    end: StrictInt | None = None
    text: StrictStr | None = None
    labels: list[StrictStr] | None = None


class Result(_Shape):
    """A region (``type: labels``) or a relation (``type: relation``) of an annotation."""

    type: StrictStr | None = None
    id: Id = None
    from_name: StrictStr | None = None
    to_name: StrictStr | None = None
    value: RegionValue | None = None
    from_id: Id = None
    to_id: Id = None
    labels: list[StrictStr] | None = None
    direction: Literal["right", "left", "bi"] | None = None
    score: Score | None = None


class Annotation(_Shape):
    id: Id = None
    result: list[Result]  # required and not null: a missing result is not "no entities"
    was_cancelled: StrictBool | None = None
    created_at: StrictStr | None = None
    updated_at: StrictStr | None = None
    completed_by: StrictInt | dict[str, Any] | None = None


class TaskData(_Shape):
    text: StrictStr | None = None  # absent in tasks of another labelling config, which the converter reports
    example: Id = None
    meta: dict[str, Any] | None = None


class Task(_Shape):
    id: Id = None
    data: TaskData
    annotations: list[Annotation] | None = None


def check_tasks(tasks: list[Any]) -> tuple[list[dict[str, Any]], list[Issue]]:
    """The tasks of an export whose shape is right, and one dropped :class:`Issue` per problem of the others."""
    kept: list[dict[str, Any]] = []
    issues: list[Issue] = []
    for index, task in enumerate(tasks):
        where = task_name(task, index)
        if not isinstance(task, dict):
            issues.append(Issue(where, f"expected a task object, got {type(task).__name__}"))
            continue
        problem = value_problem(task)
        if problem:
            issues.append(Issue(where, f"{printable(problem[0])}: {problem[1]}"))
            continue
        try:
            Task.model_validate(task)
        except ValidationError as exc:
            issues.extend(Issue(where, f"{_location(error['loc'])}: {_message(error['msg'])}") for error in exc.errors(include_url=False))
            continue
        kept.append(task)
    return kept, issues


def task_name(task: Any, index: int) -> str:
    """How reports name a task: ``task <id>`` when it has a usable id, else its position in the export."""
    task_id = task.get("id") if isinstance(task, dict) else None
    if isinstance(task_id, (int, str)) and not isinstance(task_id, bool):
        return f"task {printable(str(task_id))}"
    return f"task #{index + 1} of the export"


def _message(msg: str) -> str:
    """pydantic's message without the model's class name (« a valid dictionary or instance of Task »)."""
    return msg.split(" or instance of ")[0].removeprefix("Value error, ")


def _location(loc: tuple[int | str, ...]) -> str:
    """``('annotations', 0, 'result')`` → ``annotations[0].result``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
