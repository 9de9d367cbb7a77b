"""Production review edges a user hits, on a real Label Studio, a real spaCy rules pipeline
and a real loopback HTTP sink: the review project named after a [labelstudio] project title, a
task that comes back with other content under its id, and a sink that refuses every record."""

from __future__ import annotations

import json
import uuid

import pytest

from helpers import run_cli
from test_review_release import SinkServer

ROWS = {"m0": "Please send 3 Acme widget to Lyon.", "m1": "Two Zeta bolt for Paris, please."}


def write_rows(folder, rows: dict[str, str]) -> None:
    (folder / "mails.jsonl").write_text("".join(
        json.dumps({"id": key, "text": text}) + "\n" for key, text in rows.items()))


@pytest.fixture(scope="module")
def sink():
    server = SinkServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def production(tmp_path_factory, labelstudio, sink):
    """A folder with no calibration yet (every task goes to humans) whose [labelstudio]
    project is a title, released to the HTTP sink; `review` runs the CLI there."""
    folder = tmp_path_factory.mktemp("orders")
    title = f"Orders NER {uuid.uuid4().hex[:6]}"
    (folder / "rules").mkdir()
    (folder / "rules" / "products.csv").write_text("term,label\nAcme widget,PRODUCT\n"
                                                   "Zeta bolt,PRODUCT\n")
    write_rows(folder, ROWS)
    (folder / "preannot.toml").write_text(f"""
[input]
paths = ["mails.jsonl"]
[[annotators]]
name = "rules"
type = "rules"
rules = "rules"
[labelstudio]
project = "{title}"
[review]
sink = "http"
sink_url = "{sink.url}/intake"
""")

    def review(*args):
        return run_cli(["review", *args, "-c", str(folder / "preannot.toml")],
                       env={**labelstudio.env(), "COLUMNS": "400"}, cwd=folder)
    first = review("run", "--no-progress")
    assert first.returncode == 0, first.stderr
    return folder, title, review, first


def said(result) -> str:
    return " ".join(result.stderr.split())


def test_the_review_project_is_named_after_the_labeling_project_title(production, labelstudio):
    _, title, _, first = production
    assert "decided 2 new tasks: 0 released automatically, 0 released and audited, 2 sent to " \
        "review" in said(first)
    project = labelstudio.client().project(f"{title} review")
    assert sorted(t["meta"]["preannot_id"] for t in labelstudio.client().export(project.id)) \
        == ["m0", "m1"]


def test_a_task_back_with_other_content_keeps_its_first_decision_and_is_named(production):
    folder, _, review, _ = production
    write_rows(folder, {**ROWS, "m1": "Two Zeta bolt for Nantes, please."})
    again = review("run", "--no-progress")
    assert again.returncode == 0, again.stderr
    assert "decided 0 new tasks" in said(again)
    assert ("1 tasks decided before came back with other content and kept their first "
            "decision (a new id decides them again): m1") in said(again)
    write_rows(folder, ROWS)  # the content decided: nothing to name
    assert "came back with other content" not in said(review("run", "--no-progress"))


def test_sync_exits_3_while_the_sink_refuses_every_record(production, labelstudio, sink):
    _, title, review, _ = production
    client = labelstudio.client()
    project = client.project(f"{title} review")
    for task in client.export(project.id):
        client.sdk.annotations.create(task["id"], result=task["predictions"][0]["result"])
    sink.redirect = "http://127.0.0.1:9/elsewhere"  # a redirect the sink client never follows
    refused = review("sync")
    assert refused.returncode == 3, refused.stderr
    assert "released 0 records to the sink; 2 wait for the next pass" in said(refused)
    assert sink.committed == []
    sink.redirect = None
    delivered = review("sync")
    assert delivered.returncode == 0, delivered.stderr
    assert "released 2 records to the sink" in said(delivered)
    assert sorted(sink.keys()) == ["m0", "m1"]
