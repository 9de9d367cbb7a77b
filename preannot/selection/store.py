"""Task embeddings, cached by task content and model version in ``.preannot/embeddings.sqlite``.

A batch's vectors are committed together, so an interrupted embedding resumes where it
stopped; a task whose content changed, or a new model version, is embedded again. Each task
also gets a stable integer key per model version: the key the vector index knows it by.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..annotator import TaskFailed, batches
from ..engine.migrations import Migrations, script
from ..engine.workspace import connect
from ..model import Task

SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    model_version TEXT NOT NULL,
    checksum      TEXT NOT NULL,
    vector        BLOB NOT NULL,
    PRIMARY KEY (model_version, checksum)
);
CREATE TABLE IF NOT EXISTS members (
    key           INTEGER PRIMARY KEY AUTOINCREMENT,
    model_version TEXT NOT NULL,
    task          TEXT NOT NULL,
    checksum      TEXT NOT NULL,
    UNIQUE (model_version, task)
);
"""

MIGRATIONS = Migrations("embeddings")


@MIGRATIONS
def m001_initial(db: sqlite3.Connection) -> None:
    """The tables as they were before stores had versions, created only where missing: a
    file written then is marked at version 1 with its rows untouched."""
    script(db, SCHEMA)


class Embedder:
    """What embeds tasks: an :class:`~preannot.Annotator` that can, or the TF-IDF default."""

    model_version: str

    def embed(self, tasks: Sequence[Task]) -> Sequence[Sequence[float] | TaskFailed]:
        raise NotImplementedError


def unit(vector: Any) -> Any:
    """The vector scaled to length 1 (a zero vector stays zero), as float32."""
    import numpy as np

    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


class EmbeddingStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = connect(path, MIGRATIONS)

    def cached(self, version: str, checksums: Sequence[str]) -> dict[str, Any]:
        import numpy as np

        found: dict[str, Any] = {}
        for chunk in batches(sorted(set(checksums)), 500):
            rows = self.db.execute(
                f"SELECT checksum, vector FROM vectors WHERE model_version = ? AND checksum IN "
                f"({','.join('?' * len(chunk))})", (version, *chunk))
            found.update((c, np.frombuffer(v, dtype=np.float32)) for c, v in rows)
        return found

    def save(self, version: str, vectors: dict[str, Any]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO vectors (model_version, checksum, vector) VALUES (?, ?, ?)",
                [(version, c, unit(v).tobytes()) for c, v in vectors.items()])

    def keys(self, version: str, tasks: Sequence[Task]) -> list[int]:
        """The index key of each task (made on first sight; a changed content keeps the key,
        and :meth:`stale` says the index must replace its vector)."""
        with self.db:
            self.db.executemany(
                "INSERT OR IGNORE INTO members (model_version, task, checksum) VALUES (?, ?, ?)",
                [(version, t.id, t.checksum) for t in tasks])
        out: dict[str, int] = {}
        for chunk in batches([t.id for t in tasks], 500):
            out.update(self.db.execute(
                f"SELECT task, key FROM members WHERE model_version = ? AND task IN "
                f"({','.join('?' * len(chunk))})", (version, *chunk)))
        return [out[t.id] for t in tasks]

    def stale(self, version: str, tasks: Sequence[Task]) -> list[Task]:
        """The tasks whose content changed since their key was made (their key is updated)."""
        changed = []
        for chunk in batches(list(tasks), 500):
            known = dict(self.db.execute(
                f"SELECT task, checksum FROM members WHERE model_version = ? AND task IN "
                f"({','.join('?' * len(chunk))})", (version, *[t.id for t in chunk])))
            changed += [t for t in chunk if t.id in known and known[t.id] != t.checksum]
        with self.db:
            self.db.executemany("UPDATE members SET checksum = ? WHERE model_version = ? AND "
                                "task = ?", [(t.checksum, version, t.id) for t in changed])
        return changed

    def tasks_of(self, version: str, keys: Iterable[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for chunk in batches(list(keys), 500):
            out.update(self.db.execute(
                f"SELECT key, task FROM members WHERE model_version = ? AND key IN "
                f"({','.join('?' * len(chunk))})", (version, *chunk)))
        return out

    def close(self) -> None:
        self.db.close()


def embed_tasks(tasks: Sequence[Task], embedder: Embedder, store: EmbeddingStore, *,
                batch_size: int = 64, progress: Callable[[int], None] | None = None
                ) -> tuple[list[Any], list[tuple[str, str]]]:
    """A unit vector per task (None for a task that failed) and (task source, reason) of the
    failures. Cached vectors are reused; the others are embedded in batches, each committed."""
    version = embedder.model_version
    have = store.cached(version, [t.checksum for t in tasks])
    failures: list[tuple[str, str]] = []
    failed: set[str] = set()
    todo = list({t.checksum: t for t in tasks if t.checksum not in have}.values())
    if progress:
        progress(len(tasks) - len(todo))
    for batch in batches(todo, batch_size):
        try:
            made = list(embedder.embed(batch))
            if len(made) != len(batch):
                raise RuntimeError(f"returned {len(made)} vectors for {len(batch)} tasks")
        except Exception as exc:  # the batch fails, each task says why; the rest goes on
            made = [TaskFailed(f"{type(exc).__name__}: {exc}")] * len(batch)
        fresh = {}
        for task, vector in zip(batch, made):
            if not isinstance(vector, TaskFailed) and not (vector := unit(vector)).any():
                vector = TaskFailed("its vector is all zeros: nothing in it that the embedder "
                                    "knows (an empty text?); it has no direction to compare")
            if isinstance(vector, TaskFailed):
                failures.append((task.source or task.id, f"not embedded: {vector}"))
                failed.add(task.checksum)
            else:
                fresh[task.checksum] = vector
        store.save(version, fresh)
        have.update(fresh)
        if progress:
            progress(len(batch))
    return [have.get(t.checksum) for t in tasks], failures
