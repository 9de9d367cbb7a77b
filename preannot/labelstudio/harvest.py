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

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..annotator import batches
from .client import Client

SCHEMA = """
CREATE TABLE IF NOT EXISTS harvest_state (source TEXT PRIMARY KEY, watermark TEXT);
CREATE TABLE IF NOT EXISTS harvest_tasks (
    source TEXT NOT NULL, task INTEGER NOT NULL, updated_at TEXT, raw TEXT NOT NULL,
    PRIMARY KEY (source, task));
"""


class HarvestStore:
    """Pulled tasks and the pull watermark of one project, in the run ledger's SQLite file."""

    def __init__(self, path: Path, source: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.source = source
        """``<server url>#<project id>``: two servers or projects never share state."""
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    @property
    def watermark(self) -> str | None:
        row = self.db.execute("SELECT watermark FROM harvest_state WHERE source = ?",
                              (self.source,)).fetchone()
        return row[0] if row else None

    def save(self, tasks: Sequence[dict[str, Any]]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO harvest_tasks (source, task, updated_at, raw) VALUES (?, ?, ?, ?)",
                [(self.source, t["id"], t.get("updated_at"), json.dumps(t)) for t in tasks])

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
        """Start over (``ls pull --full``)."""
        with self.db:
            self.db.execute("DELETE FROM harvest_state WHERE source = ?", (self.source,))
            self.db.execute("DELETE FROM harvest_tasks WHERE source = ?", (self.source,))

    def tasks(self) -> Iterator[dict[str, Any]]:
        """Every pulled task, by task id, streamed."""
        for (raw,) in self.db.execute("SELECT raw FROM harvest_tasks WHERE source = ? ORDER BY task",
                                      (self.source,)):
            yield json.loads(raw)

    def close(self) -> None:
        self.db.close()


@dataclass
class PullSummary:
    fetched: int = 0
    removed: int = 0
    """Tasks pulled before that are no longer in the project (deleted there)."""
    watermark: str | None = None


def pull(client: Client, project_id: int, store: HarvestStore, *, batch: int = 1000,
         progress: Callable[[int], None] | None = None) -> PullSummary:
    """Fetch the tasks changed since the last pull into ``store``, drop the ones deleted in
    Label Studio, and move the watermark at the end.

    The new watermark is the project's latest change *before* the walk: a task changed while
    the pages are read has a later ``updated_at``, so the next pull fetches it again instead of
    the watermark passing over it.
    """
    summary = PullSummary(watermark=store.watermark)
    since = summary.watermark
    latest = client.last_change(project_id)
    if latest is not None and (since is None or latest > since):  # one server's UTC stamps
        changed = client.annotated_tasks(project_id, changed_after=since)  # compare as text
        for chunk in batches(changed, batch):
            store.save(chunk)
            summary.fetched += len(chunk)
            if progress:
                progress(len(chunk))
    summary.removed = store.keep_only({t["id"] for t in client.tasks(project_id, include="id")})
    if latest is not None and latest != since:
        store.advance(latest)
        summary.watermark = latest
    return summary
