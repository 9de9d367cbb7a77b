"""Production review end to end on a real Label Studio and a real spaCy rules pipeline:
calibrate (too few reviews, then enough), run (release, route, audit), rerun (nothing twice),
review and sync (released once, with the reviewer), status, suspension when audits fail, and
training data that holds the reviewed tasks but never the auto-accepted ones."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
import uuid

import pytest
from click.testing import CliRunner

from benchmarks.simulation.annotator import GoldText, SimulatedAnnotator
from benchmarks.simulation.config import rules, write_config
from preannot.cli import cli
from preannot.engine.config import load_config
from preannot.evaluation.split import fraction, in_eval_split
from preannot.production import calibrate as review_ops
from preannot.production.review_pass import AUDIT_SALT
from preannot.production.calibration import Calibration, in_fit_half
from preannot.training import flow

KNOWN = ["Acme widget", "Zeta bolt", "Omega drill", "Delta saw"]
UNKNOWN = "Nova grinder"  # the rules never find it: a human adds it
NEW_LABEL = "Zorro"       # a BRAND rule no calibration task ever fired
AUDIT_RATE = 0.25


def rows_of(prefix: str, n: int, seed: int, unknown_every: int = 10) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        product = UNKNOWN if i % unknown_every == 0 else rng.choice(KNOWN)
        text = f"Order {i}: please send 3 {product} to Lyon."
        rows.append({"id": f"{prefix}{i}", "text": text, "product": product,
                     "start": text.index(product)})
    return rows


def invoke(*args: str) -> str:
    result = CliRunner(env={"COLUMNS": "400"}).invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, labelstudio):
    """A rules pipeline pushed to a project, reviewed in two rounds and calibrated after each."""
    saved = {k: os.environ.get(k) for k in labelstudio.env()}
    os.environ.update(labelstudio.env())
    folder = tmp_path_factory.mktemp("review")
    title = f"review {uuid.uuid4().hex[:8]}"
    rows = rows_of("mail", 400, 5)
    (folder / "rules").mkdir()
    (folder / "rules" / "products.csv").write_text(
        "term,label\n" + "".join(f"{p},PRODUCT\n" for p in KNOWN) + f"{NEW_LABEL},BRAND\n")
    (folder / "mails.jsonl").write_text("".join(
        json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows))
    write_config(folder, inputs=["mails.jsonl"], annotators=[rules()],
                 training={"eval_fraction": 1.0}, labelstudio={"project": title},
                 # 149 right tasks can show target 0.98 (0.99 needs 299: a slower test)
                 review={"target_precision": 0.98, "audit_rate": AUDIT_RATE,
                         "project": f"{title} review"})
    config = str(folder / "preannot.toml")
    invoke("ls", "push", "-c", config, "--no-progress")
    client = labelstudio.client()
    project = client.project(title).id
    tasks = {t["meta"]["preannot_id"]: t for t in client.export(project)}

    human = reviewer(client, rows)

    def review(selected):
        for row in selected:
            human.annotate(tasks[row["id"]])

    review(rows[:100])
    first = invoke("ls", "pull", "-c", config), invoke("review", "calibrate", "-c", config)
    first_stored = json.loads((folder / "review" / "calibration.json").read_text())
    review(rows[100:])
    invoke("ls", "pull", "-c", config)
    second = invoke("review", "calibrate", "-c", config)
    yield {"folder": folder, "config": config, "rows": rows, "client": client,
           "first": (first[1], first_stored), "second": second}
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def reviewer(client, rows):
    """A careful reviewer: the prediction kept, the unknown product added (``annotate(task,
    relabel="BRAND")``: the prediction's label changed, the pipeline was wrong)."""
    return SimulatedAnnotator(client, {r["id"]: GoldText(r["text"], [(
        r["start"], r["start"] + len(r["product"]),
        "BRAND" if r["product"] == NEW_LABEL else "PRODUCT")]) for r in rows})


def test_calibrate_says_how_many_more_reviews_then_gives_a_guarantee(calibrated):
    folder, rows = calibrated["folder"], calibrated["rows"]
    config = load_config(folder / "preannot.toml")
    assert all(in_eval_split(r["id"], config.training.eval_fraction) for r in rows)
    output, stored = calibrated["first"]
    version = stored["current"]
    first = stored["versions"][version]
    tested = [r for r in rows[:100] if not in_fit_half({"preannot_id": r["id"]})]
    assert (first["fit_tasks"], first["test_tasks"]) == (100 - len(tested), len(tested))
    assert first["test_right"] == sum(r["product"] in KNOWN for r in tested)
    assert first["threshold"] is None and first["steps"] == []
    confident = len(tested) // 2  # the more confident half holds no error
    needed = math.ceil(149 / (confident / len(tested)) / (len(tested) / 100))
    assert f"needs about {needed - 100} more reviewed tasks" in output

    assert "auto-accept tasks whose calibrated probability is at least" in calibrated["second"]
    stored = json.loads((folder / "review" / "calibration.json").read_text())
    calibration = Calibration.from_json(stored["versions"][version])
    pushed = {t["meta"]["preannot_id"]: t
              for t in json.loads((folder / "out" / "predictions.json").read_text())}
    tested = [r for r in rows if not in_fit_half({"preannot_id": r["id"]})]
    above = [r for r in tested if calibration.probability(
        pushed[r["id"]]["predictions"][0]["result"]) >= calibration.threshold]
    chosen = calibration.chosen
    # the chosen point recounted from what the simulated reviewer did: every task the rules
    # found a product in is above it, none where they found nothing
    assert (chosen.tasks, chosen.errors) == (len(above), 0)
    assert {r["id"] for r in above} == {r["id"] for r in tested if r["product"] in KNOWN}
    assert chosen.tasks >= 149 and chosen.upper_error <= 0.02
    assert (folder / "review" / "calibration.html").read_text().count("<svg") == 2


def expected_decisions(rows):
    """What the review must decide for production rows, worked out from the rules alone."""
    route = {r["id"] for r in rows if r["product"] == UNKNOWN or NEW_LABEL in r["text"]}
    kept = [r["id"] for r in rows if r["id"] not in route]
    audit = {k for k in kept if fraction(k, AUDIT_SALT) < AUDIT_RATE}
    return route, audit, set(kept) - audit


def released(folder) -> list[dict]:
    path = folder / "review" / "released.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def review_tasks(client, title):
    project = client.project(title).id
    return project, {t["meta"]["preannot_id"]: t for t in client.export(project)}


def test_run_releases_routes_audits_once_and_sync_releases_the_reviewed(calibrated):
    folder, config, client = calibrated["folder"], calibrated["config"], calibrated["client"]
    rows = rows_of("prod", 40, 11, unknown_every=8)
    rows += [{"id": "brand0", "text": f"Please send a {NEW_LABEL} cap.", "product": NEW_LABEL,
              "start": 14}]
    (folder / "prod.jsonl").write_text("".join(
        json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows))
    route, audit, auto = expected_decisions(rows)
    assert len(route) == 6 and len(audit) >= 1 and len(auto) >= 20

    output = invoke("review", "run", str(folder / "prod.jsonl"), "-c", config)
    assert (f"decided {len(rows)} new tasks: {len(auto)} released automatically, {len(audit)} "
            f"released and audited, {len(route)} sent to review") in output
    assert [r["task"] for r in released(folder)] == [r["id"] for r in rows
                                                     if r["id"] in auto | audit]
    assert {r["decision"] for r in released(folder) if r["task"] in audit} == {"audit"}
    first = released(folder)[0]
    assert first["threshold"] is not None and first["probability"] >= first["threshold"]
    review_title = load_config(folder / "preannot.toml").review.project
    _, tasks = review_tasks(client, review_title)
    assert set(tasks) == route | audit
    assert {k: t["meta"]["preannot_review"]["decision"] for k, t in tasks.items()} == {
        **{k: "route" for k in route}, **{k: "audit" for k in audit}}
    assert tasks["brand0"]["meta"]["preannot_review"]["reason"] == \
        "label BRAND was never calibrated"

    # a rerun decides nothing again, releases nothing twice, routes nothing twice
    before = released(folder)
    assert "decided 0 new tasks" in invoke("review", "run", str(folder / "prod.jsonl"),
                                           "-c", config)
    assert released(folder) == before
    assert set(review_tasks(client, review_title)[1]) == route | audit

    # humans review everything routed and audited; a sync releases the routed ones, once
    human = reviewer(client, rows)
    for task in tasks.values():
        human.annotate(task)
    synced = invoke("review", "sync", "-c", config)
    assert f"{len(route)} reviewed tasks queued for release, {len(audit)} audits came back" \
        in synced
    humans = [r for r in released(folder) if r["decision"] == "human"]
    assert sorted(r["task"] for r in humans) == sorted(route)
    assert {r["labelstudio"]["reviewer"] for r in humans} == {client.check()["id"]}
    unknown = next(r for r in humans if r["task"] != "brand0")
    assert [h["value"]["text"] for h in unknown["regions"]] == [UNKNOWN]
    assert "0 reviewed tasks queued for release" in invoke("review", "sync", "-c", config)
    assert len(released(folder)) == len(rows)  # every task released exactly once

    status = json.loads(invoke("review", "status", "-c", config, "--json"))
    assert status["suspended"] is None
    assert status["tasks"] == {"seen": len(rows), "auto": len(auto), "audit": len(audit),
                               "routed": len(route), "reviewed": len(route) + len(audit),
                               "waiting": 0, "not_in_label_studio": 0}
    assert status["realised_precision"]["value"] == 1.0
    assert status["realised_precision"]["audited"] == len(audit)
    assert (folder / "review" / "status.html").read_text().count("<svg") == 2

    # the training data holds the reviewed production tasks, never the auto-accepted ones
    class Learns:  # what a NER trainer learns, for the loader
        learns, field = ("labels",), "text"

    data = flow.load_examples(load_config(folder / "preannot.toml"), Learns())
    keys = {e.task.id for e in data.train + data.dev + data.eval}
    assert route | audit <= keys and not keys & auto


def test_watch_releases_files_as_they_arrive_and_stops_on_ctrl_c(calibrated, labelstudio):
    folder, client = calibrated["folder"], calibrated["client"]
    review = load_config(folder / "preannot.toml").review.project
    inbox = folder / "inbox"
    inbox.mkdir()
    (inbox / "a.txt").write_text("Order 1: please send 3 Zeta bolt to Lyon.")
    log = (folder / "watch.log").open("w")  # a file, not a pipe: a full pipe would stall it
    watcher = subprocess.Popen(
        [sys.executable, "-m", "preannot", "review", "run", "--watch", str(inbox),
         "--interval", "0.5", "-c", calibrated["config"]], cwd=folder, text=True,
        stdout=log, stderr=log, env={**os.environ, **labelstudio.env(), "COLUMNS": "400"},
        # Ctrl-C as a terminal sends it, whatever this process inherited (a background job
        # starts with SIGINT ignored, and so would its children)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def wait_for(done, what):
        deadline = time.monotonic() + 180
        while not done():
            assert watcher.poll() is None, (folder / "watch.log").read_text()
            assert time.monotonic() < deadline, f"the watcher never {what}"
            time.sleep(0.5)

    try:
        wait_for(lambda: any(r["task"] == "inbox/a.txt" for r in released(folder)),
                 "released inbox/a.txt")
        # a file that arrives after a pass is found by a later one
        (inbox / "b.txt").write_text(f"Order 2: please send 3 {UNKNOWN} to Lyon.")
        wait_for(lambda: "inbox/b.txt" in review_tasks(client, review)[1],
                 "routed inbox/b.txt")
    finally:
        watcher.send_signal(signal.SIGINT)
        try:
            watcher.wait(timeout=120)
        finally:
            if watcher.poll() is None:
                watcher.kill()
            log.close()
    err = (folder / "watch.log").read_text()
    assert watcher.returncode == 130, err
    assert "stopped: decisions and releases so far are saved" in err
    assert [r["decision"] for r in released(folder) if r["task"] == "inbox/a.txt"] in (
        ["auto"], ["audit"])
    routed = review_tasks(client, review)[1]["inbox/b.txt"]["meta"]["preannot_review"]
    assert routed["decision"] == "route" and routed["reason"].startswith("below the threshold: probability ")


def test_a_label_studio_that_is_down_loses_nothing_and_routes_nothing_twice(calibrated,
                                                                           labelstudio):
    if labelstudio.server is None:
        pytest.skip("needs a server this session started (PREANNOT_TEST_LS_URL reuses another)")
    folder, config, client = calibrated["folder"], calibrated["config"], calibrated["client"]
    rows = rows_of("down", 12, 41, unknown_every=4)
    (folder / "down.jsonl").write_text("".join(
        json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows))
    route, audit, auto = expected_decisions(rows)
    assert len(route) == 3
    # tasks an earlier test left waiting (a watcher stopped between a push and its record)
    # are not this test's: count from here
    before = json.loads(invoke("review", "status", "-c", config, "--json"))["tasks"][
        "not_in_label_studio"]
    labelstudio.server.stop()
    try:
        output = invoke("review", "run", str(folder / "down.jsonl"), "-c", config)
    finally:
        labelstudio.server.start()
    assert "is not reachable" in output and "going on" in output
    assert (f"0 tasks reached the review project, {len(route) + len(audit)} wait for it"
            in output)
    # what the pipeline is sure of is released all the same
    assert sorted(r["task"] for r in released(folder) if r["task"].startswith("down")) == \
        sorted(auto | audit)
    status = json.loads(invoke("review", "status", "-c", config, "--json"))
    assert status["tasks"]["not_in_label_studio"] == before + len(route) + len(audit)
    # the server is back: the next pass routes what waited, once
    output = invoke("review", "run", str(folder / "down.jsonl"), "-c", config)
    assert "decided 0 new tasks" in output
    assert f"{len(route) + len(audit)} tasks reached the review project" in output
    review = load_config(folder / "preannot.toml").review.project
    waiting = [k for k in review_tasks(client, review)[1] if k.startswith("down")]
    assert sorted(waiting) == sorted(route | audit)
    assert json.loads(invoke("review", "status", "-c", config, "--json"))["tasks"][
        "not_in_label_studio"] == before
    assert "0 tasks reached the review project" in invoke(
        "review", "run", str(folder / "down.jsonl"), "-c", config)
    assert sorted(r["task"] for r in released(folder) if r["task"].startswith("down")) == \
        sorted(auto | audit)


def test_failing_audits_suspend_auto_accept(calibrated):  # last: it turns auto-accept off
    folder, config, client = calibrated["folder"], calibrated["config"], calibrated["client"]
    rows = [r for r in rows_of("late", 80, 23, unknown_every=1000)]
    (folder / "late.jsonl").write_text("".join(
        json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows))
    _, audit, _ = expected_decisions(rows)
    invoke("review", "run", str(folder / "late.jsonl"), "-c", config)
    _, tasks = review_tasks(client, load_config(folder / "preannot.toml").review.project)
    human = reviewer(client, rows)
    for key in audit:  # the reviewer says every audited task was wrong
        human.annotate(tasks[key], relabel="BRAND")
    invoke("review", "sync", "-c", config)
    status = invoke("review", "status", "-c", config)
    assert status.startswith("auto-accept SUSPENDED:")
    more = rows_of("after", 5, 31, unknown_every=1000)
    (folder / "after.jsonl").write_text("".join(
        json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in more))
    output = invoke("review", "run", str(folder / "after.jsonl"), "-c", config)
    assert "decided 5 new tasks: 0 released automatically, 0 released and audited, 5 sent to " \
        "review" in output
    assert "to review, auto-accept is suspended: 5" in output

    # a promotion changes the pipeline's version: it is calibrated at once, afresh, on the
    # reviewed evaluation tasks, which now hold the production tasks reviewed since, the
    # audits the reviewer called wrong among them: no threshold passes any more
    stored = json.loads((folder / "review" / "calibration.json").read_text())
    old_version = stored["current"]
    with (folder / "rules" / "products.csv").open("a") as f:
        f.write("Quasar lamp,PRODUCT\n")  # a new rule: a new rules version
    cfg = load_config(folder / "preannot.toml")
    logged: list[str] = []
    done = review_ops.recalibrate_if_used(cfg, logged.append)
    assert done.calibration.model_version != old_version
    assert logged == [f"production review recalibrated for {done.calibration.model_version}: "
                      f"{done.verdict}"]
    stored = json.loads((folder / "review" / "calibration.json").read_text())
    assert stored["current"] == done.calibration.model_version
    assert set(stored["versions"]) == {old_version, done.calibration.model_version}
    tested = done.calibration.test_tasks
    assert done.calibration.fit_tasks + tested == 400 + len(reviewed_before(folder))
    assert done.calibration.threshold is None
    assert invoke("review", "status", "-c", config).startswith(
        "auto-accept off: no calibrated threshold")
    later = rows_of("resumed", 4, 37, unknown_every=1000)
    (folder / "resumed.jsonl").write_text("".join(
        json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in later))
    output = invoke("review", "run", str(folder / "resumed.jsonl"), "-c", config)
    assert "decided 4 new tasks: 0 released automatically, 0 released and audited, 4 sent to " \
        f"review (calibration {done.calibration.id})" in output
    assert "to review, the calibration guarantees no threshold yet: 4" in output


def reviewed_before(folder) -> list[dict]:
    """The production tasks humans reviewed, as `review sync` harvested them."""
    path = folder / "review" / "harvest" / "corrections.jsonl"
    return [r for r in map(json.loads, path.read_text().splitlines())
            if r["status"] == "annotated"]
