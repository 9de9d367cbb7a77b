"""The workspace: one place for `.preannot/`, one set of SQLite settings, versioned stores.

`fixtures/workspace_v1/project` was written by preannot before stores had migrations
(`fixtures/workspace_v1/build.py` says how): opening it must keep every row and mark each
store at version 1; a file from a newer preannot is refused.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from helpers import run_cli
from preannot.engine.config import load_config
from preannot.engine.ledger import Ledger
from preannot.engine.migrations import WorkspaceTooNew
from preannot.harvest.store import HarvestStore
from preannot.production.alarms import Alarms
from preannot.production.decisions import Decisions
from preannot.production.outbox import Outbox
from preannot.selection.store import EmbeddingStore

FIXTURE = Path(__file__).parent / "fixtures" / "workspace_v1" / "project"
SOURCE = "http://localhost:8080#1"
LEDGER_STORES = ["alarms", "decisions", "harvest", "ledger", "outbox"]


@pytest.fixture
def config(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "project")
    return load_config(tmp_path / "project" / "preannot.toml")


def recorded(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as db:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = '_migrations'").fetchone():
            return []
        return sorted(db.execute("SELECT store, name FROM _migrations"))


def test_the_workspace_names_every_place_under_preannot(config):
    ws = config.workspace
    assert ws.root == config.base_dir / ".preannot" == config.state_dir
    assert {name: getattr(ws, name).relative_to(ws.root).as_posix() for name in (
        "ledger", "embeddings", "index", "models", "cache", "training", "labelstudio")} == {
        "ledger": "ledger.sqlite", "embeddings": "embeddings.sqlite", "index": "index",
        "models": "models", "cache": "cache", "training": "training",
        "labelstudio": "labelstudio"}
    assert config.registry_dir == ws.models and config.context().cache_dir == ws.cache


def test_a_workspace_from_before_migrations_is_marked_at_version_1_without_loss(config):
    ws = config.workspace
    assert recorded(ws.ledger) == [] and recorded(ws.embeddings) == []

    with sqlite3.connect(ws.ledger) as db:  # the run ledger keys rows by the absolute output
        (output,) = db.execute("SELECT DISTINCT output FROM items").fetchone()
    ledger = Ledger(ws.ledger, output)
    states = ledger.states(["t0", "t1", "t2", "t3"])
    assert {key: (s.status, s.checksum) for key, s in states.items()} == {
        "t0": ("done", "5a9fddf6fe849d006adc9a67"), "t1": ("done", "1eb25fdabf749969e7484149"),
        "t2": ("done", "6ddd9347f2302bf8313633d5")}
    assert {s.run for s in states.values()} == {1796694446482246873}
    ledger.close()

    harvest = HarvestStore(ws.ledger, SOURCE)
    assert harvest.watermark == "2026-12-02T10:00:00Z"
    tasks = list(harvest.tasks())
    assert [(t["id"], t["updated_at"], t["annotations"][0]["result"][0]["value"]["labels"],
             t["preannot_spec"]) for t in tasks] == [
        (1, "2026-12-01T10:00:00Z", ["PRODUCT"], "bcbb2449a322"),
        (2, "2026-12-02T10:00:00Z", ["PRODUCT"], "bcbb2449a322")]
    assert harvest.own_writes() == {2: "2026-12-02T11:00:00Z"}
    assert harvest.churn(min_changes=1) == [
        {"task": 1, "annotation": 11, "changes": 1, "reverted": False}]
    assert harvest.earlier_labels("another") == {"BRAND", "PRODUCT"}
    harvest.close()

    decisions = Decisions(ws.ledger)
    assert [(r["key"], r["decision"], r["probability"], r["labels"], r["pushed"], r["right"])
            for r in decisions.rows()] == [("t0", "auto", 0.97, "BRAND", 0, None),
                                           ("t1", "audit", 0.95, "BRAND,PRODUCT", 1, 1)]
    decisions.db.close()

    alarms = Alarms(ws.ledger)
    [alarm] = alarms.alarms()
    assert (alarm.id, alarm.raised_seq, alarm.calibration, alarm.signals, alarm.labels,
            alarm.cleared) == (1, 2, "cal-1", ["confidence"], ["BRAND"], None)
    assert [(p["key"], p["score"], p["right"]) for p in alarms.window(10)] == [
        ("t0", 0.97, None), ("t1", 0.95, True)]
    [check] = alarms.checks()
    assert (check["tasks"], check["alarm"]) == (2, 1)
    assert [(e["kind"], e["detail"]) for e in alarms.events()] == [("sampled", "1 task")]
    assert alarms.sampled(1) == {"t1"}
    alarms.close()

    outbox = Outbox(ws.ledger)
    assert outbox.counts() == {"pending": 1, "delivered": 0, "errors": 0,
                               "decisions": {"auto": {"pending": 1, "delivered": 0}}}
    assert outbox.get("t0")["record"] == {"id": "t0", "labels": ["BRAND"]}
    outbox.close()

    store = EmbeddingStore(ws.embeddings)
    assert store.tasks_of("tfidf-1", [1, 2]) == {1: "t0", 2: "t1"}
    [vector] = store.cached("tfidf-1", ["4eb3df57bb451c9d252db663"]).values()
    assert vector.tolist() == pytest.approx([0.6, 0.8])
    store.close()

    assert recorded(ws.ledger) == sorted([(store, "m001_initial") for store in LEDGER_STORES]
                                         + [("decisions", "m002_content")])
    assert recorded(ws.embeddings) == [("embeddings", "m001_initial")]
    # the column the second migration added is there, empty for the rows decided before it
    assert [row[1] for row in Decisions(ws.ledger).db.execute(
        "PRAGMA table_info(review_decisions)")][-1] == "content"


def test_opening_again_applies_nothing_and_every_store_has_the_same_settings(config):
    ws = config.workspace
    stores = [Ledger(ws.ledger, "out"), HarvestStore(ws.ledger, SOURCE), Decisions(ws.ledger),
              Alarms(ws.ledger), Outbox(ws.ledger), EmbeddingStore(ws.embeddings)]
    stores += [Ledger(ws.ledger, "out"), EmbeddingStore(ws.embeddings)]
    assert len(recorded(ws.ledger)) == 6 and len(recorded(ws.embeddings)) == 1
    for store in stores:
        assert [store.db.execute(f"PRAGMA {name}").fetchone()[0] for name in (
            "journal_mode", "synchronous", "busy_timeout")] == ["wal", 1, 60000]
        store.db.close()


def test_a_workspace_from_a_newer_preannot_is_refused_with_one_line(config):
    ws = config.workspace
    Ledger(ws.ledger, "out").close()
    with sqlite3.connect(ws.ledger) as db:
        db.execute("INSERT INTO _migrations VALUES ('ledger', 'm002_from_the_future', 'now')")
    with pytest.raises(WorkspaceTooNew, match="upgrade preannot"):
        Ledger(ws.ledger, "out")
    Outbox(ws.ledger).close()  # another store of the same file is still at a known version

    done = run_cli(["run", "-c", str(config.base_dir / "preannot.toml"), "--no-progress"])
    assert done.returncode != 0
    [line] = [line for line in done.stderr.splitlines() if "m002_from_the_future" in line]
    assert "newer preannot" in line and "upgrade preannot" in line
    assert "Traceback" not in done.stderr
