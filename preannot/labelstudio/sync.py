"""The kernel's Label Studio operations as plain functions: connect, run-and-push, re-predict
(the harvest feature pulls and measures). Every command, a server or a test calls these; they
report through callbacks (``progress`` for counts, ``log`` for sentences) and never print."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..annotator import Annotator, ConfigError
from ..engine.config import RunConfig
from ..engine.host import Host, get_host
from ..engine.runner import (ModelSource, Summary, annotate, build_annotators,
                             configured_annotators, resolve_specs, run)
from .client import KEY_ENV, URL_ENV, Client, Connection, Unreachable, connect as connect_to
from .labeling_config import Fit, fit
from .push import (Engine, PushSummary, annotate_project, ensure_project, local_images,
                   model_version_of, push_tasks, read_import_file)
from ..engine.readers import IMAGE_SUFFIXES, read_inputs
from .local_files import SETTING, check_root, refuse_escaping_links, root_above
from .server import running_local
from ..model import Task

Progress = Callable[[int], None]
Log = Callable[[str], None]


def quiet(_: Any) -> None:
    pass


def models(config: RunConfig) -> ModelSource | None:
    """Where this config's ``registry:`` models are resolved: the ``model_source`` hook's
    answer (the training feature's registry)."""
    return get_host().hook.model_source(config=config)


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
        if local := running_local(config.workspace.labelstudio):
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
                 config.workspace.root, "the model registry": config.registry_dir}
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
         host: Host | None = None, progress: Progress = quiet, log: Log = quiet) -> PushSummary:
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
    if existing:
        if not built:
            raise ConfigError("--existing needs [[annotators]] in the config to run")
        ranker = host.hook.push_ranker(config=config, annotators=built, client=client,
                                       project_id=project_id, input_file=None, log=log) or ranker
        return annotate_project(client, project_id, built, ranker=ranker,
                                batch_size=config.batch_size, unlabeled_only=unlabeled,
                                progress=progress, engine=engine(config, host, built), fits=fits)
    if input_file is None:
        summary = pre_annotate(config, host=host)
        if summary.failed:
            log(f"{summary.failed} records failed in the run (see `preannot run` for details); "
                "pushing the rest")
        input_file = config.output
    ranker = host.hook.push_ranker(config=config, annotators=built, client=client,
                                   project_id=project_id, input_file=input_file, log=log) or ranker
    return push_tasks(client, project_id,
                      ((source, fits.task(task)) for source, task in read_import_file(input_file)),
                      model_version=pipeline_version(config, built), ranker=ranker,
                      annotators=built, progress=progress)


def project_for(config: RunConfig, client: Client, built: list[Annotator],
                project: str | None = None, log: Log = quiet) -> int:
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


def repredict(config: RunConfig, progress: Progress = quiet, log: Log = quiet
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
