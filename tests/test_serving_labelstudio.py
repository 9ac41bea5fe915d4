"""A real Label Studio project gets its pre-annotations from a real ``veille serve`` (ML backend protocol)."""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from veille.annotation.labelstudio.client import Connection, connect, find_project, project_tasks
from veille.annotation.labelstudio.results import results_to_example
from veille.annotation.labelstudio.server import copy_data_dir, free_port, saved_token, start_server
from veille.annotation.schema import load_schema
from veille.cli import app

pytestmark = pytest.mark.labelstudio

ARTICLE = "Arthur Mensch, cofondateur de Mistral AI, a annoncé une levée de 600 millions d'euros 🚀. Meta a investi dans Scale AI."


@pytest.fixture
def local_ml_labelstudio(labelstudio, tmp_path, monkeypatch):
    """Label Studio 1.23 refuses an ML backend on a local address unless both settings are off (the second
    for the webhook it registers at ``<url>/webhook``): a server started with them."""
    monkeypatch.setenv("ML_BLOCK_LOCAL_IP", "false")
    monkeypatch.setenv("SSRF_PROTECTION_ENABLED", "false")
    data_dir = tmp_path / "labelstudio"
    copy_data_dir(labelstudio.template, data_dir)
    server = start_server(data_dir, free_port())
    yield Connection(server.url, saved_token(data_dir))
    server.stop()


def test_label_studio_retrieves_predictions_from_veille_serve(local_ml_labelstudio, tiny_trained_model, veille_serve, tmp_path) -> None:
    article = tmp_path / "mistral.txt"
    article.write_text(ARTICLE, encoding="utf-8")
    env = {"LABEL_STUDIO_URL": local_ml_labelstudio.url, "LABEL_STUDIO_API_KEY": local_ml_labelstudio.token}
    pushed = CliRunner().invoke(app, ["annotate", "push", "--project", "news", str(article)], env=env)
    assert pushed.exit_code == 0, pushed.output
    ls = connect(local_ml_labelstudio)
    project = find_project(ls, "news")

    with veille_serve(tiny_trained_model, "--relation-threshold", "0.0") as (url, _):
        model_version = httpx.post(f"{url}/setup", json={}).json()["model_version"]
        ls.ml.create(project=project, url=url, title="veille", is_interactive=False)  # Label Studio checks /health and /setup
        ls.actions.create(id="retrieve_tasks_predictions", project=project, selected_items={"all": True, "excluded": []})
        tasks = project_tasks(ls, project)
        expected = httpx.post(f"{url}/v1/extract", json={"texts": [t["data"]["text"] for t in tasks], "relation_threshold": 0.0}).json()["results"]

    assert len(tasks) == 2
    for task, extracted in zip(tasks, expected):
        [prediction] = task["predictions"]
        assert prediction["model_version"] == model_version
        back, issues = results_to_example(task["data"], prediction["result"], load_schema())
        assert not [issue for issue in issues if issue.dropped]
        assert [(e.start, e.end, e.label) for e in back.entities] == [(e["start"], e["end"], e["label"]) for e in extracted["entities"]]
        assert len(back.relations) == len(extracted["relations"])
