"""Push pre-annotations into a Label Studio project, in bulk, idempotently, ranked.

State is derived from the server, never kept beside it: tasks carry ``meta.preannot_id``, so a
rerun (after a crash or a server that went away mid-push) lists what the project already holds
and sends only the rest. New tasks go in with their prediction (``projects.import_tasks``, thousands
per request); tasks already in the project get the new model version's prediction through
``projects.import_predictions``. Each task gets one prediction that gathers every annotator's
regions (provenance stays in each region), so the project's ``model_version`` names one thing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..annotator import Annotator, ConfigError, Ranker, batches
from .ranking import priority_to_score
from ..engine.readers import IMAGE_SUFFIXES
from ..engine.runner import Annotated, annotate
from ..lsjson import iter_json_array, ls_to_predictions, ls_to_task, prediction_to_ls, task_key
from ..model import Prediction, Task
from .client import Client, LabelStudioError, Unreachable
from .labeling_config import Fit, fit, generate
from .local_files import refuse_escaping_links

Engine = Callable[[Iterable[tuple[int, list[Task]]]], Iterable[tuple[int, list[Annotated]]]]
"""Annotates ``(key, tasks)`` chunks, yielding ``(key, annotated tasks)`` (the Ray engine's
:func:`~preannot.engine.ray_engine.annotated_stream`)."""

PRIORITY_FIELD = "preannot_priority"
"""Task data key holding the rank's priority, which the Data Manager view sorts on."""
VIEW_TITLE = "preannot: by priority"
SAMPLING = "Uncertainty sampling"
BATCH = 5000


@dataclass
class PushSummary:
    project_id: int
    model_version: str = ""
    created: int = 0
    """New tasks imported with their prediction."""
    predicted: int = 0
    """Tasks already in the project that got this model version's prediction."""
    unchanged: int = 0
    """Tasks that already held this model version's prediction."""
    failures: list[tuple[str, str]] = field(default_factory=list)
    """(task, reason) of tasks not pushed."""
    notices: list[str] = field(default_factory=list)
    """What the user should know about tasks that were pushed (images the editor cannot show)."""

    def describe(self, url: str) -> str:
        """One line for the user: where the project is and what the push did."""
        if not (self.created or self.predicted or self.unchanged or self.failures):
            return (f"project {self.project_id} {url}/projects/{self.project_id}: no task to "
                    f"pre-annotate (every task is labeled already): nothing to update")
        return (f"project {self.project_id} {url}/projects/{self.project_id}: {self.created} "
                f"tasks created with their predictions, {self.predicted} tasks already there "
                f"given predictions, {self.unchanged} already up to date; model_version "
                f"{self.model_version}")


@dataclass
class Item:
    """One task ready to push: its stable id, where it came from, its Label Studio payload."""

    key: str
    source: str
    data: dict[str, Any]
    meta: dict[str, Any]
    prediction: dict[str, Any]


def read_import_file(path: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
    """(source, task) from a runner output (JSON list or JSON lines); a bad record comes as
    (source, error message) so the push reports it and goes on; so is a list cut short, after
    the tasks before the cut."""
    if not path.exists():
        raise ConfigError(f"{path}: no such file; run `preannot run` first")
    if path.suffix.lower() in {".jsonl", ".ndjson"}:
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield f"{path.name}:{lineno}", json.loads(line)
                    except json.JSONDecodeError as exc:
                        yield f"{path.name}:{lineno}", f"invalid JSON: {exc.msg}"
        return
    index = -1
    try:  # streamed, so memory does not grow with the file
        with path.open("rb") as f:
            for index, task in enumerate(iter_json_array(iter(lambda: f.read(1 << 16), b""))):
                yield f"{path.name}[{index}]", task
    except ValueError:
        if index >= 0:
            yield (f"{path.name}[{index + 1}]",
                   f"invalid JSON: the file ends early (truncated?) after task {index}")
            return
        try:  # not a list: a single task, or say where the JSON breaks
            task = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
        yield f"{path.name}[0]", task


def model_version_of(annotators: Sequence[Annotator]) -> str:
    """The model version of the combined prediction: the annotators' versions joined (those
    behind a combiner too: a new model version upstream is a new prediction)."""
    return "+".join(a.model_version for a in annotators)


def prepare(task: Task, payload: Sequence[dict[str, Any]],
            predictions: Callable[[], Sequence[Prediction]], model_version: str | None,
            ranker: Ranker | None) -> Item | str:
    """An :class:`Item` from a task and its Label Studio predictions (``payload``), or why it
    cannot be pushed. The predictions as objects (``predictions()``) are asked for only when a
    ranker needs them."""
    meta = {**task.meta, "preannot_id": task.id}
    results = [r for p in payload for r in p.get("result", [])]
    version = model_version or "+".join(p.get("model_version", "") for p in payload)
    if not version:
        return "no model_version: the task has no predictions"
    scores = [p["score"] for p in payload if p.get("score") is not None]
    data = dict(task.data)
    prediction: dict[str, Any] = {"model_version": version, "result": results}
    if ranker is not None:
        try:
            priority = float(ranker.priority(task, predictions()))
        except Exception as exc:  # a ranker bug or an odd region fails this task alone
            return f"ranker {ranker.type!r} failed: {type(exc).__name__}: {exc}"
        data[PRIORITY_FIELD] = round(priority, 6)
        prediction["score"] = priority_to_score(priority)
    elif scores:
        prediction["score"] = min(scores)
    return Item(task.id, task.source, data, meta, prediction)


def from_import_file(source: str, item: Any, model_version: str | None, ranker: Ranker | None,
                     annotators: dict[str, str] | None = None) -> Item | str:
    """An :class:`Item` from a task of a `preannot run` output (or any Label Studio import
    task with predictions); ``annotators`` maps model versions to annotator names."""
    try:
        task = ls_to_task(item, source)
    except ValueError as exc:
        return str(exc)
    return prepare(task, item.get("predictions") or [],
                   lambda: ls_to_predictions(item, task.id, annotators), model_version, ranker)


LOCAL_FILES = "/data/local-files/?d="


def local_images(data: dict[str, Any]) -> dict[str, Path]:
    """The task data keys holding an image file on this machine (absolute path, exists)."""
    found = {}
    for key, value in data.items():
        if isinstance(value, str) and value.startswith("/") and not value.startswith("/data/"):
            path = Path(value)
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                found[key] = path
    return found


def serve_local_images(client: Client, project_id: int, items: Sequence[Item],
                       root: str) -> tuple[list[Item], list[tuple[str, str]], int]:
    """Point the items' local images at Label Studio's local-files serving (``root`` is its
    document root) and make sure a Local Files storage covers each folder, which Label Studio
    requires before it serves a file; the original path stays in ``meta.preannot_image``.

    Returns the items to push, the failures (an image folder holding a link out of ``root``:
    Label Studio would serve the link's target, so no storage is made and its tasks fail) and
    how many items hold images outside ``root`` (pushed as they are: the editor cannot show
    them)."""
    base = Path(root).resolve()
    folder_of: dict[int, Path] = {}
    outside = set()
    for index, item in enumerate(items):
        for key, path in local_images(item.data).items():
            resolved = path.resolve()
            try:
                relative = resolved.relative_to(base)
            except ValueError:
                outside.add(index)
                continue
            item.meta.setdefault("preannot_image", str(path))
            item.data[key] = LOCAL_FILES + quote(relative.as_posix(), safe="/")
            folder_of[index] = resolved.parent
    if not folder_of:
        return list(items), [], len(outside)
    have = {Path(s.path) for s in client.call(client.sdk.import_storage.local.list,
                                              project=project_id,
                                              what="listing Local Files storages") if s.path}
    refused: dict[Path, str] = {}
    for folder in sorted(set(folder_of.values()) - have):
        try:
            refuse_escaping_links(folder, base)
        except ConfigError as exc:
            refused[folder] = str(exc)
            continue
        client.call(client.sdk.import_storage.local.create, project=project_id, path=str(folder),
                    title=f"preannot {folder.name}", use_blob_urls=False,
                    what=f"adding a Local Files storage for {folder}")
    failures = [(item.source, refused[folder_of[i]]) for i, item in enumerate(items)
                if folder_of.get(i) in refused]
    kept = [item for i, item in enumerate(items) if folder_of.get(i) not in refused]
    return kept, failures, len(outside)


class Pusher:
    """Pushes batches of items to one project, resuming from what the server already holds."""

    def __init__(self, client: Client, project_id: int, model_version: str,
                 progress: Callable[[int], None] | None = None) -> None:
        self.client = client
        self.project_id = project_id
        self.model_version = model_version
        self.progress = progress or (lambda n: None)
        self.summary = PushSummary(project_id, model_version)
        self.refresh()

    def refresh(self) -> None:
        """Re-read which tasks the project holds and which have this model version."""
        self.index = {t["meta"]["preannot_id"]: t["id"]
                      for t in self.client.tasks(self.project_id)
                      if isinstance(t.get("meta"), dict) and t["meta"].get("preannot_id")}
        self.has_version = {t["id"] for t in self.client.tasks(
            self.project_id, include="id", model_version=self.model_version)}

    def push(self, items: Sequence[Item]) -> None:
        """Send one batch; a transient failure waits, re-reads the server, and sends the rest."""
        for attempt in range(self.client.retries + 1):
            try:
                self._send(items)
                self.progress(len(items))
                return
            except Unreachable:
                if attempt == self.client.retries:
                    raise
            time.sleep(self.client.backoff * 2 ** attempt)
            try:
                self.refresh()
            except Unreachable:
                pass  # still down: the next attempt fails the same way and waits longer

    def _send(self, items: Sequence[Item]) -> None:
        new = [i for i in items if i.key not in self.index]
        todo = [i for i in items if i.key in self.index and self.index[i.key] not in self.has_version]
        done_before = len(items) - len(new) - len(todo)
        if new:
            reply = self.client.call(
                self.client.sdk.projects.import_tasks, self.project_id, retry=False,
                what=f"importing {len(new)} tasks", return_task_ids=True,
                request=[{"data": i.data, "meta": i.meta, "predictions": [i.prediction]}
                         for i in new])
            ids = list(reply.task_ids or [])
            if len(ids) != len(new):  # no id list to map back: ask the server
                self.refresh()
            else:
                self.index.update((i.key, tid) for i, tid in zip(new, ids))
                self.has_version.update(ids)
            self.summary.created += len(new)
        if todo:
            self.client.call(
                self.client.sdk.projects.import_predictions, self.project_id, retry=False,
                what=f"importing {len(todo)} predictions",
                request=[{"task": self.index[i.key], **i.prediction} for i in todo])
            self.has_version.update(self.index[i.key] for i in todo)
            self.summary.predicted += len(todo)
        self.summary.unchanged += done_before

    def finish(self, ranked: bool) -> PushSummary:
        """Point the project at this model version; with a ranking, serve it in rank order.
        A version no task holds is left alone (Label Studio refuses it, and there is nothing
        to point at: every task was labeled already)."""
        changes: dict[str, Any] = {"model_version": self.model_version} if self.has_version else {}
        if ranked:
            changes["sampling"] = SAMPLING
        if changes:
            self.client.call(self.client.sdk.projects.update, self.project_id, **changes,
                             what="setting the project's model version")
        if ranked:
            views = self.client.call(self.client.sdk.views.list, project=self.project_id,
                                     what="listing views")
            if not any((v.data or {}).get("title") == VIEW_TITLE for v in views):
                self.client.call(self.client.sdk.views.create, project=self.project_id,
                                 what="creating the priority view",
                                 data={"title": VIEW_TITLE,
                                       "ordering": [f"-tasks:data.{PRIORITY_FIELD}"]})
        return self.summary


def push_tasks(client: Client, project_id: int, tasks: Iterable[tuple[str, Any]], *,
               model_version: str | None = None, ranker: Ranker | None = None,
               annotators: Sequence[Annotator] = (), batch_size: int = BATCH,
               progress: Callable[[int], None] | None = None) -> PushSummary:
    """Push (source, Label Studio task with predictions) pairs, e.g. a runner output file;
    ``annotators`` (the configured ones) name the predictions a ranker compares. Images on this
    machine are served by Label Studio when ``client.local_files_root`` says how; else they
    are pushed as they are, and the summary says the editor will not show them."""
    pusher: Pusher | None = None
    failures: list[tuple[str, str]] = []
    names = {a.model_version: a.name for a in annotators}
    unseen = outside = 0
    for batch in batches(tasks, batch_size):
        items: list[Item] = []
        seen: set[str] = set()
        for source, task in batch:
            item = task if isinstance(task, str) else from_import_file(source, task, model_version,
                                                                       ranker, names)
            if isinstance(item, str):
                failures.append((source, item))
            elif item.key in seen:
                failures.append((source, f"duplicate task id {item.key!r}"))
            else:
                seen.add(item.key)
                items.append(item)
        if items and pusher is None:
            pusher = Pusher(client, project_id, model_version or items[0].prediction["model_version"],
                            progress)
        if client.local_files_root:
            items, refused, elsewhere = serve_local_images(client, project_id, items,
                                                           client.local_files_root)
            failures += refused
            outside += elsewhere
        else:
            unseen += sum(1 for i in items if local_images(i.data))
        if pusher:
            pusher.push(items)
        if progress and len(items) < len(batch):
            progress(len(batch) - len(items))
    if pusher is None:
        summary = PushSummary(project_id, model_version or "")
    else:
        summary = pusher.finish(ranked=ranker is not None)
    summary.failures = failures
    if outside:
        summary.notices.append(
            f"{outside} tasks hold images outside {client.local_files_root}, the folder Label "
            f"Studio at {client.url} serves files from: its editor will not show them. Add "
            "their folder to [input] paths and restart `preannot ls up`, or set [labelstudio] "
            "local_files_root to a folder above them that holds only images")
    if unseen:
        summary.notices.append(
            f"{unseen} tasks hold image paths on this machine, which Label Studio at "
            f"{client.url} does not serve: its editor will not show them. Start that server "
            "with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and "
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<a folder above the images>, and set "
            "[labelstudio] local_files_root to that folder (preannot then adds a Local Files "
            "storage per image folder), or put the images behind http(s) URLs")
    return summary


def annotate_project(client: Client, project_id: int, annotators: Sequence[Annotator], *,
                     ranker: Ranker | None = None, batch_size: int = 256,
                     unlabeled_only: bool = False,
                     progress: Callable[[int], None] | None = None,
                     engine: Engine | None = None, fits: Fit | None = None) -> PushSummary:
    """Pre-annotate the tasks already in a project with ``annotators``; predictions go in bulk.
    ``unlabeled_only`` leaves out tasks a human has annotated or skipped; ``engine`` annotates
    the batches elsewhere (the Ray engine), else here, in order."""
    version = model_version_of(annotators)
    pusher = Pusher(client, project_id, version, progress)
    failures: list[tuple[str, str]] = []
    pending = (t for t in client.tasks(
                   project_id, include="id,data,meta,total_annotations,cancelled_annotations")
               if t["id"] not in pusher.has_version and not (
                   unlabeled_only and (t.get("total_annotations") or t.get("cancelled_annotations"))))

    def chunks() -> Iterator[tuple[int, list[Task]]]:
        for key, batch in enumerate(batches(pending, batch_size)):
            tasks = [Task(id=task_key((t.get("meta") or {}).get("preannot_id"), t["id"]),
                          data=t["data"], source=f"task {t['id']}", meta=dict(t.get("meta") or {}))
                     for t in batch]
            for t, raw in zip(tasks, batch):  # tasks imported elsewhere are known by their LS id
                pusher.index.setdefault(t.id, raw["id"])
            yield key, tasks

    run_chunks = engine or (lambda chunks: ((key, annotate(annotators, tasks))
                                            for key, tasks in chunks))
    for _, annotated in run_chunks(chunks()):
        items = []
        for done in annotated:
            task = done.task
            if done.failure is not None:
                failures.append((task.source, f"{done.failure[0]} {done.failure[1] or ''}".strip()))
                continue
            shown = fits.predictions(done.predictions) if fits else done.predictions
            item = prepare(task, [prediction_to_ls(p) for p in shown],
                           lambda shown=shown: shown, version, ranker)
            if isinstance(item, str):
                failures.append((task.source, item))
            else:
                items.append(item)
        pusher.push(items)
    summary = pusher.finish(ranked=ranker is not None)
    summary.failures = failures
    return summary


def ensure_project(client: Client, project: int | str | None, *, title: str,
                   annotators: Sequence[Annotator], label_config: str | None = None,
                   log: Callable[[str], None] = lambda line: None) -> int:
    """The id of an existing project (by id or title) or of a new one titled ``title``.

    The labeling config (given, or generated from the annotators) is checked against what the
    annotators emit, so predictions do not silently vanish from the editor; the labels it lacks
    are said (``log``): their predictions are left out.
    """
    if project is not None:
        try:
            found = client.project(project)
        except LabelStudioError:
            if isinstance(project, int) or str(project).isdigit():
                raise
            found = None
        if found is not None:
            if annotators:
                _fitting(fit(found.label_config or "", annotators), log,
                         f"project {found.id} ({found.title!r}) does not fit the annotators")
            return found.id
        title = str(project)
    if len(title) < 3:
        raise ConfigError(f"project title {title!r} is too short: Label Studio needs 3 characters")
    if label_config is None:
        if not annotators:
            raise ConfigError("cannot create a project without a labeling config: configure "
                              "[[annotators]] or set [labelstudio] label_config")
        label_config = generate(annotators)
    elif annotators:
        _fitting(fit(label_config, annotators), log,
                 "the labeling config does not fit the annotators")
    created = client.call(client.sdk.projects.create, title=title, label_config=label_config,
                          what=f"creating project {title!r}")
    return created.id


def _fitting(found: Fit, log: Callable[[str], None], refusal: str) -> None:
    """Refuse a labeling config that cannot show the annotators' predictions; say which
    labels it lacks."""
    if found.problems:
        raise ConfigError(refusal + ":\n  " + "\n  ".join(found.problems))
    if found.note:
        log(found.note)
