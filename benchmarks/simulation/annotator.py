"""One simulated Label Studio user: saves the gold annotation of each task through the real API
(or gold with a controlled mistake), as a careful human would in the editor."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from preannot import Span
from preannot.evaluation.match import ACCEPTED, DELETED, MODIFIED, match
from preannot.labelstudio.client import Client
from preannot.lsjson import result_to_region


class Gold(Protocol):
    """A task's text and its gold spans (start, end, label): the benchmarks' ``Doc`` is one."""

    text: str
    spans: Sequence[tuple[int, int, str]]


@dataclass(frozen=True)
class GoldText:
    text: str
    spans: Sequence[tuple[int, int, str]]


def gold_regions(doc: Gold) -> list[Span]:
    return [Span(start=s, end=e, text=doc.text[s:e], label=label, from_name="label",
                 to_name="text") for s, e, label in doc.spans]


def edits(predicted: list[Span], gold: list[Span]) -> Counter[str]:
    """add / delete / change needed to turn ``predicted`` into ``gold`` (exact span and label)."""
    m = match(predicted, gold)
    kinds = Counter(kind for kind, _, _ in m.predicted)
    return Counter(add=len(m.added), delete=kinds[DELETED], change=kinds[MODIFIED],
                   kept=kinds[ACCEPTED])


def newest_prediction(task: dict[str, Any]) -> tuple[str | None, list[Span]]:
    """The prediction Label Studio shows (the newest): (model version, its spans)."""
    preds = [p for p in task.get("predictions") or [] if isinstance(p, dict)]
    newest = max(preds, key=lambda p: (p.get("created_at") or "", p.get("id") or 0), default=None)
    if newest is None:
        return None, []
    return newest.get("model_version"), [result_to_region(r) for r in newest.get("result") or []
                                         if r.get("type") == "labels"]


def gold_result(key: str, doc: Gold, shown: list[Span], *,
                relabel: str | None = None) -> list[dict[str, Any]]:
    """The annotation the simulated human saves: the gold regions; one the prediction had
    exactly right keeps the predicted region's id, as Label Studio's editor does. ``relabel``:
    the controlled mistake, every region saved with that label instead."""
    kept = {(r.start, r.end, r.label): r.id for r in shown}
    return [{"id": kept.get((s, e, label)) or f"{key}-g{n}", "from_name": "label",
             "to_name": "text", "type": "labels",
             "value": {"start": s, "end": e, "text": doc.text[s:e], "labels": [relabel or label]}}
            for n, (s, e, label) in enumerate(doc.spans)]


@dataclass
class Corrected:
    """What one pass of corrections did: the tasks (Label Studio id -> key), the edits they
    needed, and the model versions the human was shown."""

    tasks: dict[int, str] = field(default_factory=dict)
    edits: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)


class SimulatedAnnotator:
    """A Label Studio user who knows the gold of every task key in ``gold``."""

    def __init__(self, client: Client, gold: Mapping[str, Gold]):
        self.client = client
        self.gold = gold

    def annotate(self, task: dict[str, Any], *, relabel: str | None = None) -> None:
        """Save the gold of ``task`` (as Label Studio lists or exports it, predictions
        included); ``relabel``: a reviewer who calls the prediction wrong."""
        key = task["meta"]["preannot_id"]
        _, shown = newest_prediction(task)
        self.client.call(self.client.sdk.annotations.create, task["id"],
                         result=gold_result(key, self.gold[key], shown, relabel=relabel),
                         what=f"annotating task {task['id']}")

    def correct(self, project_id: int, *, limit: int | None = None,
                threads: int = 4) -> Corrected:
        """Correct to gold the first ``limit`` tasks of the project no one touched (by Label
        Studio id). The tasks and their predictions are read in one listing, not one request
        each."""
        todo = []
        for task in self.client.annotated_tasks(project_id):
            if task.get("annotations"):
                continue
            key = (task.get("meta") or {}).get("preannot_id")
            if key not in self.gold:
                raise RuntimeError(f"task {task['id']} of project {project_id} has no gold")
            todo.append(task)
        todo.sort(key=lambda t: t["id"])
        todo = todo[:limit] if limit is not None else todo
        done = Corrected()
        for task in todo:
            key = task["meta"]["preannot_id"]
            version, shown = newest_prediction(task)
            done.edits += edits(shown, gold_regions(self.gold[key]))
            done.versions[version or "none"] += 1
            done.tasks[task["id"]] = key
        with ThreadPoolExecutor(max(1, threads)) as pool:
            list(pool.map(self.annotate, todo))
        return done
