"""Production review as plain functions: run (each task released, routed to humans in a Label
Studio review project, or released and audited), sync the reviews back (release what humans
finished, score the audits), and the status. A task is decided once and released at most once,
whatever crashes, restarts or servers going away happen in between: decisions and the outbox
live in the run ledger's SQLite file, the push is idempotent, the sink is told each record's
idempotency key.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..annotator import Annotator, batches
from ..engine.config import RunConfig
from ..engine.host import Host, get_host
from ..engine.lock import output_lock
from ..evaluation.corrections import classify
from ..evaluation.split import fraction
from ..labelstudio.client import Client, Unreachable
from ..harvest.pull import pull
from ..harvest.store import HarvestStore
from ..labelstudio.push import ensure_project, push_tasks, read_import_file
from ..lsjson import task_key
from ..model import Task
from . import page
from .calibration import (Calibration, clopper_pearson_lower, clopper_pearson_upper, is_right,
                          label_of, task_score)
from .decisions import AUDIT, AUTO, ROUTE, TaskDecision, Decisions
from .outbox import Delivery, Outbox
from .reviewed import review_harvest_dir
from .sinks import make_sink
from . import drift_monitor as drift
from ..labelstudio import sync
from .calibrate import load

REVIEW_KEY = "preannot_review"
"""In a review project task's meta: ``{"decision": "route" | "audit", "reason": ...}``."""
AUDIT_SALT = "preannot-audit"
def review_project(config: RunConfig, client: Client, built: list[Annotator]) -> int:
    """The review project's id: ``[review] project``, else ``<labeling project's title> review``
    (``[labelstudio] project`` when it is a title, else ``title``, else ``preannot <folder>``),
    created (with the pipeline's labeling config) if absent."""
    named = config.labelstudio.project
    base = (named if isinstance(named, str) and not named.isdigit() else None) \
        or config.labelstudio.title or f"preannot {config.base_dir.name}"
    label_config = None
    if config.labelstudio.label_config:
        label_config = config.labelstudio.label_config.read_text(encoding="utf-8")
    title = f"{base[:50 - len(' review')]} review"  # Label Studio takes 50 characters
    return ensure_project(client, config.review.project or title, title=title, annotators=built,
                          label_config=label_config)


def suspended(config: RunConfig, calibration: Calibration | None,
              decisions: Decisions) -> str | None:
    """Why auto-accept is off: the audits show, at confidence ``1 - delta``, a precision below
    the target. None while it holds. A new calibration (a new id) starts its audits afresh."""
    if calibration is None:
        return None
    n, right = decisions.audits(calibration.id)
    if n == 0:
        return None
    delta, target = config.review.delta, config.review.target_precision
    best = 1 - clopper_pearson_lower(n - right, n, delta)  # the highest precision still likely
    if best >= target:
        return None
    return (f"auto-accept SUSPENDED: {right} of {n} audited tasks were right, so the precision "
            f"achieved is at most {best:.4f} with confidence {1 - delta:.2f}, below the target "
            f"{target}; every task goes to review until `preannot review calibrate`")


def decide(key: str, task: dict[str, Any], failure: str | None,
           calibration: Calibration | None, version: str | None, off: str | None,
           audit_rate: float, drifting: drift.Hold | None = None) -> TaskDecision:
    """Release, route or audit one task (see the README's "Production review" and "Drift")."""
    result = [r for p in task.get("predictions") or [] for r in p.get("result") or []]
    labels = ",".join(sorted({label_of(r) for r in result}))
    held = drifting.reason({label_of(r) for r in result}) if drifting else None
    made: dict[str, Any] = {"key": key, "version": version, "labels": labels,
                            "content": content_of(task),
                            "calibration": calibration.id if calibration else None,
                            "threshold": calibration.threshold if calibration else None}
    if failure is not None:
        return TaskDecision(decision=ROUTE, reason=f"an annotator failed: {failure}",
                        probability=None, **made)
    if calibration is None:
        return TaskDecision(decision=ROUTE, reason=f"pipeline version {version} is not calibrated",
                        probability=None, **made)
    score = task_score(task.get("predictions") or [])
    p = calibration.probability(result, score)
    why = None
    if calibration.threshold is None:
        why = "the calibration guarantees no threshold yet"
    elif off:
        why = "auto-accept is suspended"
    elif held:
        why = held
    elif unknown := calibration.unknown_labels(result):
        why = f"label {', '.join(unknown)} was never calibrated"
    elif unlike := calibration.unlike(result, score):
        why = f"unlike the calibration tasks ({', '.join(unlike)} out of range)"
    elif p < calibration.threshold:
        why = f"below the threshold: probability {p:.4f} < {calibration.threshold:.4f}"
    if why:
        return TaskDecision(decision=ROUTE, reason=why, probability=p, **made)
    if fraction(key, AUDIT_SALT) < (drifting.audit_rate if drifting else audit_rate):
        return TaskDecision(decision=AUDIT, reason="released, and audited by a human",
                        probability=p, **made)
    return TaskDecision(decision=AUTO, reason="probability at or above the threshold",
                    probability=p, **made)


def content_of(task: dict[str, Any]) -> str:
    """The digest of a task's data, kept with its decision."""
    return Task("", dict(task.get("data") or {})).checksum


def released(task: dict[str, Any], decision: TaskDecision) -> dict[str, Any]:
    """The record an auto-accepted task is released as, with its audit trail."""
    return {"task": decision.key, "data": task.get("data"),
            "regions": [r for p in task.get("predictions") or [] for r in p.get("result") or []],
            "decision": decision.decision, "pipeline_version": decision.version,
            "probability": decision.probability, "threshold": decision.threshold,
            "calibration": decision.calibration,
            "released": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


@dataclass
class Report:
    """What one `review run` pass did."""

    decided: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    """Why tasks were routed, by the reason's first words."""
    routed: int = 0
    """Tasks that reached the review project in this pass (earlier ones too, once it is up)."""
    waiting: int = 0
    """Tasks decided for review that have not reached it (Label Studio down): the next pass."""
    delivery: Delivery | None = None
    failed_records: int = 0
    suspended: str | None = None
    calibration: str | None = None
    synced: Synced | None = None
    drift: drift.Checked | None = None
    notices: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    """Keys decided before whose content changed since: they keep their first decision."""


def run(config: RunConfig, client: Client, *, host: Host | None = None,
        progress: Callable[[int, int | None], None] | None = None) -> Report:
    """Pre-annotate the inputs (resumable, as `preannot run`), decide each task not decided
    before, route to the review project, release to the sink, then sync the reviews. One
    review run at a time per review folder: a second refuses with one line (a watch loop and
    a run by hand would each read the other's output)."""
    with output_lock(config.review.output_dir / "decisions", "preannot review run",
                     "or stop the other one (a `review run --watch`?)"):
        return _run(config, client, host or get_host(), progress)


def _run(config: RunConfig, client: Client, host: Host,
         progress: Callable[[int, int | None], None] | None) -> Report:
    config.output = config.review.output_dir / "predictions.json"  # not `preannot run`'s
    summary = sync.pre_annotate(config, host=host, progress=progress)
    built = sync.annotators(config, host)
    version = sync.pipeline_version(config, built)
    calibration = load(config, version) if version else None
    ledger = config.workspace.ledger
    decisions, outbox = Decisions(ledger), Outbox(ledger)
    report = Report(failed_records=summary.failed - len(summary.failed_tasks),
                    calibration=calibration.id if calibration else None)
    try:
        report.suspended = suspended(config, calibration, decisions)
        tasks = [(source, task, None) for source, task in read_import_file(config.output)
                 if isinstance(task, dict)]
        tasks += [(f"failed: {reason}", json.loads(task), reason)
                  for reason, task in summary.failed_tasks]
        to_push: list[tuple[str, dict[str, Any]]] = []
        drifting = drift.hold(config)
        for chunk in batches(tasks, config.drift.check_every):
            keyed = [(_key(t), s, t, f) for s, t, f in chunk]
            known = decisions.known([k for k, *_ in keyed])
            if config.drift.enabled and (unseen := [(k, t) for k, _, t, _ in keyed
                                                    if k not in known]):
                # the chunk joins the window before it is decided: drift it brings is caught
                # before any of it is released
                drift.record(config, [drift.task_profile(
                    config, k, t.get("data") or {}, _result(t),
                    calibration.probability(_result(t)) if calibration else None,
                    calibration.threshold if calibration else None) for k, t in unseen])
                report.drift = drift.check(config, calibration, client=client, built=built)
                drifting = drift.hold(config)
            new = []
            for key, source, task, failure in keyed:
                if key in known:
                    choice, pushed, content = known[key]
                    if content is not None and content != content_of(task):
                        report.changed.append(key)
                    if choice in (ROUTE, AUDIT) and not pushed:
                        row = decisions.get(key) or {}
                        to_push.append((source, _marked(task, choice, row.get("reason", ""))))
                    continue
                decision = decide(key, task, failure, calibration, version, report.suspended,
                                  config.review.audit_rate, drifting)
                report.decided[decision.decision] += 1
                if decision.decision == ROUTE:
                    report.reasons[decision.reason.split(":")[0].split(" (")[0]] += 1
                if decision.decision in (AUTO, AUDIT):
                    outbox.add(key, released(task, decision), decision.decision)
                if decision.decision in (ROUTE, AUDIT):
                    to_push.append((source, _marked(task, decision.decision, decision.reason)))
                new.append(decision)
            decisions.add(new)
        if to_push:
            try:
                project = review_project(config, client, built)
                pushed = push_tasks(client, project, to_push, model_version=version,
                                    ranker=host.ranker(config.ranking), annotators=built)
                refused = {source for source, _ in pushed.failures}
                done = [_key(t) for s, t in to_push if s not in refused]
                decisions.pushed(done)
                report.routed = len(done)
                report.waiting = len(to_push) - len(done)
                report.notices += [f"not routed {s}: {why}" for s, why in pushed.failures]
            except Unreachable as exc:
                report.waiting = len(to_push)
                report.notices.append(f"{exc}: {len(to_push)} tasks wait for the review project; "
                                      "the next `review run` sends them")
        report.delivery = _deliver(outbox, config)
    finally:
        decisions.close()
        outbox.close()
    try:
        report.synced = sync_reviews(config, client, built=built)
    except Unreachable as exc:
        report.notices.append(f"reviews not synced: {exc}")
    return report


def _deliver(outbox: Outbox, config: RunConfig) -> Delivery:
    """Send what waits in the outbox; a sink that is down leaves it waiting for the next pass."""
    sink = make_sink(config.review)
    try:
        return outbox.deliver(sink)
    finally:
        sink.close()


def _result(task: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for p in task.get("predictions") or [] for r in p.get("result") or []]


def _key(task: dict[str, Any]) -> str:
    return task_key((task.get("meta") or {}).get("preannot_id"), data=task.get("data"))


def _marked(task: dict[str, Any], decision: str, reason: str) -> dict[str, Any]:
    return {**task, "meta": {**(task.get("meta") or {}),
                             REVIEW_KEY: {"decision": decision, "reason": reason}}}


@dataclass
class Synced:
    """What one `review sync` did."""

    fetched: int = 0
    released: int = 0
    """Reviewed routed tasks queued for release this time (each once, ever)."""
    audited: int = 0
    """Audited tasks whose review came back this time."""
    delivery: Delivery | None = None
    unknown: int = 0
    """Reviewed tasks of the project that no `review run` routed (left alone)."""


def sync_reviews(config: RunConfig, client: Client, *,
                 built: list[Annotator] | None = None) -> Synced:
    """Pull the review project (incrementally: the harvest), release each routed task a human
    finished, record each audit's outcome, and deliver the outbox. Reviewed tasks become
    training data through the review harvest's corrections (``review/harvest/``)."""
    if built is None:
        built = sync.annotators(config, get_host())
    project = review_project(config, client, built)
    harvest = pull(config, client, project=str(project),
                   output_dir=review_harvest_dir(config))
    synced = Synced(fetched=harvest.fetched.fetched)
    ledger = config.workspace.ledger
    store = HarvestStore(ledger, f"{client.url}#{project}")
    decisions, outbox = Decisions(ledger), Outbox(ledger)
    try:
        for raw in store.tasks():
            record = classify(raw, thresholds=config.harvest.thresholds)
            if record["status"] != "annotated":
                continue
            key = task_key(record.get("preannot_id"), record.get("task"))
            decided = decisions.get(key)
            if decided is None:
                synced.unknown += 1
                continue
            if decisions.reviewed(key, is_right(record)) and decided["decision"] == AUDIT:
                synced.audited += 1
            if decided["decision"] == ROUTE and outbox.add(
                    key, _human_release(record, raw, project, decided), "human"):
                synced.released += 1
        synced.delivery = _deliver(outbox, config)
    finally:
        store.close()
        decisions.close()
        outbox.close()
    return synced


def _human_release(record: dict[str, Any], raw: dict[str, Any], project: int,
                   decided: dict[str, Any]) -> dict[str, Any]:
    """The record a reviewed task is released as: the human-final regions and who made them."""
    annotations = [a for a in raw.get("annotations") or []
                   if isinstance(a, dict) and not a.get("was_cancelled")]
    final = next((a for a in annotations if a.get("ground_truth")), None) or max(
        annotations, key=lambda a: a.get("updated_at") or "", default={})
    return {"task": decided["key"], "data": record.get("data"),
            "regions": [{k: v for k, v in h.items() if k != "classification"}
                        for h in record.get("human") or []],
            "decision": "human", "pipeline_version": decided.get("version"),
            "labelstudio": {"project": project, "task": raw.get("id"),
                            "annotation": final.get("id"), "reviewer": final.get("completed_by"),
                            "time": final.get("updated_at"), "annotations": len(annotations)},
            "released": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def status(config: RunConfig) -> dict[str, Any]:
    """Counts, the precision the audits show with its exact interval, and whether auto-accept
    is suspended, from the ledger alone (no server needed)."""
    ledger = config.workspace.ledger
    decisions, outbox = Decisions(ledger), Outbox(ledger)
    try:
        rows = list(decisions.rows())
        current = load(config)
        off = suspended(config, current, decisions)
        n, right = decisions.audits(current.id) if current else (0, 0)
        counts = outbox.counts()
    finally:
        decisions.close()
        outbox.close()
    by = Counter(r["decision"] for r in rows)
    reviewed = sum(r["reviewed"] is not None for r in rows)
    per_label: dict[str, Counter[str]] = {}
    for r in rows:
        for label in (r["labels"] or "(none)").split(","):
            per_label.setdefault(label, Counter())[r["decision"]] += 1
    delta = config.review.delta
    precision = None
    if n:
        precision = {"audited": n, "right": right, "value": round(right / n, 4),
                     "low": round(1 - clopper_pearson_upper(n - right, n, delta / 2), 4),
                     "high": round(1 - clopper_pearson_lower(n - right, n, delta / 2), 4),
                     "confidence": 1 - delta}
    span = (max(r["decided"] for r in rows) - min(r["decided"] for r in rows)) if rows else 0
    if off:
        headline = off
    elif current is not None and current.threshold is not None:
        headline = (f"auto-accept on: threshold {current.threshold} (calibration "
                    f"{current.id}, {current.model_version})")
    else:
        headline = "auto-accept off: no calibrated threshold (run `preannot review calibrate`)"
    return {"headline": headline, "suspended": off,
            "calibration": current.id if current else None,
            "pipeline_version": current.model_version if current else None,
            "threshold": current.threshold if current else None,
            "target_precision": config.review.target_precision,
            "tasks": {"seen": len(rows), "auto": by[AUTO], "audit": by[AUDIT],
                      "routed": by[ROUTE], "reviewed": reviewed,
                      "waiting": sum(r["decision"] == ROUTE and r["reviewed"] is None
                                     for r in rows),
                      "not_in_label_studio": sum(r["decision"] != AUTO and not r["pushed"]
                                                 for r in rows)},
            "released": counts, "realised_precision": precision,
            "throughput_per_hour": round(len(rows) / span * 3600, 1) if span > 0 else None,
            "labels": {k: dict(v) for k, v in sorted(per_label.items())},
            "drift": drift.summary(config)}



def write_dashboard(config: RunConfig, figures: dict[str, Any]) -> Path:
    """``review/status.html`` from :func:`status`'s figures."""
    return page.dashboard(figures, config.review.output_dir / "status.html")
