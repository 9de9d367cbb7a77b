"""The loop's Label Studio operations as plain functions: connect, run-and-push, re-predict,
pull-and-measure. Every command, a server or a test calls these; they report through callbacks
(``progress`` for counts, ``log`` for sentences) and never print."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..annotator import Annotator, ConfigError
from ..engine.config import RunConfig
from ..engine.host import Host, get_host
from ..engine.runner import (Summary, annotate, build_annotators, configured_annotators,
                             resolve_specs, run)
from ..evaluation.corrections import Options, write_outputs
from ..evaluation.labels import LabelMap
from ..labelstudio.client import (KEY_ENV, URL_ENV, Client, Connection, LabelStudioError,
                                  Unreachable, connect as connect_to)
from ..labelstudio.harvest import HarvestStore, PullSummary, pull as fetch
from ..labelstudio.labeling_config import Fit, fit, labels_of
from ..labelstudio.push import (Engine, PushSummary, annotate_project, ensure_project,
                                local_images, model_version_of, push_tasks, read_import_file)
from ..engine.readers import IMAGE_SUFFIXES, read_inputs
from ..labelstudio.local_files import SETTING, check_root, refuse_escaping_links, root_above
from ..labelstudio.server import running_local
from ..model import Task
from ..training.registry import Registry
from . import select

Progress = Callable[[int], None]
Log = Callable[[str], None]


def _quiet(_: Any) -> None:
    pass


def models(config: RunConfig) -> Registry:
    """Where this config's ``registry:`` models are resolved."""
    return Registry(config.registry_dir)


def configured(config: RunConfig, host: Host) -> tuple[list[dict[str, Any]], list[Annotator]]:
    """The config's annotators, built, registry models resolved, and their specs (none
    configured: none)."""
    return configured_annotators(config, host, models(config)) if config.annotators else ([], [])


def annotators(config: RunConfig, host: Host) -> list[Annotator]:
    """The config's annotators, built, registry models resolved (none configured: [])."""
    return configured(config, host)[1]


def pre_annotate(config: RunConfig, *, host: Host | None = None, force: bool = False,
                 progress: Callable[[int, int | None], None] | None = None,
                 built: tuple[list[dict[str, Any]], list[Annotator]] | None = None) -> Summary:
    """``preannot run``: the batch run, with registry models resolved; ``built``: what
    :func:`configured` gave, when the caller uses the annotators after the run too."""
    return run(config, host=host, models=models(config), force=force, progress=progress,
               configured=built)


def connect(config: RunConfig) -> Client:
    """The configured server; with none configured, the local one `ls up` started for this
    config, while it runs."""
    if not (os.environ.get(URL_ENV) or config.labelstudio.url):
        if local := running_local(config.state_dir / "labelstudio"):
            connection, files_root = local
            serve_images_from(connection)
            return Client(connection, local_files_root=files_root)  # its token just checked
    client = connect_to(config.labelstudio)
    client.local_files_root = config.labelstudio.local_files_root
    return client


def connect_later(config: RunConfig) -> tuple[Client, str | None]:
    """:func:`connect`, or, when the server does not answer, an unchecked client and why: for
    work that goes on without Label Studio (production review releases what it is sure of)."""
    try:
        return connect(config), None
    except Unreachable as exc:
        client = Client(Connection.resolve(config.labelstudio),
                        local_files_root=config.labelstudio.local_files_root)
        return client, str(exc)


def image_folders(config: RunConfig) -> set[Path]:
    """The folders holding the images of the config's inputs: those of an input folder (walked,
    not read) and the local image paths named in input files."""
    folders = set()
    for path in config.inputs:
        if path.is_dir():
            folders.update(Path(parent) for parent, _, files in os.walk(path)
                           if any(Path(f).suffix.lower() in IMAGE_SUFFIXES for f in files))
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            folders.add(path.parent)
        else:
            for record in read_inputs([path], None, config.base_dir, config.encoding):
                if isinstance(record, Task):
                    folders.update(image.parent for image in local_images(record.data).values())
    return {f.resolve() for f in folders}


def local_files_root(config: RunConfig) -> Path | None:
    """The folder the local Label Studio may serve files from: ``[labelstudio]
    local_files_root``, else the folder just above the inputs' image folders; None (serving
    off) when there is no image. Refused (:class:`ConfigError`, one line) when it would expose
    the machine, a home folder, preannot's state or a token file, or holds a link out of it."""
    settings = config.labelstudio
    if settings.local_files_root:
        root, why = config.path(settings.local_files_root), f"{SETTING}"
    else:
        folders = image_folders(config)
        if not (root := root_above(folders)):
            return None
        why = f"the folder above the images in {min(folders)}"
    protected = {"preannot's state (.preannot: the Label Studio login, models, caches)":
                 config.state_dir, "the model registry": config.registry_dir}
    if settings.api_key_file:
        protected["the Label Studio token file (api_key_file)"] = settings.api_key_file
    root = check_root(root, protected, why)
    refuse_escaping_links(root, root)
    return root


def serve_images_from(connection: Connection) -> None:
    """Let image annotators in this process (and its workers) fetch ``/data/...`` images from
    the local server `ls up` started, as they would from a configured one."""
    os.environ.setdefault(URL_ENV, connection.url)
    os.environ.setdefault(KEY_ENV, connection.api_key)


def push(config: RunConfig, client: Client, *, project: str | None = None,
         input_file: Path | None = None, existing: bool = False, unlabeled: bool = False,
         host: Host | None = None, progress: Progress = _quiet, log: Log = _quiet) -> PushSummary:
    """Everything `ls push` and `ls up` share: project, annotators, ranking, the push itself.

    Without ``input_file`` the configured annotators run first; with ``existing`` the tasks
    already in the project are pre-annotated (``unlabeled``: only those no human touched)."""
    if input_file is not None and not input_file.exists():  # before a project is made for it
        raise ConfigError(f"{input_file}: no such file; run `preannot run` first")
    host = host or get_host()
    built = annotators(config, host)
    ranker = host.ranker(config.ranking)
    project_id = project_for(config, client, built, project, log)
    fits = label_fit(client, project_id, built)
    selector = host.selector(config.selection)
    if existing:
        if not built:
            raise ConfigError("--existing needs [[annotators]] in the config to run")
        if selector is not None:
            ranker = select.ranker_for_project(config, selector, built, client, project_id, log)
        return annotate_project(client, project_id, built, ranker=ranker,
                                batch_size=config.batch_size, unlabeled_only=unlabeled,
                                progress=progress, engine=engine(config, host, built), fits=fits)
    if input_file is None:
        summary = pre_annotate(config, host=host)
        if summary.failed:
            log(f"{summary.failed} records failed in the run (see `preannot run` for details); "
                "pushing the rest")
        input_file = config.output
    if selector is not None:
        ranker = select.ranker_for_file(config, selector, built, input_file, log)
    return push_tasks(client, project_id,
                      ((source, fits.task(task)) for source, task in read_import_file(input_file)),
                      model_version=pipeline_version(config, built), ranker=ranker,
                      annotators=built, progress=progress)


def project_for(config: RunConfig, client: Client, built: list[Annotator],
                project: str | None = None, log: Log = _quiet) -> int:
    """The id of the project a command works on: ``project``, else ``[labelstudio] project``,
    else the one with the config's title (a rerun finds what the last one made), created with
    a labeling config that fits the annotators when there is none."""
    settings = config.labelstudio
    label_config = None
    if settings.label_config:
        label_config = settings.label_config.read_text(encoding="utf-8")
    title = settings.title or f"preannot {config.base_dir.name}"
    return ensure_project(client, project or settings.project or title, title=title,
                          annotators=built, label_config=label_config, log=log)


def label_fit(client: Client, project_id: int, built: list[Annotator]) -> Fit:
    """How the project's labeling config fits the annotators: what a push leaves out."""
    if not built:
        return Fit()
    return fit(client.project(project_id).label_config or "", built)


def engine(config: RunConfig, host: Host, built: list[Annotator]) -> Engine | None:
    """How a push of an existing project annotates: on the Ray cluster with ``[run] engine =
    "ray"``, else here (None)."""
    if config.engine != "ray":
        return None
    from ..engine.ray_engine import annotated_stream

    specs, _ = resolve_specs(config.annotators, host, models(config))
    return annotated_stream(config, specs, built, build_annotators, annotate)


def pipeline_version(config: RunConfig, built: list[Annotator]) -> str | None:
    """The ``model_version`` the pipeline's predictions carry in Label Studio: ``[labelstudio]
    model_version``, else the annotators' versions joined (None: as each output file says)."""
    joined = model_version_of(built) if built and config.labelstudio.combine_versions else None
    return config.labelstudio.model_version or joined


def repredict(config: RunConfig, progress: Progress = _quiet, log: Log = _quiet
              ) -> PushSummary | None:
    """After a promotion or a rollback: fresh predictions, from the annotators as configured
    now, for the project's tasks no human has touched; the project's model version follows.
    None without a configured project. When the server cannot be reached, says what to run
    later instead of failing the promotion."""
    if not config.labelstudio.project:
        return None
    try:
        client = connect(config)
        summary = push(config, client, existing=True, unlabeled=True, progress=progress)
        log(summary.describe(client.url))
        return summary
    except Unreachable as exc:
        log(f"Label Studio not updated: {exc}\n  once it is reachable, run "
            "`preannot ls push --existing --unlabeled`")
    except ConfigError as exc:  # refused: its reason, not reachability
        log(f"Label Studio not updated: {exc}\n  fix that, then run "
            "`preannot ls push --existing --unlabeled`")
    return None


def _annotated_duplicates(config: RunConfig, corrections: Path, warnings: list[str]
                          ) -> dict[str, Any] | None:
    """Near-duplicate groups (Label Studio task ids) among the annotated tasks of the
    corrections file: what was labeled twice. None, with a warning, when the embedder cannot
    be built."""
    done = select.labeled(config, corrections)
    try:
        groups, failures = select.duplicates_among(config, annotators(config, get_host()),
                                                   done.tasks)
    except ConfigError as exc:
        warnings.append(f"near-duplicates among annotated tasks not counted: {exc}")
        return None
    if failures:
        source, reason = failures[0]
        warnings.append(f"near-duplicates: {len(failures)} annotated tasks could not be "
                        f"embedded ({source}: {reason}{' ...' if len(failures) > 1 else ''})")
    return {"threshold": config.selection.duplicates,
            "groups": [[done.task_ids[i] for i in group] for group in groups]}


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
         duplicates: bool = False, progress: Progress = _quiet) -> Harvest:
    """Fetch the tasks changed since the last pull (all with ``full``) and rewrite, from every
    task pulled so far, corrections.jsonl, metrics.json and report.html. ``duplicates`` (the
    ``ls pull`` command, not a server's background harvest, which would build the annotators
    a second time): with ``[selection]`` configured, also group the near-duplicates among the
    annotated tasks."""
    project = project or config.labelstudio.project
    if project is None:
        raise ConfigError("which project? pass --project or set [labelstudio] project")
    found = client.project(project)
    store = HarvestStore(config.state_dir / "ledger.sqlite", f"{client.url}#{found.id}")
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
        if duplicates and config.selection.configured and config.selection.duplicates <= 1:
            options.duplicates = lambda path: _annotated_duplicates(config, path, warnings)
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
