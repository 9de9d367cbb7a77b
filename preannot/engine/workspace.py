"""The workspace: everything preannot keeps beside a config, under ``.preannot/``.

One object names every store's place, so no module builds a ``.preannot/...`` path by hand,
and one connection factory gives every SQLite store the same settings: WAL (readers never
block the writer), ``synchronous=NORMAL`` (safe with WAL, far fewer fsyncs) and one busy
timeout (runs, pulls and the review share the ledger file and wait for each other's commits).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .migrations import Migrations

BUSY_TIMEOUT = 60.0
"""Seconds a store waits for another process's write to finish before giving up."""


def connect(path: Path, migrations: Migrations) -> sqlite3.Connection:
    """Open a store's SQLite file with the workspace's settings, its schema brought up to date."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    migrations.apply(db, path)
    return db


@dataclass(frozen=True)
class Workspace:
    """The places of one ``.preannot/`` folder: a store that moves changes here only."""

    root: Path
    """``.preannot/`` beside the config file."""

    @property
    def ledger(self) -> Path:
        """Runs, harvested tasks, review decisions, drift alarms and the release outbox."""
        return self.root / "ledger.sqlite"

    @property
    def embeddings(self) -> Path:
        """Task embeddings, by content and model version."""
        return self.root / "embeddings.sqlite"

    @property
    def index(self) -> Path:
        """Vector indexes and the fitted TF-IDF embedder."""
        return self.root / "index"

    @property
    def models(self) -> Path:
        """The default model registry (``[training] registry`` overrides it)."""
        return self.root / "models"

    @property
    def cache(self) -> Path:
        """Annotators' caches (compiled dictionaries, downloaded weights)."""
        return self.root / "cache"

    @property
    def training(self) -> Path:
        """Training work folders, one per model and run."""
        return self.root / "training"

    @property
    def labelstudio(self) -> Path:
        """The local Label Studio's data and login (``preannot ls up``)."""
        return self.root / "labelstudio"
