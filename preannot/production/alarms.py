"""The drift monitor's memory, in the run ledger's SQLite file: the profile of every decided
task (the sliding window), every check with its signals (the plots over time), every alarm,
and every reaction. A restart, a crash or a new `review run` finds all of it where it was.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine.migrations import Migrations, script
from ..engine.workspace import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS drift_tasks (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    key     TEXT NOT NULL UNIQUE,
    decided REAL NOT NULL,
    profile TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS drift_checks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    time        REAL NOT NULL,
    calibration TEXT,
    first_seq   INTEGER,
    last_seq    INTEGER,
    tasks       INTEGER NOT NULL,
    signals     TEXT NOT NULL,
    fired       TEXT NOT NULL,
    alarm       INTEGER
);
CREATE TABLE IF NOT EXISTS drift_alarms (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    raised      REAL NOT NULL,
    raised_seq  INTEGER NOT NULL,
    calibration TEXT,
    signals     TEXT NOT NULL,
    labels      TEXT,
    cleared     REAL,
    cleared_seq INTEGER,
    cleared_by  TEXT
);
CREATE TABLE IF NOT EXISTS drift_events (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    time   REAL NOT NULL,
    alarm  INTEGER,
    kind   TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS drift_sampled (
    alarm INTEGER NOT NULL,
    key   TEXT NOT NULL,
    PRIMARY KEY (alarm, key)
);
"""

MIGRATIONS = Migrations("alarms")


@MIGRATIONS
def m001_initial(db: sqlite3.Connection) -> None:
    """The tables as they were before stores had versions, created only where missing: a
    file written then is marked at version 1 with its rows untouched."""
    script(db, SCHEMA)


@dataclass
class Alarm:
    id: int
    raised: float
    raised_seq: int
    calibration: str | None
    signals: list[str]
    labels: list[str] | None
    """The labels whose auto-accept is suspended; None: every label."""
    cleared: float | None = None
    cleared_seq: int | None = None
    cleared_by: str | None = None


class Alarms:
    def __init__(self, path: Path) -> None:
        self.db = connect(path, MIGRATIONS)

    def record(self, profiles: Iterable[dict[str, Any]]) -> None:
        """Keep the profiles of newly decided tasks (a task already kept is kept as it was)."""
        now = time.time()
        with self.db:
            self.db.executemany(
                "INSERT OR IGNORE INTO drift_tasks (key, decided, profile) VALUES (?, ?, ?)",
                [(p["key"], now, json.dumps(p)) for p in profiles])

    def last_seq(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM drift_tasks").fetchone()[0])

    def window(self, size: int, after: int = 0) -> list[dict[str, Any]]:
        """The last ``size`` profiles decided after ``after`` (a seq), oldest first, with the
        human's verdict where the task came back reviewed (``right``) and ``seq``."""
        rows = self.db.execute(
            "SELECT t.seq, t.profile, d.right FROM drift_tasks t LEFT JOIN review_decisions d "
            "ON d.key = t.key AND d.reviewed IS NOT NULL WHERE t.seq > ? ORDER BY t.seq DESC "
            "LIMIT ?", (after, size)).fetchall() if self._has_decisions() else self.db.execute(
            "SELECT seq, profile, NULL FROM drift_tasks WHERE seq > ? ORDER BY seq DESC LIMIT ?",
            (after, size)).fetchall()
        out = []
        for seq, text, right in reversed(rows):
            profile = json.loads(text)
            profile["seq"], profile["right"] = seq, None if right is None else bool(right)
            out.append(profile)
        return out

    def _has_decisions(self) -> bool:
        return bool(self.db.execute("SELECT 1 FROM sqlite_master WHERE name = "
                                    "'review_decisions'").fetchone())

    def decided_since(self, keys: Sequence[str], seq: int) -> int:
        """How many of ``keys`` were decided after ``seq``."""
        found = 0
        for start in range(0, len(keys), 500):
            chunk = list(keys[start:start + 500])
            found += self.db.execute(
                f"SELECT COUNT(*) FROM drift_tasks WHERE seq > ? AND key IN "
                f"({','.join('?' * len(chunk))})", [seq, *chunk]).fetchone()[0]
        return int(found)

    def add_check(self, calibration: str | None, window: Sequence[dict[str, Any]],
                  signals: list[dict[str, Any]], alarm: int | None) -> None:
        with self.db:
            self.db.execute(
                "INSERT INTO drift_checks (time, calibration, first_seq, last_seq, tasks, "
                "signals, fired, alarm) VALUES (?,?,?,?,?,?,?,?)",
                (time.time(), calibration, window[0]["seq"] if window else None,
                 window[-1]["seq"] if window else None, len(window), json.dumps(signals),
                 json.dumps([s["name"] for s in signals if s["fired"]]), alarm))

    def checks(self) -> list[dict[str, Any]]:
        cursor = self.db.execute("SELECT * FROM drift_checks ORDER BY id")
        names = [c[0] for c in cursor.description]
        return [{**dict(zip(names, row)), "signals": json.loads(row[names.index("signals")]),
                 "fired": json.loads(row[names.index("fired")])} for row in cursor]

    def raise_alarm(self, calibration: str | None, signals: list[str],
                    labels: list[str] | None) -> Alarm:
        now, seq = time.time(), self.last_seq()
        with self.db:
            cursor = self.db.execute(
                "INSERT INTO drift_alarms (raised, raised_seq, calibration, signals, labels) "
                "VALUES (?,?,?,?,?)", (now, seq, calibration, json.dumps(signals),
                                       None if labels is None else json.dumps(labels)))
        return Alarm(int(cursor.lastrowid), now, seq, calibration, signals, labels)

    def clear(self, alarm: Alarm, by: str) -> None:
        with self.db:
            self.db.execute("UPDATE drift_alarms SET cleared = ?, cleared_seq = ?, cleared_by = ? "
                            "WHERE id = ?", (time.time(), self.last_seq(), by, alarm.id))

    def alarms(self) -> list[Alarm]:
        rows = self.db.execute("SELECT id, raised, raised_seq, calibration, signals, labels, "
                               "cleared, cleared_seq, cleared_by FROM drift_alarms ORDER BY id")
        return [Alarm(i, r, rs, c, json.loads(s), None if lab is None else json.loads(lab),
                      cl, cs, cb) for i, r, rs, c, s, lab, cl, cs, cb in rows]

    def active(self) -> Alarm | None:
        return next((a for a in reversed(self.alarms()) if a.cleared is None), None)

    def last_cleared_seq(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(cleared_seq), 0) FROM drift_alarms"
                                   ).fetchone()[0])

    def event(self, alarm: int | None, kind: str, detail: str) -> None:
        with self.db:
            self.db.execute("INSERT INTO drift_events (time, alarm, kind, detail) VALUES "
                            "(?,?,?,?)", (time.time(), alarm, kind, detail))

    def events(self) -> list[dict[str, Any]]:
        cursor = self.db.execute("SELECT time, alarm, kind, detail FROM drift_events ORDER BY id")
        return [dict(zip(("time", "alarm", "kind", "detail"), row)) for row in cursor]

    def sampled(self, alarm: int) -> set[str]:
        return {k for (k,) in self.db.execute("SELECT key FROM drift_sampled WHERE alarm = ?",
                                              (alarm,))}

    def add_sampled(self, alarm: int, keys: Iterable[str]) -> None:
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO drift_sampled (alarm, key) VALUES (?, ?)",
                                [(alarm, k) for k in keys])

    def close(self) -> None:
        self.db.close()
