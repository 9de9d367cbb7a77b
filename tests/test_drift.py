"""The drift monitor in production review, end to end on a real Label Studio and a real spaCy
rules pipeline: quiet on a same-distribution stream; an alarm on a new product line and a new
writing style, which suspends auto-accept (the route reason says drift), raises the audit rate
and samples drifted tasks into the labeling project ranked first; an alarm history that a new
process finds; and an alarm that clears only after a recalibration on enough post-drift
reviews passes (the tests run in order on one module-scoped setup)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import uuid

import pytest
from click.testing import CliRunner

from benchmarks.simulation.annotator import GoldText, SimulatedAnnotator
from benchmarks.simulation.config import rules, write_config
from preannot.cli import cli
from preannot.engine.config import load_config
from preannot.evaluation.split import fraction
from preannot.production.review_pass import AUDIT_SALT

KNOWN = ["Acme widget", "Zeta bolt", "Omega drill", "Delta saw"]
NEW = ["Helix pump", "Orbit lathe", "Quasar lamp"]  # the new product line: no rule knows it
AUDIT, DRIFT_AUDIT = 0.1, 0.5


def rows_of(prefix, n, seed, *, shifted=False):
    """Order e-mails; ``shifted``: half of them a new product, half in another style."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        new = shifted and i % 2 == 0
        product = rng.choice(NEW if new else KNOWN)
        if shifted and i % 4 in (1, 2):
            text = f"Hi team, we urgently need {i} x {product} shipped asap. Thanks!"
        else:
            text = f"Order {i}: please send 3 {product} to {rng.choice(['Lyon', 'Paris'])}."
        rows.append({"id": f"{prefix}{i}", "text": text, "product": product,
                     "start": text.index(product)})
    return rows


def write(folder, name, rows):
    (folder / name).write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n"
                                       for r in rows))
    return str(folder / name)


def invoke(*args):
    result = CliRunner(env={"COLUMNS": "400"}).invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def reviewer(client, rows):
    """The careful reviewer: the prediction kept, a product the rules missed added."""
    return SimulatedAnnotator(client, {r["id"]: GoldText(
        r["text"], [(r["start"], r["start"] + len(r["product"]), "PRODUCT")]) for r in rows})


def set_drift(folder, **settings):
    text = (folder / "preannot.toml").read_text().split("[drift]")[0]
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
    (folder / "preannot.toml").write_text(f"{text}[drift]\n{lines}")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, labelstudio):
    saved = {k: os.environ.get(k) for k in labelstudio.env()}
    os.environ.update(labelstudio.env())
    folder = tmp_path_factory.mktemp("drift")
    title = f"drift {uuid.uuid4().hex[:8]}"
    (folder / "rules").mkdir()
    (folder / "rules" / "products.csv").write_text(
        "term,label\n" + "".join(f"{p},PRODUCT\n" for p in KNOWN))
    rows = rows_of("cal", 160, 3)
    write(folder, "cal.jsonl", rows)
    write_config(folder, inputs=["cal.jsonl"], annotators=[rules()],
                 training={"eval_fraction": 1.0}, labelstudio={"project": title},
                 review={"target_precision": 0.95, "audit_rate": AUDIT,
                         "project": f"{title} review"},
                 drift={"window": 100, "min_window": 50, "check_every": 50, "sample": 10,
                        "min_post_drift": 20, "audit_rate": DRIFT_AUDIT})
    config = str(folder / "preannot.toml")
    invoke("ls", "push", "-c", config, "--no-progress")
    client = labelstudio.client()
    project = client.project(title).id
    tasks = {t["meta"]["preannot_id"]: t for t in client.export(project)}
    human = reviewer(client, rows)
    for row in rows:
        human.annotate(tasks[row["id"]])
    invoke("ls", "pull", "-c", config)
    assert "auto-accept tasks whose calibrated probability" in invoke("review", "calibrate",
                                                                      "-c", config)
    yield {"folder": folder, "config": config, "client": client, "title": title}
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def status(config):
    return json.loads(invoke("review", "status", "-c", config, "--json"))


def test_a_same_distribution_stream_raises_no_alarm(setup):
    folder, config = setup["folder"], setup["config"]
    rows = rows_of("same", 150, 7)
    output = invoke("review", "run", write(folder, "same.jsonl", rows), "-c", config)
    audit = {r["id"] for r in rows if fraction(r["id"], AUDIT_SALT) < AUDIT}
    assert (f"decided 150 new tasks: {150 - len(audit)} released automatically, {len(audit)} "
            "released and audited, 0 sent to review") in output
    assert "drift: none (" in output
    figures = status(config)
    assert figures["drift"]["headline"] == "drift: none at the last check (100 tasks, 5 signals " \
        "tested)"
    last = figures["drift"]["checks"][-1]["signals"]
    assert {s["name"] for s in last if s["p_value"] is not None} == {
        "unseen words", "text embedding (TF-IDF)", "calibrated confidence",
        "scores rules/PRODUCT", "empty predictions"}  # one label, nothing reviewed yet
    # a check after each 50 tasks once the window holds 50: three, none fired
    assert [c["fired"] for c in figures["drift"]["checks"]] == [[], [], []]
    assert figures["drift"]["alarms"] == []


def test_a_new_product_line_raises_an_alarm_and_the_loop_reacts(setup):
    folder, config, client = setup["folder"], setup["config"], setup["client"]
    rows = rows_of("shift", 100, 9, shifted=True)
    output = invoke("review", "run", write(folder, "shift.jsonl", rows), "-c", config)
    # the check before the first 50 shifted tasks are decided fires: the drift they bring is
    # caught before any of them is released; all 100 go to review because of it
    assert "decided 100 new tasks: 0 released automatically, 0 released and audited, 100 sent " \
        "to review" in output
    assert "to review, drift: 100" in output
    assert "DRIFT alarm 1 since task 200" in output
    figures = status(config)
    alarm = figures["drift"]["active"]
    assert alarm["id"] == 1 and alarm["raised_seq"] == 200 and alarm["labels"] is None
    assert {"unseen words", "text embedding (TF-IDF)", "empty predictions"} <= set(
        alarm["signals"])
    review = client.project(f"{setup['title']} review").id
    routed = {t["meta"]["preannot_id"]: t["meta"]["preannot_review"]
              for t in client.export(review)}
    assert {k for k, m in routed.items() if m["reason"].startswith("drift:")} == \
        {r["id"] for r in rows}
    assert routed[rows[0]["id"]]["reason"].startswith(
        "drift: auto-accept suspended for every label while alarm 1 (")
    # ten drifted tasks sampled into the labeling project, served first (score 0: Label
    # Studio's uncertainty sampling serves the lowest first), new products before the rest
    labeling = {t["meta"]["preannot_id"]: t for t in client.export(client.project(
        setup["title"]).id)}
    sampled = [k for k in labeling if k.startswith("shift")]
    assert len(sampled) == 10
    assert all(labeling[k]["predictions"][0]["score"] == 0.0 for k in sampled)
    by_id = {r["id"]: r for r in rows}
    assert all(by_id[k]["product"] in NEW for k in sampled)
    kinds = [e["kind"] for e in figures["drift"]["events"]]
    assert kinds.count("reaction") == 3 and "signal" in kinds
    assert "DRIFT alarm 1" in invoke("review", "status", "-c", config).splitlines()[1]
    plotted = {s["name"] for c in figures["drift"]["checks"] for s in c["signals"]
               if s["p_value"] is not None}
    page = (folder / "review" / "status.html").read_text()
    assert page.count("<svg") == 1 + len(plotted)  # the labels' bars, a plot per signal
    assert all(f'aria-label="{name}"' in page for name in plotted)


def test_while_the_alarm_lasts_the_audit_rate_is_raised(setup):
    folder, config = setup["folder"], setup["config"]
    set_drift(setup["folder"], window=100, min_window=50, check_every=50, sample=10,
              min_post_drift=20, audit_rate=DRIFT_AUDIT, suspend="off")
    rows = rows_of("hold", 20, 13)
    output = invoke("review", "run", write(folder, "hold.jsonl", rows), "-c", config)
    audit = {r["id"] for r in rows if fraction(r["id"], AUDIT_SALT) < DRIFT_AUDIT}
    assert len(audit) > len({r["id"] for r in rows if fraction(r["id"], AUDIT_SALT) < AUDIT})
    assert (f"decided 20 new tasks: {20 - len(audit)} released automatically, {len(audit)} "
            "released and audited, 0 sent to review") in output


def test_the_alarm_history_survives_a_restart(setup, labelstudio):
    done = subprocess.run([sys.executable, "-m", "preannot", "drift", "-c", setup["config"],
                           "--json"], capture_output=True, text=True, cwd=setup["folder"],
                          env={**os.environ, **labelstudio.env()}, timeout=300)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["alarm"]["id"] == 1 and found["alarm"]["raised_seq"] == 200
    assert [a["id"] for a in found["alarms"]] == [1]
    assert found["alarms"][0]["cleared"] is None
    assert any(e["kind"] == "reaction" and "sampled" in e["detail"] for e in found["events"])
    assert any(t["term"] in NEW for t in found["new_terms"]) is False  # nothing reviewed yet


def test_only_a_passing_recalibration_on_post_drift_reviews_clears_the_alarm(setup):
    folder, config, client = setup["folder"], setup["config"], setup["client"]
    set_drift(folder, window=100, min_window=50, check_every=50, sample=10, min_post_drift=20,
              audit_rate=DRIFT_AUDIT)
    rows = {r["id"]: r for r in rows_of("shift", 100, 9, shifted=True)}
    review = client.project(f"{setup['title']} review").id
    tasks = {t["meta"]["preannot_id"]: t for t in client.export(review)}
    post = [k for k in tasks if k in rows and int(k[5:]) >= 50]  # decided after the alarm
    human = reviewer(client, rows.values())
    for key in post[:10]:
        human.annotate(tasks[key])
    invoke("review", "sync", "-c", config)
    # what the reviewers added, unknown to the calibration's tasks: listed, with the patch
    output = invoke("drift", "-c", config)
    added = sorted({rows[k]["product"] for k in post[:10] if rows[k]["product"] in NEW})
    listed = [line.split("'")[1] for line in output.splitlines() if " as PRODUCT: " in line]
    assert sorted(listed) == added
    assert "preannot ls suggest-rules -c CONFIG --rules RULES_DIR -i " in output
    invoke("review", "calibrate", "-c", config)
    output = invoke("drift", "-c", config)
    assert output.startswith("DRIFT alarm 1")
    kept = [e["detail"] for e in status(config)["drift"]["events"] if e["kind"] == "kept"]
    assert len(kept) == 1 and kept[0].endswith(
        "holds 10 reviewed tasks decided since the alarm, 20 needed")

    for key in post[10:]:
        human.annotate(tasks[key])
    invoke("review", "sync", "-c", config)
    calibrated = invoke("review", "calibrate", "-c", config)
    assert "auto-accept tasks whose calibrated probability" in calibrated
    output = invoke("drift", "-c", config)
    assert "alarm cleared: recalibration" in output
    assert f"on {len(post)} reviewed tasks decided since the alarm" in output
    figures = status(config)
    assert figures["drift"]["active"] is None
    assert figures["drift"]["alarms"][0]["cleared_by"].startswith("recalibration ")
    # reactions undone: the usual audit rate, nothing routed for drift
    later = rows_of("after", 20, 17)
    output = invoke("review", "run", write(folder, "after.jsonl", later), "-c", config)
    audit = {r["id"] for r in later if fraction(r["id"], AUDIT_SALT) < AUDIT}
    assert (f"decided 20 new tasks: {20 - len(audit)} released automatically, {len(audit)} "
            "released and audited, 0 sent to review") in output
    assert load_config(folder / "preannot.toml").drift.audit_rate == DRIFT_AUDIT
