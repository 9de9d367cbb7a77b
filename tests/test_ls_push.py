"""Pushing pre-annotations into a real Label Studio: bulk, idempotent, resumable."""

import json

import pytest
from click.testing import CliRunner

from annotators import Keywords, KeywordsPlugin
from preannot.cli import cli
from preannot.engine.config import RunConfig
from preannot.labelstudio.client import Unreachable
from preannot.labelstudio.push import (annotate_project, ensure_project, push_tasks,
                                       read_import_file)
from preannot.engine.host import load_host
from preannot.engine.runner import run

WORDS = {"apple": ["FRUIT", 0.9], "pear": ["FRUIT", 0.3], "bolt": ["PART", 0.6]}


def runner_output(tmp_path, texts, words=WORDS, name="kw"):
    """A real `preannot run` output file over ``texts`` (one JSONL record per text)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({"id": f"doc{i}", "text": t}) + "\n"
                            for i, t in enumerate(texts)))
    config = RunConfig(base_dir=tmp_path, inputs=[data], output=tmp_path / "out" / "pred.json",
                       annotators=[{"name": name, "type": "keywords", "words": words}])
    summary = run(config, host=load_host((KeywordsPlugin(),)))
    assert summary.failed == 0
    return config.output


def exported(client, project):
    return sorted(client.export(project), key=lambda t: t["meta"]["preannot_id"])


def test_runner_output_imports_with_its_predictions(labelstudio, tmp_path):
    texts = ["an apple", "a pear and a bolt", "nothing here"]
    output = runner_output(tmp_path, texts)
    client = labelstudio.client()
    kw = Keywords("kw", {"words": WORDS})
    project = ensure_project(client, None, title="import test", annotators=[kw])
    summary = push_tasks(client, project, read_import_file(output))
    assert (summary.created, summary.failures) == (3, [])
    tasks = exported(client, project)
    assert [t["data"]["text"] for t in tasks] == texts
    predictions = client.sdk.predictions.list(task=tasks[1]["id"])
    assert len(predictions) == 1 and predictions[0].model_version == kw.model_version
    got = {(r["value"]["text"], r["value"]["labels"][0], r["score"]) for r in predictions[0].result}
    assert got == {("pear", "FRUIT", 0.3), ("bolt", "PART", 0.6)}
    assert predictions[0].score == pytest.approx(0.3)
    assert client.sdk.projects.get(project).model_version == kw.model_version


def test_rerun_adds_nothing_and_a_new_model_version_adds_predictions(labelstudio, tmp_path):
    client = labelstudio.client()
    first = runner_output(tmp_path / "a", ["an apple", "a bolt"])
    project = ensure_project(client, None, title="idempotent test",
                             annotators=[Keywords("kw", {"words": WORDS})])
    assert push_tasks(client, project, read_import_file(first)).created == 2
    again = push_tasks(client, project, read_import_file(first))
    assert (again.created, again.predicted, again.unchanged) == (0, 0, 2)
    words = {**WORDS, "apple": ["FRUIT", 0.5]}
    second = runner_output(tmp_path / "b", ["an apple", "a bolt", "a pear"], words=words)
    summary = push_tasks(client, project, read_import_file(second))
    assert (summary.created, summary.predicted, summary.unchanged) == (1, 2, 0)
    tasks = exported(client, project)
    assert len(tasks) == 3
    assert [t["total_predictions"] for t in tasks] == [2, 2, 1]
    version = Keywords("kw", {"words": words}).model_version
    assert summary.model_version == version
    assert client.sdk.projects.get(project).model_version == version


def test_bad_records_are_reported_and_the_rest_pushed(labelstudio, tmp_path):
    path = tmp_path / "mixed.jsonl"
    good = {"data": {"text": "ok"}, "meta": {"preannot_id": "g1"},
            "predictions": [{"model_version": "m1", "result": []}]}
    path.write_text(json.dumps(good) + "\n{broken\n" + json.dumps({"text": "bare"}) + "\n"
                    + json.dumps(good) + "\n")
    client = labelstudio.client()
    project = labelstudio.project('<View><Text name="text" value="$text"/></View>')
    summary = push_tasks(client, project, read_import_file(path))
    assert summary.created == 1
    assert [(s, r.split(":")[0]) for s, r in summary.failures] == [
        ("mixed.jsonl:2", "invalid JSON"),
        ("mixed.jsonl:3", "not a Label Studio task (an object with a 'data' object)"),
        ("mixed.jsonl:4", "duplicate task id 'g1'")]
    # the command says the same and exits 3, the good task already there
    result = CliRunner().invoke(cli, ["ls", "push", str(path), "-p", str(project),
                                      "--no-progress"], env=labelstudio.env())
    assert result.exit_code == 3, result.output
    said = " ".join(result.output.split())  # as the terminal wraps it
    assert ("0 tasks created with their predictions, 0 tasks already there given "
            "predictions, 1 already up to date") in said
    assert "not pushed mixed.jsonl:3: not a Label Studio task" in said


def test_nothing_left_unlabeled_is_said_and_succeeds(labelstudio, tmp_path):
    """After a promotion every task may be labeled already: Label Studio would refuse a model
    version no prediction carries, so the project is left as it is and the command succeeds."""
    client = labelstudio.client()
    kw = Keywords("kw", {"words": WORDS})
    project = ensure_project(client, None, title="all labeled", annotators=[kw])
    [tid] = client.sdk.projects.import_tasks(project, request=[{"data": {"text": "apple"}}],
                                             return_task_ids=True).task_ids
    client.sdk.annotations.create(tid, result=[])
    before = client.sdk.projects.get(project).model_version
    summary = annotate_project(client, project, [kw], unlabeled_only=True)
    assert (summary.created, summary.predicted, summary.unchanged, summary.failures) == (
        0, 0, 0, [])
    assert client.sdk.projects.get(project).model_version == before
    assert summary.describe("U").endswith("no task to pre-annotate (every task is labeled "
                                          "already): nothing to update")


def test_tasks_already_in_a_project_get_predictions_in_bulk(labelstudio):
    client = labelstudio.client()
    kw = Keywords("kw", {"words": WORDS})
    project = ensure_project(client, None, title="existing test", annotators=[kw])
    client.sdk.projects.import_tasks(project, request=[{"data": {"text": t}} for t in
                                                       ["apple pie", "steel bolt", "plain"]])
    summary = annotate_project(client, project, [kw])
    assert (summary.created, summary.predicted) == (0, 3)
    again = annotate_project(client, project, [kw])
    assert (again.predicted, again.unchanged) == (0, 0)
    tasks = client.export(project)
    assert sorted(t["total_predictions"] for t in tasks) == [1, 1, 1]
    labels = {p.result[0]["value"]["labels"][0] for t in tasks
              for p in client.sdk.predictions.list(task=t["id"]) if p.result}
    assert labels == {"FRUIT", "PART"}


def test_a_server_stopped_mid_push_resumes_without_loss_or_duplicates(labelstudio, tmp_path):
    if labelstudio.server is None:
        pytest.skip("needs a server this session started (PREANNOT_TEST_LS_URL reuses another)")
    texts = [f"apple number {i}" for i in range(250)]
    output = runner_output(tmp_path, texts)
    client = labelstudio.client(retries=1, backoff=0.2)
    project = ensure_project(client, None, title="resume test",
                             annotators=[Keywords("kw", {"words": WORDS})])
    batches = []

    def stop_after_first_batch(n):
        batches.append(n)
        if len(batches) == 1:
            labelstudio.server.stop()

    try:
        with pytest.raises(Unreachable, match="not reachable"):
            push_tasks(client, project, read_import_file(output), batch_size=100,
                       progress=stop_after_first_batch)
    finally:
        labelstudio.server.start()
    assert batches == [100]
    summary = push_tasks(client, project, read_import_file(output), batch_size=100)
    assert (summary.created, summary.unchanged) == (150, 100)
    ids = sorted(t["meta"]["preannot_id"] for t in client.export(project))
    assert ids == sorted(f"doc{i}" for i in range(250))


def test_import_files_are_read_as_a_stream_with_errors_located(tmp_path):
    listing = tmp_path / "tasks.json"
    listing.write_text(json.dumps([{"data": {"text": f"t{i}"}} for i in range(3)], indent=1))
    assert [s for s, _ in read_import_file(listing)] == [f"tasks.json[{i}]" for i in range(3)]
    single = tmp_path / "one.json"
    single.write_text(json.dumps({"data": {"text": "x"}}))
    assert list(read_import_file(single)) == [("one.json[0]", {"data": {"text": "x"}})]
    broken = tmp_path / "broken.json"
    broken.write_text('{"data":\n {"text": }}')
    with pytest.raises(ValueError, match=r"broken.json:2: invalid JSON"):
        list(read_import_file(broken))
    cut = tmp_path / "cut.json"
    cut.write_text('[{"data": {"text": "a"}},\n{"data": {"te')
    assert list(read_import_file(cut)) == [
        ("cut.json[0]", {"data": {"text": "a"}}),
        ("cut.json[1]", "invalid JSON: the file ends early (truncated?) after task 0")]


def test_local_images_a_server_cannot_show_are_pushed_and_said(labelstudio, tmp_path):
    from PIL import Image

    from preannot.lsjson import task_to_ls
    from preannot.model import Task

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    client = labelstudio.client()  # not known to serve this machine's files
    project = labelstudio.project('<View><Image name="image" value="$image"/></View>')
    task = task_to_ls(Task("a", {"image": str(tmp_path / "a.png")}), [])
    task["predictions"] = [{"model_version": "m1", "result": []}]
    summary = push_tasks(client, project, [("a.png", task)])
    assert (summary.created, summary.failures) == (1, [])
    assert summary.notices == [
        f"1 tasks hold image paths on this machine, which Label Studio at {client.url} does not "
        "serve: its editor will not show them. Start that server with "
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT="
        "<a folder above the images>, and set [labelstudio] local_files_root to that folder "
        "(preannot then adds a Local Files storage per image folder), or put the images behind "
        "http(s) URLs"]
    assert client.export(project)[0]["data"]["image"] == str(tmp_path / "a.png")
