"""The run ledger: which input records a run has done, failed or not yet seen (embedded SQLite).

A batch's results are committed together, so a crash or Ctrl-C loses at most the batch in
flight, and a rerun skips what is done (same annotators, same input) without duplicating it.
The output file is always rebuilt from the ledger, never appended to.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from .migrations import Migrations, script
from .workspace import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    output      TEXT NOT NULL,
    key         TEXT NOT NULL,
    position    INTEGER NOT NULL,
    source      TEXT NOT NULL,
    checksum    TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    result      TEXT,
    reason      TEXT,
    detail      TEXT,
    run         INTEGER NOT NULL,
    PRIMARY KEY (output, key)
);
CREATE INDEX IF NOT EXISTS items_by_run ON items (output, run, position);
"""

MIGRATIONS = Migrations("ledger")


@MIGRATIONS
def m001_initial(db: sqlite3.Connection) -> None:
    """The tables as they were before stores had versions, created only where missing: a
    file written then is marked at version 1 with its rows untouched."""
    script(db, SCHEMA)


class ItemState(NamedTuple):
    status: str
    checksum: str
    fingerprint: str
    run: int


class Ledger:
    """One SQLite file; each output file is a separate run history inside it."""

    def __init__(self, path: Path, output: str) -> None:
        self.path = path
        self.output = output
        self.db = connect(path, MIGRATIONS)  # runs on other outputs share the file
        self.run = time.time_ns()
        """Records seen in this run are stamped with it, so records no longer in the input
        are left out of the output."""

    def forget(self) -> None:
        """Drop this output's history (``--force``)."""
        with self.db:
            self.db.execute("DELETE FROM items WHERE output = ?", (self.output,))

    def states(self, keys: list[str]) -> dict[str, ItemState]:
        """What the ledger knows of these keys (absent keys were never seen)."""
        found: dict[str, ItemState] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows = self.db.execute(
                f"SELECT key, status, checksum, fingerprint, run FROM items WHERE output = ? "
                f"AND key IN ({','.join('?' * len(chunk))})", (self.output, *chunk))
            found.update((row[0], ItemState(*row[1:])) for row in rows)
        return found

    def record(self, rows: Iterable[dict[str, Any]], seen: Iterable[tuple[str, int]] = ()) -> None:
        """Write a batch in one transaction: new results and failures, and stamp skipped keys."""
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO items (output, key, position, source, checksum, "
                "fingerprint, status, result, reason, detail, run) VALUES "
                "(:output, :key, :position, :source, :checksum, :fingerprint, :status, "
                ":result, :reason, :detail, :run)",
                [{"output": self.output, "run": self.run, "result": None, "reason": None,
                  "detail": None, "checksum": "", "fingerprint": "", **row} for row in rows])
            self.db.executemany(
                "UPDATE items SET run = ?, position = ? WHERE output = ? AND key = ?",
                [(self.run, position, self.output, key) for key, position in seen])

    def results(self) -> Iterator[str]:
        """The done results (JSON text) of this run's inputs, in input order, streamed."""
        rows = self.db.execute(
            "SELECT result FROM items WHERE output = ? AND run = ? AND status = 'done' "
            "ORDER BY position", (self.output, self.run))
        for (result,) in rows:
            yield result

    def failures(self) -> list[tuple[str, str, str]]:
        """(source, reason, detail) of this run's failed records, in input order."""
        return list(self.db.execute(
            "SELECT source, reason, detail FROM items WHERE output = ? AND run = ? "
            "AND status = 'failed' ORDER BY position", (self.output, self.run)))

    def failed_tasks(self) -> list[tuple[str, str]]:
        """(reason, task JSON) of this run's tasks that were read but failed, in input order."""
        return list(self.db.execute(
            "SELECT reason, result FROM items WHERE output = ? AND run = ? AND status = 'failed' "
            "AND result IS NOT NULL ORDER BY position", (self.output, self.run)))

    def close(self) -> None:
        self.db.close()
