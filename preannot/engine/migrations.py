"""Schema versions of the SQLite stores, in the manner of simonw/llm's ``llm/migrations.py``.

Each store lists its migrations in order; each is applied once per file, in one transaction
with its record in the ``_migrations`` table (store, name), so an upgrade over an existing
``.preannot/`` knows what it holds. Migration 1 of every store creates its tables only where
missing: a file written before migrations existed is recognised and marked at version 1 without
touching its rows. A file that records a migration this code does not know was written by a
newer preannot, and is refused rather than guessed at.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from ..annotator import ConfigError

Migration = Callable[[sqlite3.Connection], None]
TABLE = """CREATE TABLE IF NOT EXISTS _migrations (
    store TEXT NOT NULL, name TEXT NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY (store, name))"""


class WorkspaceTooNew(ConfigError):
    """The file was written by a newer preannot: its schema is past what this one knows."""


class Migrations:
    """The ordered migrations of one store; used as a decorator to add the next one."""

    def __init__(self, store: str) -> None:
        self.store = store
        self.steps: list[Migration] = []

    def __call__(self, step: Migration) -> Migration:
        self.steps.append(step)
        return step

    def apply(self, db: sqlite3.Connection, path: Path) -> None:
        """Bring ``db`` (the file at ``path``) up to date."""
        if not self._pending(db, path):
            return
        db.execute("BEGIN IMMEDIATE")  # another process opening the store waits, then finds it done
        try:
            db.execute(TABLE)
            for step in self._pending(db, path):
                step(db)
                db.execute("INSERT INTO _migrations VALUES (?, ?, ?)",
                           (self.store, step.__name__, datetime.now(UTC).isoformat()))
            db.commit()
        except BaseException:
            db.rollback()
            raise

    def applied(self, db: sqlite3.Connection) -> list[str]:
        """The names recorded for this store, in the order they were applied."""
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = '_migrations'").fetchone():
            return []
        return [name for (name,) in db.execute(
            "SELECT name FROM _migrations WHERE store = ? ORDER BY rowid", (self.store,))]

    def _pending(self, db: sqlite3.Connection, path: Path) -> list[Migration]:
        applied = self.applied(db)
        known = {step.__name__ for step in self.steps}
        if unknown := [name for name in applied if name not in known]:
            raise WorkspaceTooNew(
                f"{path} was written by a newer preannot (the {self.store} store has migration "
                f"{unknown[0]}, unknown to this version): upgrade preannot to use it")
        return [step for step in self.steps if step.__name__ not in applied]


def script(db: sqlite3.Connection, statements: str) -> None:
    """Run ``;``-separated statements one by one, inside the migration's transaction
    (``executescript`` would commit it first)."""
    for statement in statements.split(";"):
        if statement.strip():
            db.execute(statement)
