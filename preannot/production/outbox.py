"""The release outbox: records decided for release (auto-accepted, or reviewed by a human), kept
in the run ledger's SQLite file until a sink has taken them.

A key is queued once, ever, so repeating a run or a sync never releases a record twice; each
record is marked delivered in its own transaction right after the sink took it, so a crash
resends at most the record in flight, which the sinks recognise by its key.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..engine.migrations import Migrations, script
from ..engine.workspace import connect
from .sinks import Sink, SinkDown, SinkError

SCHEMA = """
CREATE TABLE IF NOT EXISTS review_outbox (
    key       TEXT PRIMARY KEY,
    record    TEXT NOT NULL,
    decision  TEXT NOT NULL,
    added     TEXT NOT NULL,
    delivered TEXT,
    attempts  INTEGER NOT NULL DEFAULT 0,
    error     TEXT
);
"""

MIGRATIONS = Migrations("outbox")


@MIGRATIONS
def m001_initial(db: sqlite3.Connection) -> None:
    """The tables as they were before stores had versions, created only where missing: a
    file written then is marked at version 1 with its rows untouched."""
    script(db, SCHEMA)


PAGE = 100
"""Pending records read at a time: a large backlog is never held in memory."""


@dataclass
class Delivery:
    delivered: int
    """Records the sink took in this delivery (one it already had counts too)."""
    pending: int
    """Records still waiting after it (those in ``failed`` among them)."""
    failed: list[tuple[str, str]]
    """(key, message) of the records the sink refused in this delivery."""
    down: str | None = None
    """Why it stopped before the end (the ``SinkDown`` message), or None: the rest waits for
    the next delivery, a normal outcome rather than an error of the run that delivers."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Outbox:
    """The ``review_outbox`` table of one SQLite file (the run ledger's)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = connect(path, MIGRATIONS)  # shared with the ledger's runs

    def add(self, key: str, record: dict[str, Any], decision: str) -> bool:
        """Queue a record for release; False (nothing changes) when the key was ever queued."""
        with self.db:
            cursor = self.db.execute(
                "INSERT INTO review_outbox (key, record, decision, added) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO NOTHING",
                (key, json.dumps(record, ensure_ascii=False), decision, _now()))
        return cursor.rowcount == 1

    def deliver(self, sink: Sink, *,
                progress: Callable[[int], None] | None = None) -> Delivery:
        """Send the pending records in the order they were added; ``progress(1)`` after each.

        A record the sink refuses (``SinkError``) keeps its error and stays pending, and the
        next goes on; when the sink is down (``SinkDown``) the delivery stops, says why in
        ``down``, and the next one resumes. ``attempts`` counts deliveries that tried a record,
        not a sink's own retries within one.
        """
        delivered, failed, down = 0, [], None
        for key, record in self._pending():
            try:
                sink.send(key, json.loads(record))
            except SinkError as exc:
                with self.db:
                    self.db.execute("UPDATE review_outbox SET attempts = attempts + 1, error = ? "
                                    "WHERE key = ?", (str(exc), key))
                if isinstance(exc, SinkDown):
                    down = str(exc)
                    break
                failed.append((key, str(exc)))
            else:
                with self.db:
                    self.db.execute("UPDATE review_outbox SET delivered = ?, attempts = "
                                    "attempts + 1, error = NULL WHERE key = ?", (_now(), key))
                delivered += 1
            if progress:
                progress(1)
        return Delivery(delivered, self.counts()["pending"], failed, down)

    def _pending(self) -> Iterator[tuple[str, str]]:
        """(key, record JSON) of the pending records in the order added, a page at a time."""
        last = 0
        while rows := self.db.execute(
                "SELECT rowid, key, record FROM review_outbox WHERE delivered IS NULL AND "
                "rowid > ? ORDER BY rowid LIMIT ?", (last, PAGE)).fetchall():
            for last, key, record in rows:
                yield key, record

    def counts(self) -> dict[str, Any]:
        """``{"pending": n, "delivered": n, "errors": n, "decisions": {decision: {"pending": n,
        "delivered": n}}}``; ``errors``: pending records whose last try failed."""
        counts: dict[str, Any] = {"pending": 0, "delivered": 0, "errors": 0, "decisions": {}}
        for decision, delivered, error, count in self.db.execute(
                "SELECT decision, delivered IS NOT NULL, error IS NOT NULL, COUNT(*) "
                "FROM review_outbox GROUP BY 1, 2, 3"):
            state = "delivered" if delivered else "pending"
            counts[state] += count
            counts["errors"] += count if error else 0
            by_decision = counts["decisions"].setdefault(decision, {"pending": 0, "delivered": 0})
            by_decision[state] += count
        return counts

    def get(self, key: str) -> dict[str, Any] | None:
        """The row of ``key`` (its record decoded), or None when it was never queued."""
        cursor = self.db.execute("SELECT * FROM review_outbox WHERE key = ?", (key,))
        row = cursor.fetchone()
        if row is None:
            return None
        found = dict(zip((column[0] for column in cursor.description), row))
        found["record"] = json.loads(found["record"])
        return found

    def close(self) -> None:
        self.db.close()
