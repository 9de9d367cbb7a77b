"""Harvest what humans did with the predictions: fetch changed tasks, classify every region.

Fetching is incremental and paged. The server filters: Label Studio's task list, asked for
annotations and full predictions, keeps the tasks whose ``updated_at`` is past the watermark
(Label Studio bumps a task's ``updated_at`` when one of its annotations is created, updated,
skipped or deleted), a page of a few hundred tasks per request. Nothing is created on the
server (an export snapshot of a large project outlasts any timeout, competes with annotators
for the database, and leaves its file behind), and only reads are retried.
Fetched tasks are kept raw in the ledger's SQLite file, keyed by server, project and task, and
the watermark moves only once a pull is complete: an interrupted pull is simply redone. Tasks
deleted in Label Studio leave the store at the next pull, and so the metrics and training data.
Classification happens when outputs are written (:mod:`preannot.evaluation.corrections`), so
new thresholds need no refetch.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import datetime, timezone
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..annotator import batches
from ..engine.migrations import Migrations, script
from ..engine.workspace import connect
from ..labelstudio.client import Client
from ..labelstudio.labeling_config import spec as spec_of

SCHEMA = """
CREATE TABLE IF NOT EXISTS harvest_state (source TEXT PRIMARY KEY, watermark TEXT);
CREATE TABLE IF NOT EXISTS harvest_tasks (
    source TEXT NOT NULL, task INTEGER NOT NULL, updated_at TEXT, raw TEXT NOT NULL,
    PRIMARY KEY (source, task));
CREATE TABLE IF NOT EXISTS harvest_specs (
    source TEXT NOT NULL, version TEXT NOT NULL, spec TEXT NOT NULL, seen_at TEXT NOT NULL,
    PRIMARY KEY (source, version));
CREATE TABLE IF NOT EXISTS harvest_history (
    source TEXT NOT NULL, task INTEGER NOT NULL, annotation INTEGER NOT NULL, seq INTEGER NOT NULL,
    digest TEXT NOT NULL, PRIMARY KEY (source, task, annotation, seq));
CREATE TABLE IF NOT EXISTS harvest_own_writes (
    source TEXT NOT NULL, task INTEGER NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (source, task));
"""

MIGRATIONS = Migrations("harvest")


@MIGRATIONS
def m001_initial(db: sqlite3.Connection) -> None:
    """The tables as they were before stores had versions, created only where missing: a
    file written then is marked at version 1 with its rows untouched."""
    script(db, SCHEMA)


SPEC_KEY = "preannot_spec"
"""The stored task's labeling-config version: the one current when its annotations last
changed (a task fetched again with the same annotations keeps its version)."""


def result_digest(result: Any) -> str:
    """What an annotation says (labels and geometry, not ids or times), as a short hash."""
    values = sorted(json.dumps([item.get("type"), item.get("from_name"), item.get("value")],
                               sort_keys=True) for item in result or [] if isinstance(item, dict))
    return hashlib.sha256("\n".join(values).encode()).hexdigest()[:16]


class HarvestStore:
    """Pulled tasks and the pull watermark of one project, in the run ledger's SQLite file."""

    def __init__(self, path: Path, source: str) -> None:
        self.source = source
        """``<server url>#<project id>``: two servers or projects never share state."""
        self.db = connect(path, MIGRATIONS)

    @property
    def watermark(self) -> str | None:
        row = self.db.execute("SELECT watermark FROM harvest_state WHERE source = ?",
                              (self.source,)).fetchone()
        return row[0] if row else None

    def save(self, tasks: Sequence[dict[str, Any]], spec: str | None = None) -> None:
        """Store fetched tasks; ``spec``: the labeling-config version now. Each annotation's
        content is appended to its history when it changed since the last pull."""
        rows, history = [], []
        for t in tasks:
            changed = False
            for a in t.get("annotations") or []:
                if not isinstance(a, dict) or a.get("id") is None:
                    continue
                digest = result_digest(a.get("result"))
                last = self.db.execute(
                    "SELECT seq, digest FROM harvest_history WHERE source = ? AND task = ? AND "
                    "annotation = ? ORDER BY seq DESC LIMIT 1", (self.source, t["id"], a["id"])
                ).fetchone()
                if last is None or last[1] != digest:
                    changed = True
                    history.append((self.source, t["id"], a["id"], (last[0] + 1) if last else 0,
                                    digest))
            if spec is not None:
                t = dict(t)
                before = None if changed else self.db.execute(
                    "SELECT raw FROM harvest_tasks WHERE source = ? AND task = ?",
                    (self.source, t["id"])).fetchone()
                t[SPEC_KEY] = (json.loads(before[0]).get(SPEC_KEY) if before else None) or spec
            rows.append((self.source, t["id"], t.get("updated_at"), json.dumps(t)))
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO harvest_tasks (source, task, updated_at, raw) VALUES (?, ?, ?, ?)",
                rows)
            self.db.executemany("INSERT OR REPLACE INTO harvest_history VALUES (?, ?, ?, ?, ?)",
                                history)

    def wrote(self, task_id: int, updated_at: str | None) -> None:
        """preannot itself changed the task (a tab's value in its data) at ``updated_at``: a
        pull that finds it so is not reporting a human's change."""
        if updated_at:
            with self.db:
                self.db.execute("INSERT OR REPLACE INTO harvest_own_writes VALUES (?, ?, ?)",
                                (self.source, task_id, updated_at))

    def own_writes(self) -> dict[int, str]:
        return dict(self.db.execute("SELECT task, updated_at FROM harvest_own_writes "
                                    "WHERE source = ?", (self.source,)))

    def earlier_labels(self, version: str) -> frozenset[str]:
        """Every label of the recorded specs other than ``version``."""
        return frozenset(label for (raw,) in self.db.execute(
            "SELECT spec FROM harvest_specs WHERE source = ? AND version != ?",
            (self.source, version)) for c in json.loads(raw)["controls"] for label in c["labels"])

    def churn(self, min_changes: int = 2) -> list[dict[str, Any]]:
        """Annotations changed at least ``min_changes`` times across pulls, most first;
        ``reverted``: one came back to something it had said before (back and forth)."""
        seqs: dict[tuple[int, int], list[str]] = {}
        for task, annotation, digest in self.db.execute(
                "SELECT task, annotation, digest FROM harvest_history WHERE source = ? "
                "ORDER BY task, annotation, seq", (self.source,)):
            seqs.setdefault((task, annotation), []).append(digest)
        out = [{"task": task, "annotation": annotation, "changes": len(states) - 1,
                "reverted": len(set(states)) < len(states)}
               for (task, annotation), states in seqs.items() if len(states) - 1 >= min_changes]
        return sorted(out, key=lambda r: (-r["changes"], r["task"]))

    def record_spec(self, found: dict[str, Any]) -> dict[str, Any] | None:
        """Remember the labeling config's :func:`~.labeling_config.spec` of this pull; the
        previous one when it differs (the spec changed), else None."""
        before = self.db.execute(
            "SELECT spec FROM harvest_specs WHERE source = ? ORDER BY seen_at DESC, rowid DESC "
            "LIMIT 1", (self.source,)).fetchone()
        previous = json.loads(before[0]) if before else None
        if previous is None or previous["version"] != found["version"]:
            with self.db:
                self.db.execute("INSERT OR REPLACE INTO harvest_specs VALUES (?, ?, ?, ?)",
                                (self.source, found["version"], json.dumps(found),
                                 datetime.now(timezone.utc).isoformat()))
        return previous if previous and previous["version"] != found["version"] else None

    def advance(self, watermark: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO harvest_state (source, watermark) VALUES (?, ?)",
                            (self.source, watermark))

    def keep_only(self, task_ids: set[int]) -> int:
        """Drop the stored tasks not in ``task_ids`` (deleted in Label Studio): how many."""
        stored = [row[0] for row in self.db.execute(
            "SELECT task FROM harvest_tasks WHERE source = ?", (self.source,))]
        gone = [(self.source, task) for task in stored if task not in task_ids]
        with self.db:
            self.db.executemany("DELETE FROM harvest_tasks WHERE source = ? AND task = ?", gone)
        return len(gone)

    def forget(self) -> None:
        """Start over (``ls pull --full``); annotation histories stay (they span pulls)."""
        with self.db:
            self.db.execute("DELETE FROM harvest_state WHERE source = ?", (self.source,))
            self.db.execute("DELETE FROM harvest_tasks WHERE source = ?", (self.source,))
            self.db.execute("DELETE FROM harvest_own_writes WHERE source = ?", (self.source,))

    def tasks_holding(self, key: str, task_ids: set[int]) -> Iterator[dict[str, Any]]:
        """The stored tasks in ``task_ids`` or whose data holds ``key``, by task id (the
        others are never decoded: a tab's bookkeeping stays quick on a large project)."""
        for task, raw in self.db.execute(
                "SELECT task, raw FROM harvest_tasks WHERE source = ? AND (raw LIKE ? ESCAPE '\\')"
                " ORDER BY task", (self.source, f'%"{_like(key)}":%')):
            yield json.loads(raw)
        for chunk in batches(sorted(task_ids), 500):
            marks = ",".join("?" * len(chunk))
            for (raw,) in self.db.execute(
                    f"SELECT raw FROM harvest_tasks WHERE source = ? AND task IN ({marks}) AND "
                    "NOT (raw LIKE ? ESCAPE '\\') ORDER BY task",
                    (self.source, *chunk, f'%"{_like(key)}":%')):
                yield json.loads(raw)

    def tasks(self) -> Iterator[dict[str, Any]]:
        """Every pulled task, by task id, streamed."""
        for (raw,) in self.db.execute("SELECT raw FROM harvest_tasks WHERE source = ? ORDER BY task",
                                      (self.source,)):
            yield json.loads(raw)

    def close(self) -> None:
        self.db.close()


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass
class PullSummary:
    fetched: int = 0
    """Tasks changed since the last pull (not counting preannot's own writes to them)."""
    removed: int = 0
    """Tasks pulled before that are no longer in the project (deleted there)."""
    watermark: str | None = None
    spec: dict[str, Any] | None = None
    """The labeling config's controls and labels now, with its ``version``."""
    previous_spec: dict[str, Any] | None = None
    """The spec of the last pull, when it changed since."""


def pull(client: Client, project_id: int, store: HarvestStore, *, batch: int = 1000,
         progress: Callable[[int], None] | None = None,
         label_config: str | None = None) -> PullSummary:
    """Fetch the tasks changed since the last pull into ``store``, drop the ones deleted in
    Label Studio, and move the watermark at the end.

    The new watermark is the project's latest change *before* the walk: a task changed while
    the pages are read has a later ``updated_at``, so the next pull fetches it again instead of
    the watermark passing over it.
    """
    summary = PullSummary(watermark=store.watermark)
    if label_config:
        summary.spec = spec_of(label_config)
        summary.previous_spec = store.record_spec(summary.spec)
    version = summary.spec["version"] if summary.spec else None
    since = summary.watermark
    latest = client.last_change(project_id)
    if latest is not None and (since is None or latest > since):  # one server's UTC stamps
        changed = client.annotated_tasks(project_id, changed_after=since)  # compare as text
        own = store.own_writes()
        for chunk in batches(changed, batch):
            store.save(chunk, version)
            count = sum(1 for t in chunk if own.get(t["id"]) != t.get("updated_at"))
            summary.fetched += count
            if progress:
                progress(count)
    summary.removed = store.keep_only({t["id"] for t in client.tasks(project_id, include="id")})
    if latest is not None and latest != since:
        store.advance(latest)
        summary.watermark = latest
    return summary
