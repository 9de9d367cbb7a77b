"""Selection as operations: order a push by a selector, find the tasks most like a task, a
text, an image or a weak label ("more like this"), put them first in Label Studio under a Data
Manager tab, and list near-duplicates. Plain functions with callbacks, as in :mod:`.sync`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..annotator import Annotator, ConfigError, Ranker, Selector, TaskFailed, digest
from ..labelstudio.ranking import Uncertainty
from ..engine.config import RunConfig
from ..evaluation.corrections import CORRECTIONS, read_corrections
from ..evaluation.match import ADDED, DELETED, MODIFIED
from ..labelstudio.client import Client
from ..labelstudio.push import read_import_file
from ..lsjson import ls_to_predictions, ls_to_task, task_key
from ..model import Task
from .space import Selection, Space, choose_embedder, duplicate_groups, select

Progress = Callable[[int], None]


class SelectionRanker(Ranker):
    """A selection as ranker priorities, so a push orders the queue the way rankers do."""

    type = "selection"

    def __init__(self, priorities: dict[str, float]) -> None:
        super().__init__({})
        self.priorities = priorities

    def priority(self, task, predictions) -> float:
        return self.priorities.get(task.id, 0.25)


@dataclass
class Labeled:
    """What humans labeled so far (from the last ``ls pull``'s corrections file)."""

    tasks: list[Task] = field(default_factory=list)
    task_ids: list[Any] = field(default_factory=list)
    """The Label Studio id of each of ``tasks``."""
    counts: Counter = field(default_factory=Counter)
    weak: dict[str, list[Task]] = field(default_factory=dict)
    """label -> the tasks where humans added it or corrected a prediction of it."""
    errors: list[str] = field(default_factory=list)


def _label(item: dict[str, Any]) -> str | None:
    if item.get("label"):
        return str(item["label"])
    values = (item.get("value") or {}).get(item.get("type") or "", [])
    return str(values[0]) if isinstance(values, list) and values else None


def labeled(config: RunConfig, path: Path | None = None) -> Labeled:
    """The annotated tasks of a corrections file (default: the harvest's)."""
    out = Labeled()
    path = path or config.harvest.output_dir / CORRECTIONS
    if not path.exists():
        return out
    for record in read_corrections(path, out.errors):
        if record.get("status") != "annotated" or not isinstance(record.get("data"), dict):
            continue
        task = Task(task_key(record.get("preannot_id"), record.get("task")), record["data"],
                    source=f"{path.name} task {record.get('task')}")
        out.tasks.append(task)
        out.task_ids.append(record.get("task"))
        weak = set()
        for item in record.get("human") or []:
            if (label := _label(item)) is not None:
                out.counts[label] += 1
                if item.get("classification") == ADDED:
                    weak.add(label)
        for item in record.get("predicted") or []:
            if item.get("classification") in (MODIFIED, DELETED) and (label := _label(item)):
                weak.add(label)
        for label in weak:
            out.weak.setdefault(label, []).append(task)
    return out


@dataclass
class Candidates:
    """A pool read from a `preannot run` output: tasks, their uncertainty and labels."""

    tasks: list[Task] = field(default_factory=list)
    uncertainty: list[float] = field(default_factory=list)
    labels: list[list[str]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


def candidates(path: Path, skip: set[str] = frozenset()) -> Candidates:
    """The tasks of an import file not in ``skip`` (labeled ones), with what their
    predictions say."""
    out = Candidates()
    scorer = Uncertainty()
    for source, item in read_import_file(path):
        if isinstance(item, str):
            out.failures.append((source, item))
            continue
        try:
            task = ls_to_task(item, source)
            predictions = ls_to_predictions(item, task.id)
        except (ValueError, KeyError, TypeError) as exc:
            out.failures.append((source, str(exc)))
            continue
        if task.id in skip:
            continue
        out.tasks.append(task)
        out.uncertainty.append(scorer.priority(task, predictions))
        out.labels.append(sorted({r.label for p in predictions for r in p.regions}))
    return out


def open_space(config: RunConfig, annotators: Sequence[Annotator],
               fit_on: Sequence[Task] | Callable[[], Sequence[Task]]) -> Space:
    return Space(config, choose_embedder(config, annotators, fit_on))


@dataclass
class Embedded:
    """What :func:`embed_output` did: the model version, the index file, the tasks embedded
    and those that could not be (source, why), the output's unreadable records included."""

    version: str
    index: Path
    done: int
    failures: list[tuple[str, str]]


def embed_output(config: RunConfig, annotators: Sequence[Annotator],
                 progress: Callable[[int, int], None] | None = None) -> Embedded:
    """Embed and index the run output's tasks (``preannot embed``, and ``preannot run`` with
    ``[selection]``): only what the cache lacks, so an interrupted one resumes.
    ``progress(advance, total)``."""
    if config.output is None or not config.output.exists():
        raise ConfigError(f"{config.output}: no such file; run `preannot run` first")
    pool = candidates(config.output)
    space = open_space(config, annotators, pool.tasks)
    try:
        vectors, failures = space.add(
            pool.tasks, progress and (lambda n: progress(n, len(pool.tasks))))
    finally:
        space.close()
    return Embedded(space.version, space.path, sum(v is not None for v in vectors),
                    pool.failures + failures)


def duplicates_among(config: RunConfig, annotators: Sequence[Annotator], tasks: Sequence[Task]
                     ) -> tuple[list[list[int]], list[tuple[str, str]]]:
    """Near-duplicate groups (indices into ``tasks``) among ``tasks`` only, and the tasks
    that could not be embedded: for the harvest, the labels paid for twice. A TF-IDF fit not
    kept yet is made on them and the run output's tasks, as a push's would be."""
    if len(tasks) < 2 or config.selection.duplicates > 1:
        return [], []

    def fit_on() -> list[Task]:
        unlabeled = (candidates(config.output).tasks
                     if config.output is not None and config.output.exists() else [])
        return [*unlabeled, *tasks]

    groups, _, failures = near_duplicates(config, annotators, tasks, fit_on,
                                          config.selection.duplicates)
    return groups, failures


def near_duplicates(config: RunConfig, annotators: Sequence[Annotator], tasks: Sequence[Task],
                    fit_on: Sequence[Task] | Callable[[], Sequence[Task]], limit: float,
                    progress: Progress | None = None
                    ) -> tuple[list[list[int]], list[Any], list[tuple[str, str]]]:
    """Embed ``tasks`` (what the cache lacks) and group those at least ``limit`` similar: the
    groups (indices into ``tasks``), the vectors, and the tasks that could not be embedded."""
    space = open_space(config, annotators, fit_on)
    try:
        vectors, failures = space.add(tasks, progress)
        return duplicate_groups(space, tasks, vectors, limit), vectors, failures
    finally:
        space.close()


def run_selection(config: RunConfig, selector: Selector, annotators: Sequence[Annotator],
                  pool: Candidates | list[Task], progress: Progress | None = None) -> Selection:
    """The config's selection over ``pool``, labeled tasks from the last pull seen as covered."""
    done = labeled(config)
    tasks = pool.tasks if isinstance(pool, Candidates) else pool
    space = open_space(config, annotators, [*tasks, *done.tasks])
    try:
        return select(space, selector, tasks, config.selection.k, labeled=done.tasks,
                      uncertainty=pool.uncertainty if isinstance(pool, Candidates) else None,
                      labels=pool.labels if isinstance(pool, Candidates) else None,
                      labeled_counts=dict(done.counts), duplicates=config.selection.duplicates,
                      progress=progress)
    finally:
        space.close()


def ranker_for_file(config: RunConfig, selector: Selector, annotators: Sequence[Annotator],
                    path: Path, log: Callable[[str], None]) -> SelectionRanker:
    """The selection over an import file's unlabeled tasks, as ranker priorities."""
    pool = candidates(path, {t.id for t in labeled(config).tasks})
    chosen = run_selection(config, selector, annotators, pool)
    _say(chosen, selector, log)
    return SelectionRanker(chosen.priorities([t.id for t in pool.tasks]))


def ranker_for_project(config: RunConfig, selector: Selector, annotators: Sequence[Annotator],
                       client: Client, project_id: int, log: Callable[[str], None]
                       ) -> SelectionRanker:
    """The selection over a project's tasks no human touched (``--existing``): their
    predictions are not made yet, so ``hybrid`` orders by diversity alone."""
    pool = [Task(task_key((t.get("meta") or {}).get("preannot_id"), t["id"]), t.get("data") or {},
                 source=f"task {t['id']}")
            for t in client.tasks(project_id, include="id,data,meta,total_annotations,"
                                                       "cancelled_annotations")
            if not (t.get("total_annotations") or t.get("cancelled_annotations"))]
    chosen = run_selection(config, selector, annotators, pool)
    _say(chosen, selector, log)
    return SelectionRanker(chosen.priorities([t.id for t in pool]))


def _say(chosen: Selection, selector: Selector, log: Callable[[str], None]) -> None:
    log(f"selection {selector.type!r}: {len(chosen.order)} tasks first in the queue"
        + (f"; {len(chosen.duplicates)} near-duplicates set aside, last" if chosen.duplicates
           else ""))
    for source, reason in chosen.failures[:10]:
        log(f"  {source}: {reason} (ordered after the selection)")


@dataclass
class Query:
    """What "more like this" starts from: one of a task id, a text, an image path, a label."""

    task: str | None = None
    text: str | None = None
    image: Path | None = None
    label: str | None = None

    def describe(self) -> str:
        if self.task is not None:
            return f"task {self.task}"
        if self.text is not None:
            return f"\"{self.text[:40]}{'…' if len(self.text) > 40 else ''}\""
        if self.image is not None:
            return f"image {self.image.name}"
        return f"label {self.label}"


@dataclass
class Similar:
    query: str
    tasks: list[dict[str, Any]]
    """{"id", "similarity", "source", "data"} best first."""
    failures: list[tuple[str, str]] = field(default_factory=list)


def similar(config: RunConfig, annotators: Sequence[Annotator], query: Query, k: int,
            progress: Progress | None = None) -> Similar:
    """The ``k`` unlabeled tasks of the run output nearest to ``query``."""
    import numpy as np

    if config.output is None or not config.output.exists():
        raise ConfigError(f"{config.output or 'the run output'}: no such file; run "
                          "`preannot run` first (its tasks are what is searched)")
    done = labeled(config)
    pool = candidates(config.output, {t.id for t in done.tasks})
    space = open_space(config, annotators, [*pool.tasks, *done.tasks])
    try:
        vectors, failures = space.add(pool.tasks, progress)
        failures = pool.failures + failures
        field_name = getattr(space.embedder, "field", config.selection.data_field)
        if query.task is not None:
            known = {t.id: t for t in [*pool.tasks, *done.tasks]}
            if query.task not in known:
                raise ConfigError(f"--task {query.task!r}: no task with that id in "
                                  f"{config.output} or the labeled tasks (ids are "
                                  "meta.preannot_id, as `preannot run` gave them)")
            anchors = [known[query.task]]
        elif query.label is not None:
            anchors = done.weak.get(query.label, [])
            if not anchors:
                weak = ", ".join(f"{k} ({len(v)})" for k, v in sorted(done.weak.items()))
                raise ConfigError(f"--label {query.label!r}: no labeled task where humans added "
                                  f"or corrected it (run `preannot ls pull` first; labels "
                                  f"added or corrected: {weak or 'none'})")
        else:
            value = query.text if query.text is not None else str(Path(query.image).resolve())
            anchors = [Task("query", {field_name: value}, source=query.describe())]
        if query.text is not None or query.image is not None:
            made = list(space.embedder.embed(anchors))
            if not made or isinstance(made[0], TaskFailed):
                raise ConfigError(f"cannot embed {query.describe()}: {made[0] if made else ''}")
            centre = np.asarray(made[0], dtype=np.float32)
        else:
            found, _ = space.add(anchors)
            kept = [v for v in found if v is not None]
            if not kept:
                raise ConfigError(f"cannot embed {query.describe()}")
            centre = np.mean(kept, axis=0)
        centre = centre / (np.linalg.norm(centre) or 1.0)
        among = {t.id for t in pool.tasks} - {a.id for a in anchors}
        by_id = {t.id: t for t in pool.tasks}
        found = space.nearest(centre, k, among)
        return Similar(query.describe(), [
            {"id": tid, "similarity": round(sim, 4), "source": by_id[tid].source,
             "data": by_id[tid].data} for tid, sim in found], failures)
    finally:
        space.close()


def similar_field(query: str) -> str:
    """The task data key a "similar to ..." tab filters and sorts on (one per query)."""
    return f"preannot_similar_{digest(query, size=4)}"


def push_similar(client: Client, project_id: int, found: Similar, *,
                 log: Callable[[str], None] = lambda _: None) -> tuple[int, int, list[int]]:
    """Put ``found`` first in the project's queue (their predictions get the lowest scores,
    in similarity order) and in a Data Manager tab "similar to ...": (tab id, tasks marked,
    Label Studio ids in order). Tasks not in the project are said in ``log``."""
    key = similar_field(found.query)
    wanted = {t["id"]: len(found.tasks) - rank for rank, t in enumerate(found.tasks)}
    ids: dict[str, int] = {}
    for task in client.tasks(project_id, include="id,data,meta"):
        tid = task_key((task.get("meta") or {}).get("preannot_id"), task["id"])
        data = task.get("data") or {}
        if tid in wanted:
            ids[tid] = task["id"]
            if data.get(key) != wanted[tid]:
                client.set_task_data(task["id"], {**data, key: wanted[tid]})
        elif key in data:  # an earlier answer to the same query
            client.set_task_data(task["id"], {k: v for k, v in data.items() if k != key})
    missing = [t for t in wanted if t not in ids]
    if missing:
        log(f"{len(missing)} similar tasks are not in project {project_id} (push them first "
            f"with `preannot ls push`): {', '.join(missing[:5])}")
    order = [ids[t["id"]] for t in found.tasks if t["id"] in ids]
    for rank, ls_id in enumerate(order):
        for prediction in client.predictions(ls_id):
            client.set_prediction_score(prediction["id"], round(-1.0 + rank / max(1, len(order)), 6))
    if order:
        client.update_project(project_id, sampling="Uncertainty sampling")
    view = client.ensure_view(project_id, f"similar to {found.query}", key)
    return view, len(order), order


def duplicates(config: RunConfig, annotators: Sequence[Annotator],
               threshold: float | None = None, progress: Progress | None = None
               ) -> tuple[list[list[dict[str, Any]]], list[tuple[str, str]]]:
    """Near-duplicate groups among the run output's tasks (labeled ones included), each a list
    of {"id", "source", "similarity"} with the representative (the first in input order) first."""
    import numpy as np

    if config.output is None or not config.output.exists():
        raise ConfigError(f"{config.output or 'the run output'}: no such file; run "
                          "`preannot run` first")
    pool = candidates(config.output)
    limit = config.selection.duplicates if threshold is None else threshold
    groups, vectors, failures = near_duplicates(config, annotators, pool.tasks, pool.tasks, limit,
                                                progress)
    out = [[{"id": pool.tasks[i].id, "source": pool.tasks[i].source,
             "similarity": round(float(np.dot(vectors[group[0]], vectors[i])), 4)}
            for i in group] for group in groups]
    return out, pool.failures + failures

