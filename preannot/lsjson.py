"""The one converter between preannot regions and Label Studio result JSON, both ways.

Each kind's geometry is converted by its :mod:`preannot.regions` kind (boxes and polygons to
percent of the original image size, masks to Label Studio's brush RLE). Provenance travels in
each result item under ``"preannot"`` (Label Studio keeps unknown keys of a prediction's result
as they are). Task lists (import files) are read streamed, so memory does not grow with them.
"""

from __future__ import annotations

import codecs
import json
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from .model import Prediction, Region, Task
from .regions import kind_for, kind_of

PROVENANCE_KEY = "preannot"


def region_id() -> str:
    """A short random id, as Label Studio's own editor makes them."""
    return uuid.uuid4().hex[:10]


def region_to_result(region: Region) -> dict[str, Any]:
    """One Label Studio result item for one region."""
    kind = kind_of(region)
    item: dict[str, Any] = {
        "id": region.id or region_id(),
        "from_name": region.from_name or "label",
        "to_name": region.to_name or kind.default_to_name,
        "type": region.type,
        "origin": "prediction",
        **kind.extra(region),
    }
    item["value"] = {**kind.value(region), region.type: [region.label]}
    if region.score is not None:
        item["score"] = float(region.score)
    if region.provenance:
        item[PROVENANCE_KEY] = region.provenance
    return item


def result_to_region(item: dict[str, Any]) -> Region:
    """The region a Label Studio result item (predicted or human) describes."""
    kind, value = kind_for(item["type"]), item.get("value", {})
    labels = value.get(item["type"]) or [""]
    common = dict(label=labels[0], score=item.get("score"), from_name=item.get("from_name"),
                  to_name=item.get("to_name"), id=item.get("id"),
                  provenance=dict(item.get(PROVENANCE_KEY) or {}))
    return kind.from_result(item, value, common)


def prediction_to_ls(prediction: Prediction) -> dict[str, Any]:
    """A Label Studio prediction object (as imported with a task or in bulk)."""
    out: dict[str, Any] = {
        "model_version": prediction.model_version,
        "result": [region_to_result(r) for r in prediction.regions],
    }
    if prediction.score is not None:
        out["score"] = float(prediction.score)
    return out


ANNOTATORS_KEY = "preannot_annotators"
"""Task ``meta`` key naming the annotator of each prediction, in order (Label Studio keeps a
prediction's model version, not who made it)."""


def task_key(preannot_id: Any, ls_id: Any = None, data: Any = None) -> str:
    """The stable id of a task: the one preannot gave it (``meta.preannot_id``), else
    ``ls:<id>`` for a task Label Studio numbered, else a digest of its data."""
    if preannot_id:
        return str(preannot_id)
    if ls_id is not None:
        return f"ls:{ls_id}"
    return f"sha:{Task('', dict(data or {})).checksum}"


def task_to_ls(task: Task, predictions: list[Prediction]) -> dict[str, Any]:
    """A Label Studio import task: its data and the predictions made for it.

    The stable task id goes in ``meta`` so a later sync can find the task again, with the
    name of each prediction's annotator.
    """
    return {
        "data": task.data,
        "meta": {**task.meta, "preannot_id": task.id,
                 ANNOTATORS_KEY: [p.annotator for p in predictions]},
        "predictions": [prediction_to_ls(p) for p in predictions],
    }


def ls_to_task(item: Any, source: str = "") -> Task:
    """The task a Label Studio import task holds (the inverse of :func:`task_to_ls`, without
    the predictions: see :func:`ls_to_predictions`). Raises ValueError for something that is
    not such a task."""
    if not isinstance(item, dict) or not isinstance(item.get("data"), dict):
        raise ValueError("not a Label Studio task (an object with a 'data' object)")
    if not isinstance(item.get("predictions") or [], list) or not all(
            isinstance(p, dict) for p in item.get("predictions") or []):
        raise ValueError("'predictions' is not a list of objects")
    meta = {k: v for k, v in (item.get("meta") or {}).items() if k != ANNOTATORS_KEY}
    return Task(task_key(meta.get("preannot_id") or item.get("id"), data=item["data"]),
                dict(item["data"]), source, meta)


def ls_to_predictions(item: dict[str, Any], task_id: str,
                      annotators: dict[str, str] | None = None) -> list[Prediction]:
    """The predictions of a Label Studio import task, as objects. Each one's annotator is the
    one the task's ``meta`` names, else the annotator whose model version it carries
    (``annotators``: version -> name), else its regions' ``provenance["annotator"]``, else
    its model version."""
    raw = item.get("predictions") or []
    named = (item.get("meta") or {}).get(ANNOTATORS_KEY)
    named = named if isinstance(named, list) and len(named) == len(raw) else [None] * len(raw)
    predictions = []
    for name, p in zip(named, raw):
        version = str(p.get("model_version") or "")
        regions = [result_to_region(r) for r in p.get("result") or []]
        owners = {r.provenance.get("annotator") for r in regions} - {None}
        annotator = (name or (annotators or {}).get(version)
                     or (owners.pop() if len(owners) == 1 else None) or version)
        predictions.append(Prediction(task_id, str(annotator), version, regions, p.get("score")))
    return predictions


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
