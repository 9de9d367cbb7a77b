"""`ls pull`'s operation: fetch what changed in a Label Studio project, rewrite corrections,
metrics and the report from every task pulled so far, fill the Data Manager tabs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..annotator import ConfigError
from ..engine.config import RunConfig
from ..engine.host import get_host
from ..evaluation.corrections import Options, write_outputs
from ..evaluation.labels import LabelMap
from ..labelstudio.client import Client, LabelStudioError
from ..labelstudio.labeling_config import labels_of
from ..labelstudio.sync import Progress, quiet
from .store import HarvestStore, PullSummary, pull as fetch


@dataclass
class Harvest:
    """What a pull fetched and the metrics it wrote."""

    project_id: int
    project_title: str
    fetched: PullSummary
    metrics: dict[str, Any]
    output_dir: Path
    tabs: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Data Manager tab title -> (view id, tasks in it), of the tabs this pull filled."""
    warnings: list[str] = field(default_factory=list)
    """What could not be done on the server (the outputs are written all the same)."""


ADJUDICATE = ("needs adjudication", "preannot_disagreement")
REANNOTATE = ("needs re-annotation", "preannot_reannotate")
"""Data Manager tabs: (title, the task data field they filter on and sort by)."""


def mark(client: Client, store: HarvestStore, key: str, values: dict[int, float]) -> int:
    """Set ``data[key]`` of the tasks in ``values`` and remove it from the others that hold it,
    writing only what changed (the store notes each write, so the next pull does not count it
    as a human's change): how many tasks were updated."""
    changed = 0
    for task in store.tasks_holding(key, set(values)):
        data = task.get("data") or {}
        want = values.get(task["id"])
        if data.get(key) == want or (want is None and key not in data):
            continue
        new = {k: v for k, v in data.items() if k != key}
        if want is not None:
            new[key] = want
        store.wrote(task["id"], (client.set_task_data(task["id"], new) or {}).get("updated_at"))
        changed += 1
    return changed


def tabs(client: Client, project_id: int, store: HarvestStore, metrics: dict[str, Any]
         ) -> dict[str, tuple[int, int]]:
    """The "needs adjudication" tab (by disagreement, highest first) and the "needs
    re-annotation" tab (annotated under a label spec that cannot be mapped forward)."""
    out = {}
    for (title, key), values in (
            # above 0 even at threshold 0: the tab shows what is above 0
            (ADJUDICATE, {t["task"]: max(t["disagreement"], 0.0001)
                          for t in metrics["adjudication"]["tasks"]}),
            (REANNOTATE, {t["task"]: 1 for t in metrics["reannotate"]["tasks"]})):
        mark(client, store, key, values)
        if values:
            out[title] = (client.ensure_view(project_id, title, key), len(values))
    return out


def _spec_change(fetched: PullSummary) -> dict[str, Any] | None:
    """The labeling config's version now and, when it changed since the last pull, what did."""
    if not fetched.spec:
        return None
    now, before = labels_of(fetched.spec), fetched.previous_spec
    out: dict[str, Any] = {"version": fetched.spec["version"], "changed": before is not None}
    if before is not None:
        was = labels_of(before)
        out.update(previous=before["version"], added=sorted(now - was), removed=sorted(was - now))
    return out


def pull(config: RunConfig, client: Client, *, project: str | None = None,
         output_dir: Path | None = None, model_version: str | None = None, full: bool = False,
         duplicates: bool = False, progress: Progress = quiet) -> Harvest:
    """Fetch the tasks changed since the last pull (all with ``full``) and rewrite, from every
    task pulled so far, corrections.jsonl, metrics.json and report.html. ``duplicates`` (the
    ``ls pull`` command, not a server's background harvest, which would build the annotators
    a second time): with ``[selection]`` configured, also group the near-duplicates among the
    annotated tasks."""
    project = project or config.labelstudio.project
    if project is None:
        raise ConfigError("which project? pass --project or set [labelstudio] project")
    found = client.project(project)
    store = HarvestStore(config.workspace.ledger, f"{client.url}#{found.id}")
    try:
        if full:
            store.forget()
        fetched = fetch(client, found.id, store, progress=progress,
                        label_config=getattr(found, "label_config", None))
        out = output_dir or config.harvest.output_dir
        current = labels_of(fetched.spec) if fetched.spec else None
        warnings = []
        try:
            names = client.users()
        except LabelStudioError as exc:  # a token that may not list users: ids instead
            names = None
            warnings.append(f"annotators are shown by user id: {exc}")
        options = Options(
            truth=config.harvest.truth,
            adjudication_threshold=config.harvest.adjudication_threshold,
            names=names,
            labels=LabelMap.of(config.labels.rename, config.labels.merge, current,
                               store.earlier_labels(fetched.spec["version"]) if fetched.spec
                               else frozenset()),
            churn=store.churn(), link=f"{client.url}/projects/{found.id}/data?task={{task}}",
            spec=_spec_change(fetched))
        if duplicates:
            options.duplicates = lambda path: get_host().hook.harvest_duplicates(
                config=config, corrections=path, warnings=warnings)
        metrics = write_outputs(store.tasks, out, model_version=model_version,
                                thresholds=config.harvest.thresholds,
                                title=f"preannot harvest: {found.title}", options=options)
        try:
            made = tabs(client, found.id, store, metrics)
        except LabelStudioError as exc:
            made = {}
            warnings.append(f"Data Manager tabs not updated: {exc}; the next `preannot ls pull` "
                            "tries again")
    finally:
        store.close()
    return Harvest(found.id, found.title, fetched, metrics, out, made, warnings)
