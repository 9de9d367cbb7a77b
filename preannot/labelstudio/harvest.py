"""Harvest what humans did with the predictions: fetch changed tasks, classify every region.

Fetching is incremental and streamed. The server filters: a temporary Data Manager view keeps
the tasks whose ``updated_at`` is past the watermark (Label Studio bumps a task's ``updated_at``
when one of its annotations is created, updated, skipped or deleted), an export snapshot of that
view is made with full predictions (the plain ``/export`` endpoint gives prediction ids only),
and its JSON is parsed while it downloads, so memory does not grow with the task count.
Fetched tasks are kept raw in the ledger's SQLite file, keyed by server, project and task, and
the watermark moves only once a pull is complete: an interrupted pull is simply redone.
Classification happens when outputs are written (:mod:`preannot.evaluation.corrections`), so
new thresholds need no refetch.
"""

from __future__ import annotations

import codecs
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ..annotator import batches
from .client import Client, LabelStudioError

VIEW_TITLE = "preannot harvest (temporary)"
SNAPSHOT_TITLE = "preannot harvest"
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


def iter_json_array(chunks: Iterable[bytes]) -> Iterator[Any]:
    """The elements of a JSON array arriving in byte chunks, each as soon as it is complete."""
    decoder, text = json.JSONDecoder(), codecs.getincrementaldecoder("utf-8")()
    buf, pos, opened = "", 0, False
    for chunk in chunks:
        buf = buf[pos:] + text.decode(chunk)
        pos = 0
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n,":
                pos += 1
            if pos >= len(buf):
                break
            if not opened:
                if buf[pos] != "[":
                    raise ValueError(f"expected a JSON array, got {buf[pos:pos + 40]!r}")
                opened, pos = True, pos + 1
                continue
            if buf[pos] == "]":
                return
            try:
                item, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError:
                break  # incomplete: wait for the next chunk
            yield item
            pos = end
    if opened:
        raise ValueError("the JSON array ended early (connection cut?)")


def _view_filter(since: str) -> dict[str, Any]:
    return {"conjunction": "and", "items": [{"filter": "filter:tasks:updated_at",
                                             "operator": "greater", "type": "Datetime",
                                             "value": since}]}


def fetch_changed(client: Client, project_id: int, since: str | None, *,
                  timeout: float = 600.0) -> Iterator[dict[str, Any]]:
    """The project's tasks changed after ``since`` (all with None), with annotations (skipped
    ones included) and full predictions, streamed from an export snapshot."""
    view = None
    if since is not None:
        view = client.request("POST", "api/dm/views", what="creating the harvest filter view",
                              body={"project": project_id,
                                    "data": {"title": VIEW_TITLE, "filters": _view_filter(since)}})
    snapshot = None
    try:
        snapshot = client.request(
            "POST", f"api/projects/{project_id}/exports", what=f"exporting project {project_id}",
            body={"title": SNAPSHOT_TITLE,
                  "task_filter_options": {"view": view["id"]} if view else {},
                  "annotation_filter_options": {"usual": True, "skipped": True, "ground_truth": True},
                  "serialization_options": {"predictions": {"only_id": False},
                                            "drafts": {"only_id": True},
                                            "annotations__completed_by": {"only_id": True}}})
        deadline = time.monotonic() + timeout
        while snapshot["status"] not in ("completed", "failed"):
            if time.monotonic() > deadline:
                raise LabelStudioError(f"project {project_id}: export not ready after {timeout:.0f} s")
            time.sleep(0.5)
            snapshot = client.request("GET", f"api/projects/{project_id}/exports/{snapshot['id']}",
                                      what="waiting for the export")
        if snapshot["status"] == "failed":
            raise LabelStudioError(f"project {project_id}: Label Studio failed the export")
        yield from _download(client, project_id, snapshot["id"])
    finally:
        if snapshot is not None:
            client.request("DELETE", f"api/projects/{project_id}/exports/{snapshot['id']}",
                           what="removing the export snapshot")
        if view is not None:
            client.request("DELETE", f"api/dm/views/{view['id']}", what="removing the filter view")


def _download(client: Client, project_id: int, export_id: int) -> Iterator[dict[str, Any]]:
    http = client.sdk._client_wrapper.httpx_client  # the SDK's auth; it wraps no streamed download
    path = f"api/projects/{project_id}/exports/{export_id}/download"
    try:
        with http.stream(path, method="GET", params={"exportType": "JSON"}) as response:
            if response.status_code >= 400:
                raise LabelStudioError(f"Label Studio at {client.url} refused the export download "
                                       f"({response.status_code})")
            yield from iter_json_array(response.iter_bytes(1 << 16))
    except (httpx.TransportError, ValueError) as exc:
        raise LabelStudioError(f"Label Studio at {client.url}: export download of project "
                               f"{project_id} broke off ({type(exc).__name__}); pull again") from None


@dataclass
class PullSummary:
    fetched: int = 0
    watermark: str | None = None


def pull(client: Client, project_id: int, store: HarvestStore, *, batch: int = 1000,
         progress: Callable[[int], None] | None = None) -> PullSummary:
    """Fetch the tasks changed since the last pull into ``store``; move the watermark at the end."""
    summary = PullSummary(watermark=store.watermark)
    since = summary.watermark
    for chunk in batches(fetch_changed(client, project_id, since), batch):
        store.save(chunk)
        summary.fetched += len(chunk)
        stamps = [t["updated_at"] for t in chunk if t.get("updated_at")]
        if stamps:  # ISO-8601 UTC stamps of one server compare as text
            summary.watermark = max([summary.watermark or "", *stamps])
        if progress:
            progress(len(chunk))
    if summary.watermark and summary.watermark != since:
        store.advance(summary.watermark)
    return summary
