"""The few Label Studio API calls veille makes, through ``label-studio-sdk`` over HTTP."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..schema import Schema
from .config import labeling_config
from .results import SUGGEST_RANK

DEFAULT_URL = "http://127.0.0.1:8080"
IMPORT_BATCH = 500  # tasks per import request: well under the server's 200 MB limit
RANKED_VIEW = "Suggestions"  # the Data Manager tab that lists suggested tasks by rank


@dataclass
class Connection:
    """Where the server is and how to authenticate (options, else ``LABEL_STUDIO_URL``/``LABEL_STUDIO_API_KEY``)."""

    url: str | None = None
    token: str | None = None

    def resolved(self) -> Connection:
        url = self.url or os.environ.get("LABEL_STUDIO_URL") or DEFAULT_URL
        token = self.token or os.environ.get("LABEL_STUDIO_API_KEY")
        if not token:
            raise ValueError("no API token: pass --token or set LABEL_STUDIO_API_KEY (printed by `veille annotate server`)")
        return Connection(url.rstrip("/"), token)


def connect(connection: Connection):
    """A ``LabelStudio`` SDK client (imported here: the SDK is slow to import, and an extra)."""
    try:
        from label_studio_sdk import LabelStudio
    except ImportError:
        raise ValueError(
            "the Label Studio client is not installed: pip install 'veille[annotate]' "
            "(the base install leaves it out: it brings ~2 GB of dependencies that predicting and serving never use)"
        ) from None

    resolved = connection.resolved()
    return LabelStudio(base_url=resolved.url, api_key=resolved.token)


def find_project(ls, title: str) -> int | None:
    """The id of the project with exactly this title, or None."""
    for project in ls.projects.list(title=title):
        if project.title == title:
            return project.id
    return None


def ensure_project(ls, title: str, schema: Schema) -> tuple[int, str]:
    """Create the project, or bring its labelling config up to date; return its id and what was done."""
    config = labeling_config(schema)
    project_id = find_project(ls, title)
    if project_id is None:
        return ls.projects.create(title=title, label_config=config, description=schema.description).id, "created"
    if (ls.projects.get(project_id).label_config or "").strip() != config.strip():  # the server strips it
        ls.projects.update(project_id, label_config=config)
        return project_id, "config updated"
    return project_id, "unchanged"


def project_tasks(ls, project_id: int) -> list[dict[str, Any]]:
    """Every task with its annotations and full prediction objects, as plain dicts."""
    return [task.model_dump(mode="json") for task in ls.tasks.list(project=project_id, fields="all", page_size=500)]


def export_tasks(ls, project_id: int) -> list[dict[str, Any]]:
    """The project's JSON export, all tasks included (so unannotated ones can be counted)."""
    return ls.projects.exports.as_json(project_id)


def import_tasks(ls, project_id: int, tasks: list[dict[str, Any]], progress=None) -> int:
    """Import tasks (with inline annotations/predictions) in batches; return how many were created."""
    created = 0
    for start in range(0, len(tasks), IMPORT_BATCH):
        batch = tasks[start : start + IMPORT_BATCH]
        created += ls.projects.import_tasks(project_id, request=batch).task_count or 0
        if progress is not None:
            progress(len(batch))
    return created


def ensure_ranked_view(ls, project_id: int) -> int:
    """The id of the project's « Suggestions » tab, sorted by ``data.suggest_rank`` (created once).

    A tab's ordering is what the annotator's « Label All Tasks » queue follows, so rank 1 is
    annotated first without anyone sorting by hand.
    """
    for view in ls.views.list(project=project_id):
        if (view.data or {}).get("title") == RANKED_VIEW:
            return view.id
    data = {"title": RANKED_VIEW, "ordering": [f"tasks:data.{SUGGEST_RANK}"], "filters": {"conjunction": "and", "items": []}}
    return ls.views.create(project=project_id, data=data).id


def user_emails(ls) -> dict[int, str]:
    """User id → e-mail, to name annotators (exports only give ids)."""
    return {user.id: user.email or user.username for user in ls.users.list()}
