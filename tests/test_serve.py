"""`preannot serve` as Label Studio's ML backend: a real server process on loopback, a real
Label Studio calling it (retrieve predictions, a task opened, webhooks), real spaCy rules, a
real registry whose promotion the server follows without a restart."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helpers import (GATED, pip_install, run_cli, start_server, wait_for, wait_up,
                     write_plugin)
from preannot.engine.config import load_config
from preannot.engine.host import get_host
from preannot.labelstudio.labeling_config import generate
from preannot.labelstudio.server import free_port
from preannot.labelstudio import sync
from preannot.training.registry import Registry

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

TEXTS = ["Please send 2 Acme drill to Lyon.", "Is the Nova grinder in stock?",
         "Quote 5 Vega planer please.", "Nothing to see here."]
KEYS = ["mail-b", "mail-d", "mail-f"]
"""Stable ids for the tasks imported into Label Studio, all on the training side of the fixed
evaluation and dev splits (the first is the one annotated, which the trainer then learns from)."""


PRODUCTS_ONLY = ('<View><Text name="text" value="$text"/><Labels name="label" toName="text">'
                 '<Label value="PRODUCT"/></Labels></View>')
"""A project labeling only PRODUCT, of the PRODUCT and TOOL the served rules emit."""


def spans(result: list[dict]) -> list[tuple[str, str, int, int]]:
    return sorted((r["value"]["text"], r["value"]["labels"][0], r["value"]["start"],
                   r["value"]["end"]) for r in result)


class Served:
    def __init__(self, folder: Path, url: str, project: int, process: subprocess.Popen,
                 labelstudio, label_config: str, site: Path) -> None:
        self.folder, self.url, self.project, self.process = folder, url, project, process
        self.ls, self.label_config, self.site = labelstudio, label_config, site
        self.config = folder / "preannot.toml"

    def post(self, path: str, body, **kwargs) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, timeout=60, **kwargs)

    def version(self) -> str:
        return httpx.get(f"{self.url}/health", timeout=5).json()["model_version"]

    def predicted(self) -> int:
        """Tasks the server has predicted (its /metrics)."""
        return httpx.get(f"{self.url}/metrics", timeout=5).json()["requests"].get("tasks", 0)

    def log(self) -> str:
        return (self.folder / "serve.log").read_text()


def _terms(folder: Path, rows: list[str]) -> Path:
    folder.mkdir(parents=True)
    (folder / "terms.csv").write_text("term,label\n" + "".join(f"{r},TOOL\n" for r in rows))
    return folder


@pytest.fixture(scope="module")
def served(labelstudio, tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    (folder / "rules").mkdir()
    (folder / "rules" / "products.csv").write_text("term,label\nAcme drill,PRODUCT\n")
    registry = Registry(folder / "models")
    work = tmp_path_factory.mktemp("versions")
    v1 = registry.add("terms", _terms(work / "a" / "terms", ["Nova grinder"]), {})
    registry.add("terms", _terms(work / "b" / "terms", ["Nova grinder", "Vega planer"]), {})
    registry.promote(v1)
    source = (Path(__file__).parent / "annotators.py").read_text()
    site = pip_install(write_plugin(folder / "plugin", "gazetteer-plugin", source + (
        "\n\nregister_trainers = GazetteerPlugin().register_trainers\n")), folder / "site")
    port = free_port()
    body = f"""
[[annotators]]
name = "products"
type = "rules"
rules = "rules"

[[annotators]]
name = "terms"
type = "rules"
rules = "registry:terms"

[[trainers]]
name = "terms"
type = "gazetteer"
annotator = "terms"

[training]
registry = "models"

[serve]
port = {port}
debounce = 0.5
"""
    (folder / "preannot.toml").write_text(body)
    built = sync.annotators(load_config(folder / "preannot.toml"), get_host())
    label_config = generate(built)
    project = labelstudio.project(label_config, "preannot serve")
    (folder / "preannot.toml").write_text(body + f"\n[labelstudio]\nproject = {project}\n")
    process = start_server(folder / "preannot.toml", labelstudio.env(), [site])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url, process, folder / "serve.log")
        yield Served(folder, url, project, process, labelstudio, label_config, site)
    finally:
        process.terminate()
        process.wait(30)


def expected_version(served: Served) -> str:
    """The pipeline's model_version as `ls push` would name it, worked out in this process."""
    config = load_config(served.config)
    return sync.pipeline_version(config, sync.annotators(config, get_host()))


def test_health_setup_and_versions_speak_label_studios_protocol(served):
    version = expected_version(served)
    assert version.startswith("products-") and version.endswith("+terms-v1")
    for path in ("/", "/health"):
        health = httpx.get(f"{served.url}{path}", timeout=5).json()
        assert (health["status"], health["model_class"], health["model_version"]) == (
            "UP", "preannot", version)
    setup = served.post("/setup", {"project": f"{served.project}.1700000000",
                                   "schema": served.label_config, "hostname": "http://x",
                                   "access_token": "not ours to keep"})
    assert setup.status_code == 200 and setup.json() == {"model_version": version}
    versions = httpx.get(f"{served.url}/versions", timeout=5).json()["versions"]
    assert versions[0] == version and sorted(versions[1:]) == ["terms-v1", "terms-v2"]


def test_predict_answers_each_task_in_order_and_a_bad_task_alone(served):
    version = expected_version(served)
    tasks = [{"id": 1, "data": {"text": TEXTS[0]}}, {"id": 2, "data": {"html": "no text"}},
             {"id": 3, "data": {"text": TEXTS[1]}}, "not a task",
             {"id": 5, "data": {"text": TEXTS[3]}}]
    reply = served.post("/predict", {"tasks": tasks, "project": f"{served.project}.1",
                                     "label_config": served.label_config, "params": {}})
    assert reply.status_code == 200
    results = reply.json()["results"]
    assert len(results) == 5 and {r["model_version"] for r in results} == {version}
    assert spans(results[0]["result"]) == [("Acme drill", "PRODUCT", 14, 24)]
    assert results[1] == {"result": [], "score": 0.0, "model_version": version}
    assert spans(results[2]["result"]) == [("Nova grinder", "TOOL", 7, 19)]
    assert results[3] == {"result": [], "score": 0.0, "model_version": version}
    assert results[4] == {"result": [], "model_version": version}  # nothing found: no score
    assert "task 2: not predicted: missing field 'text'" in served.log()
    assert "task #4 of the request: not predicted: not a Label Studio task" in served.log()


def test_bad_requests_get_a_json_error_that_says_why(served):
    broken = httpx.post(f"{served.url}/predict", content=b"{not json", timeout=10)
    assert broken.status_code == 400
    assert broken.json()["error"].startswith("/predict: the body is not JSON")
    assert served.post("/predict", {"tasks": "x"}).json() == {
        "error": "/predict: 'tasks' must be a list of Label Studio tasks, not a string"}
    other = served.post("/predict", {"tasks": [], "project": f"{served.project + 1000}.5"})
    assert other.status_code == 400 and other.json()["error"] == (
        f"this backend serves project {served.project} ([labelstudio] project in preannot.toml),"
        f" not project {served.project + 1000}")
    misfit = served.post("/setup", {"project": f"{served.project}.1", "schema":
                                    PRODUCTS_ONLY.replace("PRODUCT", "COLOUR")})
    assert misfit.status_code == 400 and misfit.json()["error"] == (
        "the project's labeling config does not fit the served annotators: it has none of the "
        "labels the annotators emit: it lacks label(s) 'PRODUCT', 'TOOL' (from_name 'label')")


SEEN_AS_500 = [
    ("/predict", "[" * 100_000 + "]" * 100_000, "/predict: the body is nested too deeply"),
    ("/setup", "[" * 100_000 + "]" * 100_000, "/setup: the body is nested too deeply"),
    ("/webhook", "[" * 100_000 + "]" * 100_000, "/webhook: the body is nested too deeply"),
    ("/predict", {"tasks": [], "project": "\u00b2.1"},
     "/predict: 'project' must be a Label Studio project id (\"<id>.<timestamp>\"), not '\u00b2.1'"),
    ("/setup", {"project": "\u00b2.1"},
     "/setup: 'project' must be a Label Studio project id (\"<id>.<timestamp>\"), not '\u00b2.1'"),
    ("/setup", {"schema": ["<View/>"]},
     "/setup: 'schema' must be a string (the labeling config), not a list"),
    ("/predict", {"tasks": [], "label_config": 5},
     "/predict: 'label_config' must be a string (the labeling config), not a number"),
    ("/predict", {"tasks": [{"data": {"text": TEXTS[0]}}], "params": {"context": {"result": [
        {"type": "labels", "from_name": "label", "to_name": "text",
         "value": {"start": 14, "end": "x", "labels": ["PRODUCT"]}}]}}},
     "/predict: context.result[0]: 'end' must be a number, not a string"),
    ("/webhook", {"action": ["ANNOTATION_CREATED"]},
     "/webhook: 'action' must be a string (a Label Studio webhook action), not a list"),
    ("/predict", '{"tasks": [], "note": "\\ud800"}',
     "/predict: the body holds '\\ud800', which is not UTF-8 text"),
]


@pytest.mark.parametrize("path,body,error", SEEN_AS_500)
def test_requests_once_answered_500_get_a_named_400_and_the_server_goes_on(served, path, body,
                                                                           error):
    content = body if isinstance(body, str) else json.dumps(body)
    reply = httpx.post(f"{served.url}{path}", content=content.encode(), timeout=30)
    assert (reply.status_code, reply.json()) == (400, {"error": error})
    assert served.process.poll() is None
    assert httpx.get(f"{served.url}/health", timeout=5).json()["status"] == "UP"


def test_a_config_with_some_of_the_labels_gets_those_and_says_which_it_lacks(served):
    """Label Studio ML backends predict the labels the project has: TOOL is left out, once
    said in /setup's answer and in the log."""
    notice = ("the labeling config lacks label(s) 'TOOL' (from_name 'label'): predictions of "
              "them are left out")
    for _ in range(2):
        setup = served.post("/setup", {"project": f"{served.project}.1", "schema": PRODUCTS_ONLY})
        assert setup.status_code == 200 and setup.json() == {
            "model_version": served.version(), "notice": notice}
    reply = served.post("/predict", {"tasks": [{"id": 1, "data": {"text": TEXTS[0]}},
                                               {"id": 2, "data": {"text": TEXTS[1]}}],
                                     "label_config": PRODUCTS_ONLY})
    assert [spans(r["result"]) for r in reply.json()["results"]] == [
        [("Acme drill", "PRODUCT", 14, 24)], []]
    assert served.log().count(notice) == 1


def test_label_studio_retrieves_predictions_from_the_connected_backend(served):
    version = expected_version(served)
    result = run_cli(["ls", "connect", "-c", str(served.config)], pythonpath=[served.site],
                     env=served.ls.env())
    assert result.returncode == 0, result.stderr
    assert f"to project {served.project}" in result.stderr
    client = served.ls.client()
    [backend] = client.ml_backends(served.project)
    assert (backend["url"], backend["title"], backend["is_interactive"]) == (
        served.url, version, False)
    project = client.request("GET", f"api/projects/{served.project}")
    assert (project["model_version"], project["evaluate_predictions_automatically"]) == (
        version, True)
    [hook] = [h for h in client.webhooks(served.project) if h["url"] == f"{served.url}/webhook"]
    assert set(hook["actions"]) == {"ANNOTATION_CREATED", "ANNOTATIONS_CREATED",
                                    "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"}
    before = served.predicted()
    ids = sorted(client.sdk.projects.import_tasks(served.project, request=[
        {"data": {"text": t}, "meta": {"preannot_id": key}} for t, key in zip(TEXTS, KEYS)],
        return_task_ids=True).task_ids)
    assert served.predicted() == before  # an import asks for nothing
    client.retrieve_predictions(served.project, ids[:2])
    assert served.predicted() == before + 2  # the two tasks asked for, in one request
    client.request("GET", f"api/tasks/{ids[2]}")  # the third is opened in the editor
    assert served.predicted() == before + 3
    got = {t["id"]: t["predictions"] for t in client.annotated_tasks(served.project)}
    assert served.predicted() == before + 3  # the Data Manager's list asks only for tasks
    # without predictions: none is left
    assert [[p["model_version"] for p in got[i]] for i in ids] == [[version]] * 3
    assert spans(got[ids[0]][0]["result"]) == [("Acme drill", "PRODUCT", 14, 24)]
    assert spans(got[ids[1]][0]["result"]) == [("Nova grinder", "TOOL", 7, 19)]
    assert spans(got[ids[2]][0]["result"]) == []  # "Vega planer" is not in terms-v1


def test_label_one_get_all_through_label_studios_interactive_endpoint(served):
    """A span labeled in the editor comes back with every other mention of its text (the
    rules' interact) and the pipeline's spans that overlap none of them."""
    version = expected_version(served)
    result = run_cli(["ls", "connect", "--interactive", "-c", str(served.config)],
                     pythonpath=[served.site], env=served.ls.env())
    assert result.returncode == 0, result.stderr
    client = served.ls.client()
    [backend] = client.ml_backends(served.project)
    assert backend["is_interactive"] is True
    text = "Acme drill, then a Nova grinder, then one more acme drill and an Acme drill."
    [task] = client.sdk.projects.import_tasks(served.project, request=[
        {"data": {"text": text}, "meta": {"preannot_id": "mail-z"}}], return_task_ids=True
        ).task_ids
    labeled = {"id": "u1", "from_name": "label", "to_name": "text", "type": "labels",
               "origin": "manual",
               "value": {"start": 0, "end": 10, "text": "Acme drill", "labels": ["PRODUCT"]}}
    answer = client.interactive_annotating(backend["id"], task, {"result": [labeled]})
    assert "errors" not in answer, answer
    assert answer["data"]["model_version"] == version
    # the rules are case-sensitive: "acme drill" is another text; both rule sets find the
    # other "Acme drill", which is answered once
    assert spans(answer["data"]["result"]) == [("Acme drill", "PRODUCT", 65, 75),
                                               ("Nova grinder", "TOOL", 19, 31)]
    direct = served.post("/predict", {"tasks": [{"id": task, "data": {"text": text},
                                                 "meta": {"preannot_id": "mail-z"}}],
                                      "params": {"context": {"result": [labeled]}}})
    assert direct.json()["results"][0]["result"] == answer["data"]["result"]
    client.sdk.tasks.delete(task)


def test_a_saved_annotation_is_harvested_in_the_background(served):
    client = served.ls.client()
    task = min(t["id"] for t in client.tasks(served.project, include="id"))
    client.sdk.annotations.create(task, result=[{
        "from_name": "label", "to_name": "text", "type": "labels",
        "value": {"start": 14, "end": 24, "text": "Acme drill", "labels": ["PRODUCT"]}}])
    health = wait_for(lambda: (h := httpx.get(f"{served.url}/health", timeout=5).json())
                      ["learning"]["harvests"] >= 1 and h["learning"]["busy"] is None and h,
                      "the webhook's harvest")
    assert health["learning"]["last_error"] is None
    assert health["learning"]["last_harvest"]["project"] == served.project
    metrics = json.loads((served.folder / "harvest" / "metrics.json").read_text())
    assert metrics["tasks"] == {"annotated": 1, "measured": 1, "unannotated": 2}
    lines = [json.loads(line) for line in
             (served.folder / "harvest" / "corrections.jsonl").read_text().splitlines()]
    [done] = [line for line in lines if line["status"] == "annotated"]
    assert (done["task"], done["data"]["text"], done["human"][0]["classification"]) == (
        task, TEXTS[0], "matched")


def test_start_training_harvests_and_trains_in_the_background(served):
    cards = [v.card for v in Registry(served.folder / "models").versions("terms")]
    assert [c["version"] for c in cards] == ["terms-v1", "terms-v2"]
    before = httpx.get(f"{served.url}/health", timeout=5).json()["learning"]["trainings"]
    reply = served.post("/webhook", {"action": "START_TRAINING",
                                     "project": {"id": served.project}})
    assert reply.json() == {"status": "ok", "action": "START_TRAINING"}
    health = wait_for(lambda: (h := httpx.get(f"{served.url}/health", timeout=5).json())
                      ["learning"]["trainings"] > before and h["learning"]["busy"] is None and h,
                      "the training START_TRAINING asked for")
    assert health["learning"]["last_error"] is None
    cards = [v.card for v in Registry(served.folder / "models").versions("terms")]
    assert [c["version"] for c in cards] == ["terms-v1", "terms-v2", "terms-v3"]
    assert cards[2]["harvest"]["train"] == 1  # the one task annotated in Label Studio
    ignored = served.post("/webhook", {"action": "PROJECT_UPDATED", "project": {"id": 1}})
    assert ignored.json() == {"status": "ignored", "action": "PROJECT_UPDATED"}


def test_a_promotion_is_served_at_once_without_a_restart(served):
    old = served.version()
    result = run_cli(["models", "promote", "terms-v2", "--no-push", "-c", str(served.config)],
                     pythonpath=[served.site])
    assert result.returncode == 0, result.stderr
    new = expected_version(served)
    assert new != old and new.endswith("+terms-v2")
    wait_for(lambda: served.version() == new, "the server to serve the promoted version")
    assert served.post("/setup", {"project": f"{served.project}.1"}).json() == {
        "model_version": new}
    reply = served.post("/predict", {"tasks": [{"id": 9, "data": {"text": TEXTS[2]}}]})
    assert spans(reply.json()["results"][0]["result"]) == [("Vega planer", "TOOL", 8, 19)]
    client = served.ls.client()  # Label Studio's entry and the project follow the version
    wait_for(lambda: client.ml_backends(served.project)[0]["title"] == new,
             "the backend's entry to be renamed")
    project = client.request("GET", f"api/projects/{served.project}")
    assert project["model_version"] == new
    assert served.process.poll() is None  # the same process throughout


def test_basic_auth_and_health_while_a_prediction_runs(tmp_path, labelstudio):
    site = pip_install(write_plugin(tmp_path / "plugin", "gated-plugin", GATED), tmp_path / "site")
    port = free_port()
    (tmp_path / "preannot.toml").write_text(
        f'[[annotators]]\ntype = "gated"\n[serve]\nport = {port}\nlearn = false\n')
    gate = tmp_path / "gate"
    auth = ("annotator-bot", "s3cret-pass")
    process = start_server(tmp_path / "preannot.toml",
                           {"GATE": str(gate), "BASIC_AUTH_USER": auth[0],
                            "BASIC_AUTH_PASS": auth[1]}, [site])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url, process, tmp_path / "serve.log", auth=auth)
        refused = httpx.get(f"{url}/health", timeout=5)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
        assert httpx.get(f"{url}/health", auth=("annotator-bot", "wrong"), timeout=5
                         ).status_code == 401
        answer = {}
        predicting = threading.Thread(target=lambda: answer.update(httpx.post(
            f"{url}/predict", json={"tasks": [{"id": 1, "data": {"text": "x"}}]}, auth=auth,
            timeout=120).json()))
        predicting.start()
        wait_for(lambda: Path(f"{gate}.started").exists(), "the prediction to start")
        assert httpx.get(f"{url}/health", auth=auth, timeout=10).json()["status"] == "UP"
        assert httpx.post(f"{url}/setup", json={}, auth=auth, timeout=10).status_code == 200
        assert predicting.is_alive()  # both answered while the prediction was held
        gate.touch()
        predicting.join(60)
        assert [spans(r["result"]) for r in answer["results"]] == [[("x", "X", 0, 1)]]
        assert auth[1] not in (tmp_path / "serve.log").read_text()
    finally:
        process.terminate()
        process.wait(30)


def test_disconnect_removes_the_backend_and_its_webhook(served):
    result = run_cli(["ls", "disconnect", "-c", str(served.config)], pythonpath=[served.site],
                     env=served.ls.env())
    assert result.returncode == 0, result.stderr
    assert f"removed 1 ML backend entry for {served.url}" in result.stderr
    client = served.ls.client()
    assert client.ml_backends(served.project) == []
    assert [h for h in client.webhooks(served.project) if served.url in h["url"]] == []
    project = client.request("GET", f"api/projects/{served.project}")
    assert project["evaluate_predictions_automatically"] is False


def test_events_are_debounced_and_a_learning_failure_is_reported(tmp_path):
    """Ten annotation events inside the debounce make one harvest; it fails (no Label Studio
    answers at the configured address): the reason is kept for /health, and the thread takes
    the next job."""
    from preannot.serve.learning import Learner

    (tmp_path / "preannot.toml").write_text(
        f'[labelstudio]\nurl = "http://127.0.0.1:{free_port()}"\nproject = 3\n'
        f'[serve]\ndebounce = 5\n')
    config = load_config(tmp_path / "preannot.toml")
    logged: list[str] = []
    with pytest.MonkeyPatch.context() as env:
        env.delenv("LABEL_STUDIO_URL", raising=False)
        env.setenv("LABEL_STUDIO_API_KEY", "not-a-real-token")
        learner = Learner(config, on_change=lambda: None, log=logged.append)
        for _ in range(10):  # an annotator saving every 0.2 s, well inside the 5 s debounce
            learner.annotations_changed(3)
            time.sleep(0.2)
        wait_for(lambda: learner.status["last_error"], "the failed harvest", 120)
        assert len(logged) == 1  # one job for the ten events, after they stopped
        learner.train_now(3)
        wait_for(lambda: len(logged) == 2, "the second job to fail too", 120)
        learner.stop()
    assert learner.status["last_error"].startswith("Unreachable: Label Studio at http://127.0.0.1:")
    assert learner.status["harvests"] == 0 and learner.status["busy"] is None
    assert all(line.startswith("learning failed: Unreachable") for line in logged)
    assert "not-a-real-token" not in " ".join(logged)


@pytest.fixture(scope="module")
def titled(labelstudio, tmp_path_factory):
    """A server configured with its project's title (as the README's example is), learning
    off, for a project labeling PRODUCT only."""
    folder = tmp_path_factory.mktemp("titled")
    (folder / "rules").mkdir()
    (folder / "rules" / "products.csv").write_text(
        "term,label\nAcme drill,PRODUCT\nNova grinder,TOOL\n")
    project = labelstudio.project(PRODUCTS_ONLY, "Product NER")
    title = labelstudio.client().project(project).title
    port = free_port()
    (folder / "preannot.toml").write_text(
        f'[[annotators]]\nname = "products"\ntype = "rules"\nrules = "rules"\n\n'
        f'[labelstudio]\nproject = "{title}"\n\n[serve]\nport = {port}\nlearn = false\n')
    process = start_server(folder / "preannot.toml", labelstudio.env())
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url, process, folder / "serve.log")
        yield Served(folder, url, project, process, labelstudio, PRODUCTS_ONLY, folder)
    finally:
        process.terminate()
        process.wait(30)


def test_a_project_configured_by_title_is_served_and_no_other(titled):
    title = titled.ls.client().project(titled.project).title
    refusal = (f"this backend serves project {titled.project} ({title!r}) ([labelstudio] "
               f"project in preannot.toml), not project 999")
    for path, body in (("/setup", {"schema": PRODUCTS_ONLY}),
                       ("/predict", {"tasks": [{"data": {"text": TEXTS[0]}}]})):
        other = titled.post(path, {**body, "project": "999.1"})
        assert (other.status_code, other.json()) == (400, {"error": refusal})
        own = titled.post(path, {**body, "project": f"{titled.project}.1700000000"})
        assert own.status_code == 200
    assert spans(own.json()["results"][0]["result"]) == [("Acme drill", "PRODUCT", 14, 24)]
    assert titled.log().count(f"serving project {titled.project} ({title!r})") == 1


def test_connect_and_push_to_a_project_with_some_of_the_labels(titled):
    """`ls connect` and `ls push` accept a project labeling PRODUCT only, say that TOOL is left
    out, and Label Studio gets no TOOL span, from the backend or from the push."""
    notice = ("the labeling config lacks label(s) 'TOOL' (from_name 'label'): predictions of "
              "them are left out")
    connected = run_cli(["ls", "connect", "-c", str(titled.config)], env=titled.ls.env())
    assert connected.returncode == 0, connected.stderr
    assert notice in " ".join(connected.stderr.split())
    client = titled.ls.client()
    text = "Acme drill and Nova grinder"
    ids = sorted(client.sdk.projects.import_tasks(titled.project, request=[
        {"data": {"text": text}}, {"data": {"text": text + "."}}], return_task_ids=True).task_ids)
    client.retrieve_predictions(titled.project, ids[:1])
    run_cli(["ls", "disconnect", "-c", str(titled.config)], env=titled.ls.env())
    pushed = run_cli(["ls", "push", "--existing", "-c", str(titled.config)],
                     env=titled.ls.env())
    assert pushed.returncode == 0, pushed.stderr
    assert notice in " ".join(pushed.stderr.split())
    got = {t["id"]: t["predictions"] for t in client.annotated_tasks(titled.project)}
    assert [[spans(p["result"]) for p in got[i]] for i in ids] == [
        [[("Acme drill", "PRODUCT", 0, 10)]], [[("Acme drill", "PRODUCT", 0, 10)]]]


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(), lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=12)


def shaped(value: st.SearchStrategy) -> st.SearchStrategy:
    """A field as Label Studio sends it, or any JSON value in its place."""
    return st.one_of(value, JSON)


def fields(**values: st.SearchStrategy) -> st.SearchStrategy:
    return shaped(st.fixed_dictionaries({k: shaped(v) for k, v in values.items()}))


def bodies(project: int) -> dict[str, st.SearchStrategy]:
    """Per endpoint: any JSON value, or a body of Label Studio's shape with any field wrong."""
    projects = st.sampled_from([f"{project}.1700000000", f"{project + 1}.1", str(project),
                                project, "\u00b2.1"])
    configs = st.sampled_from([PRODUCTS_ONLY, PRODUCTS_ONLY.replace("PRODUCT", "X"), "<View",
                               '<?xml version="1.0" encoding="nope"?><View/>'])
    coordinates = st.floats(0, 100)
    value = fields(start=st.integers(0, 30), end=st.integers(0, 30), text=st.text(max_size=12),
                   labels=st.lists(st.sampled_from(["PRODUCT", "TOOL"]), max_size=2),
                   x=coordinates, y=coordinates, width=coordinates, height=coordinates,
                   rle=st.lists(st.integers(0, 255), max_size=8),
                   points=st.lists(st.lists(coordinates, min_size=2, max_size=2), max_size=3))
    result = fields(type=st.sampled_from(["labels", "rectanglelabels", "brushlabels", "choices",
                                          "polygonlabels", "keypointlabels", "textarea"]),
                    from_name=st.just("label"), to_name=st.just("text"), value=value,
                    original_width=st.integers(1, 40), original_height=st.integers(1, 40))
    task = fields(id=st.integers(1, 99), data=fields(text=st.sampled_from(TEXTS)))
    return {
        "/setup": fields(project=projects, schema=configs, hostname=st.just("http://x")),
        "/predict": fields(tasks=st.lists(task, max_size=3), project=projects,
                           label_config=configs,
                           params=fields(context=fields(result=st.lists(result, max_size=2)))),
        "/webhook": fields(action=st.sampled_from(["ANNOTATION_CREATED", "START_TRAINING"]),
                           project=fields(id=projects)),
        "/train": fields(project=projects),
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_every_endpoint_answers_json_and_never_a_5xx(titled, data):
    path = data.draw(st.sampled_from(["/setup", "/predict", "/webhook", "/train"]))
    body = data.draw(bodies(titled.project)[path])
    reply = httpx.post(f"{titled.url}{path}", content=json.dumps(body).encode(), timeout=30)
    assert reply.status_code < 500, (path, body, reply.text)
    answer = reply.json()
    assert reply.status_code == 200 or set(answer) == {"error"}, (path, body, answer)
