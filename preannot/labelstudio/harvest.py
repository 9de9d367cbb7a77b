"""Harvest what humans did with the predictions: fetch changed tasks, classify every region.

Fetching is incremental and streamed. The server filters: a temporary Data Manager view keeps
the tasks whose ``updated_at`` is past the watermark (Label Studio bumps a task's ``updated_at``
when one of its annotations is created, updated, skipped or deleted), an export snapshot of that
view is made with full predictions (the plain ``/export`` endpoint gives prediction ids only),
and its JSON is parsed while it downloads, so memory does not grow with the task count.
Fetched tasks are kept raw in the ledger's SQLite file, keyed by server, project and task, and
the watermark moves only once a pull is complete: an interrupted pull is simply redone.
Classification happens when outputs are written, so new thresholds need no refetch.
"""

from __future__ import annotations

import codecs
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations, islice
from pathlib import Path
from typing import Any

import httpx

from ..lsjson import PROVENANCE_KEY, result_to_region
from ..metrics import Metrics
from ..model import Region
from . import report
from .client import Client, LabelStudioError
from .match import ACCEPTED, ADDED, DEFAULT_THRESHOLDS, consensus, match, pair_f1

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
    stream = fetch_changed(client, project_id, since)
    while chunk := list(islice(stream, batch)):
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


@dataclass
class _Parsed:
    items: list[dict[str, Any]] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)


def _parse(result: Iterable[dict[str, Any]], where: str, errors: list[str]) -> _Parsed:
    """Regions of a result list; a bad item is named in ``errors``, never silently dropped."""
    out = _Parsed()
    for n, item in enumerate(result):
        if item.get("type") in ("relation", "textarea", "rating", "number", "datetime"):
            continue  # not regions: nothing to match
        try:
            region = result_to_region(item)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            errors.append(f"{where} result item {n} ({item.get('type')}): {type(exc).__name__}: {exc}")
            continue
        out.items.append(item)
        out.regions.append(region)
    return out


def _prediction(task: dict[str, Any], model_version: str | None) -> dict[str, Any] | None:
    """The prediction being measured: of ``model_version``, else the task's newest."""
    preds = [p for p in task.get("predictions") or [] if isinstance(p, dict)]
    if model_version is not None:
        preds = [p for p in preds if p.get("model_version") == model_version]
    return max(preds, key=lambda p: (p.get("created_at") or "", p.get("id") or 0), default=None)


def annotator_of(item: Mapping[str, Any], model_version: str) -> str:
    return (item.get(PROVENANCE_KEY) or {}).get("annotator") or model_version


def classify(task: dict[str, Any], model_version: str | None = None,
             thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS) -> dict[str, Any]:
    """One corrections record: the task's data, the human-final regions and every predicted
    region with what the human did to it. Skipped annotations are counted, never used; a ground
    truth annotation wins; several annotations agree by majority (:func:`match.consensus`)."""
    tid, errors = task["id"], []
    annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict)]
    cancelled = [a for a in annotations if a.get("was_cancelled")]
    usable = [a for a in annotations if not a.get("was_cancelled")]
    if any(a.get("ground_truth") for a in usable):
        usable = [a for a in usable if a.get("ground_truth")][:1]
    status = "annotated" if usable else ("skipped" if cancelled else "unannotated")
    record: dict[str, Any] = {
        "task": tid, "preannot_id": (task.get("meta") or {}).get("preannot_id"),
        "data": task.get("data"), "status": status, "annotations": len(usable),
        "cancelled": len(cancelled), "agreement": None, "model_version": None,
        "human": [], "predicted": [], "errors": errors}
    prediction = _prediction(task, model_version)
    if prediction is not None:
        record["model_version"] = prediction.get("model_version")
    if status != "annotated":
        return record
    humans = [_parse(a.get("result") or [], f"task {tid} annotation {a.get('id')}", errors)
              for a in usable]
    if len(humans) == 1:
        final = humans[0]
    else:
        final = _Parsed()
        for a, r in consensus([h.regions for h in humans], thresholds):
            final.items.append(humans[a].items[r])
            final.regions.append(humans[a].regions[r])
        pairs = list(combinations([h.regions for h in humans], 2))
        record["agreement"] = sum(pair_f1(x, y, thresholds) for x, y in pairs) / len(pairs)
    predicted = _Parsed()
    if prediction is not None:
        predicted = _parse(prediction.get("result") or [],
                           f"task {tid} prediction {prediction.get('id')}", errors)
    matching = match(predicted.regions, final.regions, thresholds)
    added = set(matching.added)
    record["human"] = [{**item, "classification": ADDED if j in added else "matched"}
                       for j, item in enumerate(final.items)]
    version = record["model_version"] or ""
    for item, region, (kind, j, overlap) in zip(predicted.items, predicted.regions, matching.predicted):
        record["predicted"].append({
            **item, "classification": kind, "annotator": annotator_of(item, version),
            "label": region.label, "matched": final.items[j].get("id") if j is not None else None,
            "iou": round(overlap, 4),
            "human_label": final.regions[j].label if j is not None and kind != ACCEPTED else None})
    return record


CORRECTIONS, METRICS, REPORT = "corrections.jsonl", "metrics.json", "report.html"


def write_outputs(store: HarvestStore, out_dir: Path, *, model_version: str | None = None,
                  thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS,
                  title: str = "preannot harvest") -> dict[str, Any]:
    """Rebuild the corrections data set, the metrics and the report from every pulled task."""
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = Metrics()
    tmp = out_dir / (CORRECTIONS + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for task in store.tasks():
            record = classify(task, model_version, thresholds)
            metrics.add(record)
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(out_dir / CORRECTIONS)
    result = metrics.result()
    result["thresholds"] = {**DEFAULT_THRESHOLDS, **thresholds}
    (out_dir / METRICS).write_text(json.dumps(result, indent=2), encoding="utf-8")
    report.write(result, out_dir / REPORT, title)
    return result


def read_corrections(path: Path, errors: list[str]) -> Iterator[dict[str, Any]]:
    """Records of a corrections file, streamed; a bad line goes to ``errors`` (file:line)."""
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    errors.append(f"{path}:{lineno}: invalid JSON: {exc.msg}")
