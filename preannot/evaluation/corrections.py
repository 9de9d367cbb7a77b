"""What humans did with each prediction: the correction classifier and the files it writes.

A Label Studio task (as exported, with annotations and full predictions) becomes one
corrections record: the task's data, the human-final regions, and every predicted region
classified accepted, modified or deleted, with the regions humans added. ``corrections.jsonl``
holds one record per line; ``metrics.json`` and ``report.html`` are computed from them. Nothing
here talks to Label Studio: the harvest fetches, this judges.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from ..lsjson import PROVENANCE_KEY, result_to_region
from ..model import Region
from . import report
from .labels import LabelMap
from .match import ACCEPTED, ADDED, DEFAULT_THRESHOLDS, consensus, match, pair_f1
from .metrics import Metrics
from .quality import DawidSkene, Quality, annotator_name, weighted_consensus


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


OUTDATED = "outdated spec"
"""Status of a task whose every annotation holds a label the current spec cannot map."""


def classify(task: dict[str, Any], model_version: str | None = None,
             thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS, *,
             labels: LabelMap | None = None, weights: DawidSkene | None = None,
             names: Mapping[int, str] | None = None) -> dict[str, Any]:
    """One corrections record: the task's data, the human-final regions and every predicted
    region with what the human did to it. Skipped annotations are counted, never used; a ground
    truth annotation wins; several annotations agree by majority (:func:`match.consensus`), or,
    with ``weights`` and three or more of them, by reliability (:func:`quality.weighted_consensus`).
    ``labels`` maps old labels forward; annotations it cannot map are left out (all of them:
    the task is "outdated spec", to be re-annotated)."""
    if labels:
        task = labels.map_task(task)
    tid, errors = task["id"], []
    annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict)]
    cancelled = [a for a in annotations if a.get("was_cancelled")]
    usable = [a for a in annotations if not a.get("was_cancelled")]
    outdated = sorted({lb for a in usable for lb in labels.unknown(a)}) if labels else []
    if outdated:
        usable = [a for a in usable if labels.compatible(a)]  # type: ignore[union-attr]
    flagged = [a for a in usable if a.get("ground_truth")]
    if flagged and len(flagged) < len(usable):  # all flagged: imported, Label Studio's default
        usable = flagged[:1]
    status = "annotated" if usable else (OUTDATED if outdated else
                                         "skipped" if cancelled else "unannotated")
    record: dict[str, Any] = {
        "task": tid, "preannot_id": (task.get("meta") or {}).get("preannot_id"),
        "data": task.get("data"), "status": status, "annotations": len(usable),
        "cancelled": len(cancelled), "agreement": None, "model_version": None,
        "annotators": [annotator_name(a, names) for a in usable],
        "spec": task.get("preannot_spec"), "outdated_labels": outdated,
        "human": [], "predicted": [], "errors": errors}
    prediction = _prediction(task, model_version)
    if prediction is not None:
        record["model_version"] = prediction.get("model_version")
        record["predicted_score"] = prediction.get("score")
    if status != "annotated":
        return record
    humans = [_parse(a.get("result") or [], f"task {tid} annotation {a.get('id')}", errors)
              for a in usable]
    if len(humans) == 1:
        final = humans[0]
    else:
        final = _Parsed()
        regions = [h.regions for h in humans]
        if weights is not None and len(humans) >= 3:
            chosen = weighted_consensus(regions, record["annotators"], weights, thresholds)
        else:
            chosen = consensus(regions, thresholds)
        for a, r in chosen:
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
            # accepted, but not as it was: the human moved, resized or re-drew it
            "edited": kind == ACCEPTED and overlap < 1.0 - EDIT_TOLERANCE,
            "human_label": final.regions[j].label if j is not None and kind != ACCEPTED else None})
    return record


CORRECTIONS, METRICS, REPORT = "corrections.jsonl", "metrics.json", "report.html"
EDIT_TOLERANCE = 1e-6
"""Overlap lost to Label Studio's percent coordinates on a round trip: not an edit."""


TRUTHS = ("majority", "weighted")
ADJUDICATION_THRESHOLD = 0.3


@dataclass
class Options:
    """How the truth is built and what the quality figures need: ``truth`` "majority" or
    "weighted" (by estimated reliability, for tasks with three or more annotations);
    ``adjudication_threshold``: a task whose annotators' disagreement (1 - mean pairwise F1)
    reaches it needs adjudication; ``names``: user id -> email; ``labels``: the label map;
    ``churn``: tasks changed back and forth across pulls (from the harvest store); ``link``:
    the Label Studio address of a task, ``{task}`` standing for its id."""

    truth: str = "majority"
    adjudication_threshold: float = ADJUDICATION_THRESHOLD
    names: Mapping[int, str] | None = None
    labels: LabelMap | None = None
    churn: list[dict[str, Any]] = field(default_factory=list)
    link: str | None = None
    spec: dict[str, Any] | None = None
    """The labeling config's version, and what changed in it since the last pull."""
    duplicates: Callable[[Path], dict[str, Any] | None] | None = None
    """Called with the corrections file once it is written: the near-duplicate groups among
    its annotated tasks ({"threshold", "groups": task ids}), when ``[selection]`` is
    configured (the embedding is the caller's: evaluation knows no embedder)."""


def _feed(quality: Quality, task: dict[str, Any], model_version: str | None,
          labels: LabelMap | None) -> None:
    task = labels.map_task(task) if labels else task
    prediction = _prediction(task, model_version)
    regions = _parse(prediction.get("result") or [], "", []).regions if prediction else []
    quality.add(task, regions)


def write_outputs(tasks: Iterable[dict[str, Any]] | Callable[[], Iterable[dict[str, Any]]],
                  out_dir: Path, *, model_version: str | None = None,
                  thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS,
                  title: str = "preannot harvest", options: Options | None = None
                  ) -> dict[str, Any]:
    """Rebuild the corrections data set, the metrics and the report from Label Studio tasks
    (every task pulled so far, as exported with annotations and full predictions; a function
    giving them, when reliability-weighted truth needs two passes)."""
    options = options or Options()
    if options.truth not in TRUTHS:
        raise ValueError(f"truth = {options.truth!r}: use one of {', '.join(TRUTHS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = Metrics()
    labels = options.labels
    quality = Quality(thresholds={**DEFAULT_THRESHOLDS, **thresholds}, names=options.names,
                      usable=labels.compatible if labels else None)
    if not callable(tasks) and options.truth == "weighted":
        tasks = list(tasks)
    passes = (lambda: tasks()) if callable(tasks) else (lambda: tasks)  # type: ignore[operator]
    weights = None
    if options.truth == "weighted":  # first the reliabilities, then the truth they weigh
        for task in passes():
            _feed(quality, task, model_version, labels)
        weights = quality.fit()
    adjudicate, reannotate = [], []
    tmp = out_dir / (CORRECTIONS + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for task in passes():
            if weights is None:
                _feed(quality, task, model_version, labels)
            record = classify(task, model_version, thresholds, labels=labels, weights=weights,
                              names=options.names)
            metrics.add(record)
            if record["agreement"] is not None and (
                    1 - record["agreement"] >= options.adjudication_threshold - 1e-9):
                adjudicate.append({"task": record["task"],
                                   "disagreement": round(1 - record["agreement"], 4),
                                   "annotators": record["annotators"]})
            if record["status"] == OUTDATED:
                reannotate.append({"task": record["task"], "labels": record["outdated_labels"],
                                   "spec": record["spec"]})
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(out_dir / CORRECTIONS)
    result = metrics.result()
    result["thresholds"] = {**DEFAULT_THRESHOLDS, **thresholds}
    result["truth"] = options.truth
    result["quality"] = quality.result()
    adjudicate.sort(key=lambda t: (-t["disagreement"], t["task"]))
    result["adjudication"] = {"threshold": options.adjudication_threshold, "tasks": adjudicate}
    result["reannotate"] = {"tasks": reannotate}
    result["churn"] = options.churn
    result["link"] = options.link
    result["spec"] = options.spec
    result["duplicates"] = (options.duplicates(out_dir / CORRECTIONS) if options.duplicates
                            else None)
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
