"""``veille annotate push``: articles, gold sentences and pre-annotations → Label Studio tasks.

Every task carries its example id (``data.example``), so pushing is idempotent: a
sentence already in the project is never imported again; a gold annotation is added
only if the task has no annotation with the same content, a prediction only if the task
has none from the same model version.

Suggestions (``veille annotate suggest``) carry their rank in task data fields; push copies
them onto the task (a new round of suggestions re-ranks tasks already there) and gives the
project a « Suggestions » tab of the Data Manager sorted by rank, so the annotator's queue
starts with the most useful task.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..articles import Article, read_articles, sentence_examples as article_sentences, warn_duplicate_ids
from ..document import Example
from ..schema import Schema
from ..validate import Problem
from .client import ensure_project, ensure_ranked_view, import_tasks, project_tasks
from .results import SUGGEST_FIELDS, example_to_results, results_to_example, task_data, task_example


@dataclass
class PushReport:
    project_id: int
    project: str
    tasks_created: int = 0
    tasks_present: int = 0
    annotations_added: int = 0
    annotations_present: int = 0
    predictions_added: int = 0
    predictions_present: int = 0
    tasks_ranked: int = 0
    issues: list[str] = field(default_factory=list)


def sentence_examples(inputs: Iterable[str | Path], warn: Callable[[str], None]) -> tuple[list[Example], list[Problem]]:
    """The unannotated sentences of the input articles, and the problems of the bad ones; ``warn`` hears of duplicate ids."""
    examples: list[Example] = []
    problems: list[Problem] = []
    for item in warn_duplicate_ids(read_articles(inputs), warn):
        if isinstance(item, Article):
            examples.extend(article_sentences(item))
        else:
            problems.append(item)
    return examples, problems


def read_prediction_tasks(path: Path, schema: Schema) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Tasks written by ``veille predict --format labelstudio`` (a JSON array, or one task per line).

    Each task must name its example and text, and its predictions must read back cleanly
    against the schema; a bad one is reported with its position and left out.
    """
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Problem(str(path), 0, "<file>", f"cannot read: {exc}")]
    try:
        items = json.loads(raw) if raw.lstrip().startswith("[") else [json.loads(line) for line in raw.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        return [], [Problem(str(path), exc.lineno, "<json>", f"invalid JSON: {exc.msg}")]
    tasks, problems = [], []
    for index, task in enumerate(items):
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("text"), str) or not data.get("example"):
            problems.append(Problem(str(path), index + 1, "data", "a task needs data.text and data.example"))
            continue
        predictions = task.get("predictions")
        if not isinstance(predictions, list) or not all(isinstance(p, dict) and isinstance(p.get("result"), list) for p in predictions):
            problems.append(Problem(str(path), index + 1, "predictions", "expected a list of predictions, each with a result list"))
            continue
        found = [
            str(issue)
            for prediction in predictions
            for issue in results_to_example(data, prediction["result"], schema, where="prediction")[1]
        ]
        if found:
            problems.append(Problem(str(path), index + 1, "predictions", "; ".join(found)))
            continue
        tasks.append(task)
    return tasks, problems


def push(
    ls,
    title: str,
    schema: Schema,
    sentences: Sequence[Example] = (),
    gold: Sequence[Example] = (),
    predictions: Sequence[dict[str, Any]] = (),
) -> PushReport:
    """Create or update the project and bring sentences, gold annotations and predictions into it."""
    project_id, action = ensure_project(ls, title, schema)
    report = PushReport(project_id, action)
    existing = {str(task["data"].get("example")): task for task in project_tasks(ls, project_id)}
    new: dict[str, dict[str, Any]] = {}
    present: set[str] = set()

    def target(example: Example) -> dict[str, Any] | None:
        """The task (existing or about to be created) for this sentence; None if its text conflicts."""
        task = existing.get(example.id) or new.get(example.id)
        if task is None:
            task = new[example.id] = {"data": task_data(example)}
        elif task["data"].get("text") != example.text:
            report.issues.append(f"{example.id}: a task with this id but another text is already in the project; skipped")
            return None
        elif example.id in existing:
            present.add(example.id)
        return task

    for example in sentences:
        target(example)
    for example in gold:
        task = target(example)
        if task is not None:
            _add_gold(ls, task, example, schema, report)
    for item in predictions:
        task = target(task_example(item["data"]))
        if task is not None:
            _add_predictions(ls, task, item["predictions"], report)
            _add_rank(ls, task, item["data"], report)
    report.tasks_present = len(present)
    with tqdm(total=len(new), unit="task", desc="import", disable=None) as bar:
        report.tasks_created = import_tasks(ls, project_id, list(new.values()), progress=bar.update)
    if report.tasks_ranked:
        ensure_ranked_view(ls, project_id)
    return report


def _add_gold(ls, task: dict[str, Any], example: Example, schema: Schema, report: PushReport) -> None:
    for annotation in task.get("annotations") or []:
        present = results_to_example(task["data"], annotation.get("result") or [], schema)[0]
        if not annotation.get("was_cancelled") and (present.entities, present.relations) == (example.entities, example.relations):
            report.annotations_present += 1
            return
    result = example_to_results(example, schema)
    if "id" in task:
        ls.annotations.create(id=task["id"], result=result)
    else:
        task.setdefault("annotations", []).append({"result": result})
    report.annotations_added += 1


def _add_predictions(ls, task: dict[str, Any], predictions: list[dict[str, Any]], report: PushReport) -> None:
    versions = {p.get("model_version") for p in task.get("predictions") or [] if isinstance(p, dict)}
    for prediction in predictions:
        if prediction.get("model_version") in versions:
            report.predictions_present += 1
            continue
        if "id" in task:
            ls.predictions.create(
                task=task["id"], result=prediction["result"], score=prediction.get("score"), model_version=prediction.get("model_version")
            )
        else:
            task.setdefault("predictions", []).append(prediction)
        versions.add(prediction.get("model_version"))
        report.predictions_added += 1


def _add_rank(ls, task: dict[str, Any], data: dict[str, Any], report: PushReport) -> None:
    """Copy a suggestion's rank fields onto its task (updating a task already in the project)."""
    rank = {key: data[key] for key in SUGGEST_FIELDS if key in data}
    if not rank:
        return
    report.tasks_ranked += 1
    if all(task["data"].get(key) == value for key, value in rank.items()):
        return
    task["data"].update(rank)
    if "id" in task:
        ls.tasks.update(id=str(task["id"]), data=task["data"])
