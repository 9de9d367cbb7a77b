"""Pulls that stay right when the project changes under them, against a real Label Studio:
deleted tasks leave the harvest, pages skip nothing, a change during a pull is not passed over,
and a pull leaves nothing behind on the server."""

from __future__ import annotations

import json

import pytest

from preannot.evaluation.corrections import write_outputs
from preannot.labelstudio import client as client_module
from preannot.harvest.store import HarvestStore, pull

CONFIG = ('<View><Text name="text" value="$text"/><Labels name="label" toName="text">'
          '<Label value="PRODUCT"/></Labels></View>')


def region(rid: str) -> dict:
    return {"id": rid, "from_name": "label", "to_name": "text", "type": "labels",
            "value": {"start": 0, "end": 4, "text": "Acme", "labels": ["PRODUCT"]}}


@pytest.fixture
def project(labelstudio):
    """Six tasks with a prediction each, the first four annotated."""
    client = labelstudio.client()
    project = labelstudio.project(CONFIG, "pull faults")
    ids = client.sdk.projects.import_tasks(project, return_task_ids=True, request=[
        {"data": {"text": f"Acme order {i}"}, "meta": {"preannot_id": f"k{i}"},
         "predictions": [{"model_version": "v1", "result": [region(f"p{i}")]}]}
        for i in range(6)]).task_ids
    for task in ids[:4]:
        client.sdk.annotations.create(task, result=[region("h")])
    return client, project, list(ids)


def test_a_task_deleted_in_label_studio_leaves_the_harvest(project, tmp_path):
    client, project_id, ids = project
    store = HarvestStore(tmp_path / "ledger.sqlite", f"{client.url}#{project_id}")
    assert (pull(client, project_id, store).fetched, write_outputs(
        store.tasks(), tmp_path / "before")["tasks"]["annotated"]) == (6, 4)
    client.sdk.tasks.delete(ids[1])
    again = pull(client, project_id, store)
    assert (again.fetched, again.removed) == (0, 1)
    assert [t["id"] for t in store.tasks()] == ids[:1] + ids[2:]
    metrics = write_outputs(store.tasks(), tmp_path / "after")
    assert metrics["tasks"] == {"annotated": 3, "measured": 3, "unannotated": 2}
    lines = (tmp_path / "after" / "corrections.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["task"] for line in lines) == sorted(ids[:1] + ids[2:])


def test_pages_are_asked_by_id_so_a_deletion_during_the_walk_skips_nothing(project):
    client, project_id, ids = project
    seen = []
    for task in client.annotated_tasks(project_id, page_size=2):
        seen.append(task["id"])
        if len(seen) == 2:  # the first page is read: a task on it goes
            client.sdk.tasks.delete(ids[0])
    assert seen == ids


def test_a_task_changed_during_a_pull_is_fetched_by_the_next(project, tmp_path, monkeypatch):
    client, project_id, ids = project
    monkeypatch.setattr(client_module, "ANNOTATED_PAGE_SIZE", 2)
    store = HarvestStore(tmp_path / "ledger.sqlite", f"{client.url}#{project_id}")
    changed = []

    def annotate_meanwhile(count: int) -> None:
        if not changed:  # the first page is stored: one task on it and one after change
            changed.extend([ids[0], ids[5]])
            for task in changed:
                client.sdk.annotations.create(task, result=[region("late")])

    assert pull(client, project_id, store, batch=2, progress=annotate_meanwhile).fetched == 6
    assert pull(client, project_id, store).fetched == 2
    late = {t["id"] for t in store.tasks() if any(
        r["id"] == "late" for a in t["annotations"] for r in a["result"])}
    assert late == {ids[0], ids[5]}
    assert pull(client, project_id, store).fetched == 0


def test_a_pull_leaves_nothing_on_the_server(project, labelstudio, tmp_path):
    client, project_id, ids = project
    views = len(client.sdk.views.list(project=project_id))
    store = HarvestStore(tmp_path / "ledger.sqlite", f"{client.url}#{project_id}")
    pull(client, project_id, store)
    client.sdk.annotations.create(ids[5], result=[region("h")])
    assert pull(client, project_id, store).fetched == 1  # an incremental pull, filtered
    assert client.request("GET", f"api/projects/{project_id}/exports") == []
    assert len(client.sdk.views.list(project=project_id)) == views
    if labelstudio.server is not None:  # a server the tests started: its files can be seen
        folder = labelstudio.server.data_dir / "media" / "export" / str(project_id)
        assert not folder.exists() or list(folder.iterdir()) == []
