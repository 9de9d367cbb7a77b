"""The drift monitor as plain functions: keep a profile of each decided task, check the window
against the current calibration's tasks, raise and clear alarms, and react (README "Drift").

While an alarm lasts, the calibration's guarantee no longer holds: auto-accept is suspended for
the labels concerned (or every label), the audit rate goes up, and drifted tasks are sampled
into the labeling project, ranked first. The alarm clears only when a recalibration that holds
enough reviewed post-drift tasks passes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..annotator import Annotator, Ranker
from ..engine.config import RunConfig
from ..evaluation.corrections import ADDED, read_corrections
from ..labelstudio.client import Client, LabelStudioError, Unreachable
from ..labelstudio.push import push_tasks, read_import_file
from ..lsjson import task_key
from .alarms import Alarm, Alarms
from .calibration import Calibration, is_right, label_of
from .reviewed import reviewed_corrections
from .drift_signals import Signal, compare, image_stats, new_terms, profile, words

Log = Callable[[str], None]
FOLDER = "drift"


def _quiet(_: str) -> None:
    pass


def reference_path(config: RunConfig, calibration_id: str) -> Path:
    return config.review.output_dir / FOLDER / f"reference-{calibration_id}.jsonl"


def _image(config: RunConfig, data: Mapping[str, Any]) -> dict[str, Any] | None:
    """Image statistics of the task's image, if it has one (an unreadable one: None)."""
    from ..engine.readers import IMAGE_SUFFIXES
    value = next((v for v in data.values() if isinstance(v, str)
                  and v.lower().split("?")[0].endswith(tuple(IMAGE_SUFFIXES))), None)
    if value is None:
        return None
    try:
        from PIL import Image

        from ..images import locate_image
        with Image.open(locate_image(value, config.context())) as image:
            return image_stats(image)
    except Exception:  # an image the pipeline could not read either: no statistics
        return None


def task_profile(config: RunConfig, key: str, data: Mapping[str, Any],
                 result: Sequence[Mapping[str, Any]], probability: float | None,
                 threshold: float | None) -> dict[str, Any]:
    return profile(key, data, result, probability, threshold, _image(config, data))


def write_reference(config: RunConfig, calibration: Calibration,
                    records: Iterable[Mapping[str, Any]]) -> Path:
    """The calibration's tasks as the drift monitor's reference (called by `review calibrate`)."""
    path = reference_path(config, calibration.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for r in records:
            result = r.get("predicted") or []
            p = calibration.probability(result)
            item = task_profile(config, task_key(r.get("preannot_id"), r.get("task")),
                                r.get("data") or {}, result, p, calibration.threshold)
            out.write(json.dumps({**item, "right": is_right(r)}) + "\n")
    return path


def read_reference(config: RunConfig, calibration: Calibration | None) -> list[dict[str, Any]]:
    if calibration is None or not reference_path(config, calibration.id).exists():
        return []
    text = reference_path(config, calibration.id).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def store(config: RunConfig) -> Alarms:
    return Alarms(config.workspace.ledger)


@dataclass
class Hold:
    """What an active alarm changes in `review run`'s decisions."""

    alarm: Alarm
    suspend: str
    audit_rate: float

    def reason(self, labels: Iterable[str]) -> str | None:
        """Why a task with these predicted labels may not be auto-accepted (None: it may)."""
        if self.suspend == "off":
            return None
        concerned = self.alarm.labels
        if self.suspend == "labels" and concerned is not None and not set(labels) & set(concerned):
            return None
        scope = "every label" if self.suspend == "all" or concerned is None else \
            ", ".join(concerned)
        return (f"drift: auto-accept suspended for {scope} while alarm {self.alarm.id} "
                f"({', '.join(self.alarm.signals)}) lasts; the calibration's guarantee does not "
                "hold")


def hold(config: RunConfig, alarms: Alarms | None = None) -> Hold | None:
    """The reactions to the active alarm, if any (None: no alarm, or the monitor is off)."""
    if not config.drift.enabled:
        return None
    own = alarms is None
    alarms = alarms or store(config)
    try:
        active = alarms.active()
    finally:
        if own:
            alarms.close()
    if active is None:
        return None
    return Hold(active, config.drift.suspend,
                max(config.review.audit_rate, config.drift.audit_rate))


def record(config: RunConfig, profiles: Iterable[dict[str, Any]]) -> None:
    alarms = store(config)
    try:
        alarms.record(profiles)
    finally:
        alarms.close()


@dataclass
class Checked:
    """One check of the window against the reference, and what it set off."""

    signals: list[Signal] = field(default_factory=list)
    window: int = 0
    reference: int = 0
    calibration: str | None = None
    alarm: Alarm | None = None
    """The alarm active after the check."""
    raised: bool = False
    cleared: str | None = None
    """How the alarm was cleared in this check."""
    terms: list[tuple[str, str, int]] = field(default_factory=list)
    sampled: int = 0
    notices: list[str] = field(default_factory=list)
    suspend: str = "labels"

    @property
    def headline(self) -> str:
        if self.alarm is not None:
            a = self.alarm
            return f"DRIFT alarm {a.id} since task {a.raised_seq} ({', '.join(a.signals)}): " \
                + _effect(self.suspend, a.labels)
        if not self.signals:
            return (f"drift: not checked yet ({self.window} tasks in the window, "
                    f"{self.reference} reference tasks)")
        tested = sum(s.p_value is not None for s in self.signals)
        return f"drift: none ({tested} signals tested on the last {self.window} tasks)"

    def to_json(self) -> dict[str, Any]:
        return {"headline": self.headline, "window": self.window, "reference": self.reference,
                "calibration": self.calibration, "raised": self.raised, "cleared": self.cleared,
                "alarm": None if self.alarm is None else self.alarm.__dict__,
                "signals": [s.to_json() for s in self.signals],
                "new_terms": [{"term": t, "label": label, "count": n}
                              for t, label, n in self.terms],
                "sampled": self.sampled, "notices": self.notices}


def check(config: RunConfig, calibration: Calibration | None, *, client: Client | None = None,
          built: list[Annotator] | None = None, save: bool = True) -> Checked:
    """Clear the active alarm if a passing recalibration on post-drift data came since; test the
    window against the reference; raise an alarm when a signal fires; sample drifted tasks into
    the labeling project while an alarm lasts (with a ``client``). ``save``: record the check
    (the dashboard's history) and any alarm; without it, nothing changes."""
    settings = config.drift
    alarms = store(config)
    try:
        checked = Checked(calibration=calibration.id if calibration else None,
                          suspend=settings.suspend)
        active = alarms.active()
        if active is not None and save:
            checked.cleared = _clear(config, alarms, active, calibration)
            if checked.cleared:
                active = None
        reference = read_reference(config, calibration)
        window = alarms.window(settings.window, after=alarms.last_cleared_seq())
        checked.window, checked.reference = len(window), len(reference)
        if reference and len(window) >= settings.min_window:
            checked.signals, vocab = compare(reference, window, alpha=settings.alpha)
            checked.terms = new_terms(_added(config, {p["key"] for p in window}), vocab)
            fired = [s for s in checked.signals if s.fired]
            if fired and active is None and save:
                active = _raise(config, alarms, calibration, fired)
                checked.raised = True
            if save:
                alarms.add_check(checked.calibration, window,
                                 [s.to_json() for s in checked.signals],
                                 active.id if active else None)
            if active is not None and save and settings.sample and client is not None:
                checked.sampled = _sample(config, alarms, active, window, vocab, client,
                                          built or [], checked.notices)
        checked.alarm = active
        return checked
    finally:
        alarms.close()


def _raise(config: RunConfig, alarms: Alarms, calibration: Calibration | None,
           fired: list[Signal]) -> Alarm:
    """An alarm on the fired signals: label-specific when every one of them names labels."""
    labels = None
    if config.drift.suspend == "labels" and all(s.labels for s in fired):
        labels = sorted({label for s in fired for label in s.labels})
    alarm = alarms.raise_alarm(calibration.id if calibration else None,
                               [s.name for s in fired], labels)
    for s in fired:
        alarms.event(alarm.id, "signal", f"{s.name}: {s.test}, statistic {s.statistic:.4g}, "
                     f"p = {s.p_value:.3g}, window of {s.tasks[1]} tasks up to task "
                     f"{alarm.raised_seq}: {s.verdict}")
    reacting = hold(config, alarms)
    if reacting and reacting.suspend != "off":
        scope = "every label" if labels is None or reacting.suspend == "all" else ", ".join(labels)
        alarms.event(alarm.id, "reaction", f"auto-accept suspended for {scope}")
    if reacting:
        alarms.event(alarm.id, "reaction", f"audit rate raised to {reacting.audit_rate}")
    return alarm


def _clear(config: RunConfig, alarms: Alarms, active: Alarm,
           calibration: Calibration | None) -> str | None:
    """Clear the alarm if the current calibration is a newer one that passed and holds at least
    ``min_post_drift`` reviewed tasks decided after the alarm (said once per calibration)."""
    if calibration is None or calibration.id == active.calibration:
        return None
    keys = [p["key"] for p in read_reference(config, calibration)]
    post = alarms.decided_since(keys, active.raised_seq)
    need = config.drift.min_post_drift
    if calibration.threshold is not None and post >= need:
        how = (f"recalibration {calibration.id} passed (threshold {calibration.threshold:.4f}) "
               f"on {post} reviewed tasks decided since the alarm")
        alarms.clear(active, how)
        alarms.event(active.id, "cleared", how)
        return how
    why = ("it guarantees no threshold" if calibration.threshold is None else
           f"it holds {post} reviewed tasks decided since the alarm, {need} needed")
    detail = f"recalibration {calibration.id} does not clear the alarm: {why}"
    if not any(e["detail"] == detail for e in alarms.events()):
        alarms.event(active.id, "kept", detail)
    return None


def _added(config: RunConfig, keys: set[str]) -> list[tuple[str, str]]:
    """(text, label) of regions reviewers added to the window's tasks (the review harvest)."""
    path = reviewed_corrections(config)
    if not path.exists():
        return []
    out = []
    for r in read_corrections(path, []):
        if task_key(r.get("preannot_id"), r.get("task")) in keys:
            out += [(str((h.get("value") or {}).get("text") or ""), label_of(h))
                    for h in r.get("human") or [] if h.get("classification") == ADDED]
    return out


class _First(Ranker):
    """Drifted tasks first in the labeling project."""

    type = "drift"

    def priority(self, task: Any, predictions: Any) -> float:
        return 1.0


def drifted(window: Sequence[Mapping[str, Any]], vocab: set[str], alarm: Alarm
            ) -> list[tuple[float, str]]:
    """(how new, key) of the window's tasks since the alarm, newest-looking first: the share of
    their words the reference never had, plus one for a label the alarm concerns."""
    out = []
    for p in window:
        ws = words(p.get("text") or "")
        score = sum(w not in vocab for w in ws) / len(ws) if ws else 0.0
        score += float(bool(alarm.labels and set(p.get("labels") or []) & set(alarm.labels)))
        out.append((score, p["key"]))
    return sorted(out, key=lambda x: (-x[0], x[1]))


def _sample(config: RunConfig, alarms: Alarms, alarm: Alarm, window: list[dict[str, Any]],
            vocab: set[str], client: Client, built: list[Annotator], notices: list[str]) -> int:
    """Push up to ``[drift] sample`` drifted tasks (per alarm) into the labeling project,
    ranked first; what Label Studio refuses waits for the next check."""
    from ..labelstudio import sync
    done = alarms.sampled(alarm.id)
    room = config.drift.sample - len(done)
    recent = [p for p in window if p["seq"] > alarm.raised_seq - config.drift.window]
    picks = [k for score, k in drifted(recent, vocab, alarm) if k not in done][:max(0, room)]
    if not picks:
        return 0
    wanted = set(picks)
    tasks = [(s, t) for s, t in read_import_file(config.review.output_dir / "predictions.json")
             if isinstance(t, dict) and task_key((t.get("meta") or {}).get("preannot_id"),
                                                 data=t.get("data")) in wanted]
    try:
        project = sync.project_for(config, client, built)
        pushed = push_tasks(client, project, tasks, model_version=sync.pipeline_version(
            config, built) if built else None, ranker=_First(), annotators=built)
    except (Unreachable, LabelStudioError) as exc:
        notices.append(f"drifted tasks not sampled into the labeling project: {exc}")
        return 0
    refused = {s for s, _ in pushed.failures}
    keys = [task_key((t.get("meta") or {}).get("preannot_id"), data=t.get("data"))
            for s, t in tasks if s not in refused]
    alarms.add_sampled(alarm.id, keys)
    alarms.event(alarm.id, "reaction", f"{len(keys)} drifted tasks sampled into labeling "
                 f"project {project}, ranked first")
    return len(keys)


def history(config: RunConfig) -> dict[str, Any]:
    """Every check's signals, every alarm and reaction (the dashboard and `preannot drift`)."""
    alarms = store(config)
    try:
        return {"checks": alarms.checks(), "alarms": [a.__dict__ for a in alarms.alarms()],
                "events": alarms.events()}
    finally:
        alarms.close()


def summary(config: RunConfig) -> dict[str, Any]:
    """The drift line of `review status` and the dashboard's drift section, from the ledger
    alone: the active alarm or the last check's verdict, and the history."""
    past = history(config)
    active = next((a for a in reversed(past["alarms"]) if a["cleared"] is None), None)
    last = past["checks"][-1] if past["checks"] else None
    if not config.drift.enabled:
        line = "drift: monitor off ([drift] enabled = false)"
    elif active:
        line = (f"DRIFT alarm {active['id']} since task {active['raised_seq']} "
                f"({', '.join(active['signals'])}): "
                + _effect(config.drift.suspend, active["labels"]))
    elif last is None:
        line = "drift: not checked yet"
    else:
        line = (f"drift: none at the last check ({last['tasks']} tasks, "
                f"{sum(s['p_value'] is not None for s in last['signals'])} signals tested)")
    return {"headline": line, "active": active, **past}


def _effect(suspend: str, labels: list[str] | None) -> str:
    if suspend == "off":
        return ("auto-accept goes on ([drift] suspend = \"off\"): the calibration's guarantee "
                "does not hold until a recalibration on post-drift data passes")
    scope = "every label" if suspend == "all" or labels is None else ", ".join(labels)
    return (f"auto-accept suspended for {scope} until a recalibration on post-drift data "
            "passes")
