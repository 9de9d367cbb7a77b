"""What the production review decided for each task, in the run ledger's SQLite file.

A task is decided once (auto-accepted, routed to humans, or auto-accepted and audited), so a
rerun, a watch loop or a crash never releases or routes it twice; whether it reached the review
project, and what the human made of it, is kept beside the decision.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine.migrations import Migrations, script
from ..engine.workspace import connect

AUTO, ROUTE, AUDIT = "auto", "route", "audit"
"""Released without a human; sent to a human, released once reviewed; released and sent to a
human as well, to measure the precision achieved."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS review_decisions (
    key         TEXT PRIMARY KEY,
    decision    TEXT NOT NULL CHECK (decision IN ('auto', 'route', 'audit')),
    reason      TEXT NOT NULL,
    probability REAL,
    threshold   REAL,
    calibration TEXT,
    version     TEXT,
    labels      TEXT NOT NULL,
    decided     REAL NOT NULL,
    pushed      INTEGER NOT NULL DEFAULT 0,
    reviewed    REAL,
    right       INTEGER
);
"""

MIGRATIONS = Migrations("decisions")


@MIGRATIONS
def m001_initial(db: sqlite3.Connection) -> None:
    """The tables as they were before stores had versions, created only where missing: a
    file written then is marked at version 1 with its rows untouched."""
    script(db, SCHEMA)


@MIGRATIONS
def m002_content(db: sqlite3.Connection) -> None:
    """The digest of the task's data when decided, so a task back with other content is told
    apart (a file of the release that added it unversioned has it already)."""
    if "content" not in {row[1] for row in db.execute("PRAGMA table_info(review_decisions)")}:
        db.execute("ALTER TABLE review_decisions ADD COLUMN content TEXT")


@dataclass
class TaskDecision:
    key: str
    decision: str
    reason: str
    probability: float | None
    threshold: float | None
    calibration: str | None
    version: str | None
    labels: str
    """The predicted labels, comma-separated (the status counts per label)."""
    content: str | None = None
    """The digest of the task's data (a later run tells a changed task by it)."""


class Decisions:
    def __init__(self, path: Path) -> None:
        self.db = connect(path, MIGRATIONS)

    def known(self, keys: Sequence[str]) -> dict[str, tuple[str, bool, str | None]]:
        """(decision, pushed, content digest) of the keys already decided."""
        found: dict[str, tuple[str, bool, str | None]] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start:start + 500])
            found.update((k, (d, bool(p), c)) for k, d, p, c in self.db.execute(
                "SELECT key, decision, pushed, content FROM review_decisions WHERE key IN "
                f"({','.join('?' * len(chunk))})", chunk))
        return found

    def add(self, decisions: Iterable[TaskDecision]) -> None:
        now = time.time()
        with self.db:
            self.db.executemany(
                "INSERT OR IGNORE INTO review_decisions (key, decision, reason, probability, "
                "threshold, calibration, version, labels, decided, content) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(d.key, d.decision, d.reason, d.probability, d.threshold, d.calibration,
                  d.version, d.labels, now, d.content) for d in decisions])

    def pushed(self, keys: Iterable[str]) -> None:
        with self.db:
            self.db.executemany("UPDATE review_decisions SET pushed = 1 WHERE key = ?",
                                [(k,) for k in keys])

    def reviewed(self, key: str, right: bool) -> bool:
        """Record the human's final for a routed or audited task; False if known already."""
        with self.db:
            changed = self.db.execute(
                "UPDATE review_decisions SET reviewed = ?, right = ? WHERE key = ? AND "
                "reviewed IS NULL", (time.time(), int(right), key)).rowcount
        return bool(changed)

    def get(self, key: str) -> dict[str, Any] | None:
        cursor = self.db.execute("SELECT * FROM review_decisions WHERE key = ?", (key,))
        row = cursor.fetchone()
        return dict(zip([c[0] for c in cursor.description], row)) if row else None

    def rows(self) -> Iterator[dict[str, Any]]:
        cursor = self.db.execute("SELECT * FROM review_decisions ORDER BY decided, key")
        names = [c[0] for c in cursor.description]
        for row in cursor:
            yield dict(zip(names, row))

    def audits(self, calibration: str) -> tuple[int, int]:
        """(reviewed audits, right ones) of the tasks one calibration auto-accepted."""
        n, right = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(right), 0) FROM review_decisions WHERE "
            "decision = 'audit' AND calibration = ? AND reviewed IS NOT NULL",
            (calibration,)).fetchone()
        return int(n), int(right)

    def close(self) -> None:
        self.db.close()
