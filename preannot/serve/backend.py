"""The state of one running backend: the served pipeline (swapped atomically when a model
version is promoted, by this server or by any other process), the learner, and counters."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..annotator import ConfigError
from ..engine.config import RunConfig
from ..engine.host import Host
from ..labelstudio.client import Connection, Unreachable
from . import connection as serving
from ..labelstudio import sync
from .auth import credentials
from .learning import Learner
from .pipeline import Pipeline, load, specs_key
from .request import BadRequest, Unavailable

Log = Callable[[str], None]
POLL_SECONDS = 1.0
"""How often the registry is looked at for a promotion made elsewhere (a few small files)."""


class Backend:
    """What every request reads: ``backend.pipeline`` is replaced whole, never changed in
    place, so a request holds one version from start to end."""

    def __init__(self, config: RunConfig, host: Host, log: Log, *, learn: bool | None = None
                 ) -> None:
        self.config, self.host, self.log = config, host, log
        self.pipeline: Pipeline = load(config, host)
        self.counts: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self.reload_error: str | None = None
        self.project_id: int | None = None
        """The project Label Studio last called from (for renaming our entry on a swap)."""
        self.served_id: int | None = None
        """The id of ``[labelstudio] project`` (a title is looked up once, when it exists)."""
        self._reloading = threading.Lock()
        self._stopped = threading.Event()
        learn = config.serve.learn if learn is None else learn
        self.learner = Learner(config, self.refresh, log) if learn else None
        self._media_access()
        try:
            self.served()
        except BadRequest as exc:  # asked again when a request names a project
            log(f"not known yet which project this backend serves: {exc}")
        threading.Thread(target=self._watch, name="preannot-registry-watch", daemon=True).start()

    def _media_access(self) -> None:
        """Image annotators fetch ``/data/...`` files from Label Studio with the configured
        token (the SDK's downloader sends it to that host only)."""
        try:
            sync.serve_images_from(Connection.resolve(self.config.labelstudio))
        except ConfigError as exc:
            self.log(f"no Label Studio connection for task media ({exc}): images given as "
                     "Label Studio paths cannot be read; text and local files work")

    def refresh(self) -> bool:
        """Load the pipeline again if a model version changed; True if it was swapped. The
        old one serves until the new one is built."""
        with self._reloading:
            try:
                if specs_key(self.config, self.host) == self.pipeline.key:
                    return False
                new = load(self.config, self.host)
            except Exception as exc:  # a broken new version: keep serving the old one
                self.reload_error = f"{type(exc).__name__}: {exc}"
                self.log(f"new model version not loaded, still serving "
                         f"{self.pipeline.version}: {self.reload_error}")
                return False
            old, self.pipeline, self.reload_error = self.pipeline, new, None
        self.log(f"now serving {new.version} (was {old.version})")
        self._follow(new.version)
        return True

    def _follow(self, version: str) -> None:
        """Point the project's entry for this backend at the new version, so the editor shows
        its predictions (Label Studio filters a task's predictions by the project's version)."""
        project = self.project_id or self.config.labelstudio.project
        if project is None:
            return
        try:
            client = sync.connect(self.config)
            project_id = int(project) if str(project).isdigit() else client.project(project).id
            serving.follow_version(self.config, client, project_id, version, credentials())
        except ConfigError as exc:  # Label Studio down or refusing: serving goes on
            self.log(f"Label Studio's entry for this backend still names the old version: {exc}")

    def _watch(self) -> None:
        while not self._stopped.wait(POLL_SECONDS):
            self.refresh()

    def stop(self) -> None:
        self._stopped.set()
        if self.learner:
            self.learner.stop()

    def timed(self, what: str, seconds: float) -> None:
        self.counts[what] += 1
        self.seconds[what] += seconds

    def health(self) -> dict[str, Any]:
        details: dict[str, Any] = {"model_version": self.pipeline.version}
        if self.learner:
            details["learning"] = dict(self.learner.status)
        if self.reload_error:
            details["reload_error"] = self.reload_error
        return {"status": "UP", "model_class": "preannot", **details}

    def metrics(self) -> dict[str, Any]:
        return {"model_version": self.pipeline.version,
                "requests": dict(self.counts),
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "learning": dict(self.learner.status) if self.learner else None}

    def versions(self) -> list[str]:
        """The served version first, then every registry version of the configured models."""
        registry = sync.models(self.config)
        found = [v.version for name in registry.names() for v in registry.versions(name)]
        return [self.pipeline.version, *found]

    def served(self) -> int | None:
        """The id of the configured project (None: any project is served). A title is looked
        up in Label Studio until it is found, then kept: one lookup, not one per request."""
        wanted = self.config.labelstudio.project
        if wanted is None or self.served_id is not None:
            return self.served_id
        if isinstance(wanted, int) or str(wanted).isdecimal() and str(wanted).isascii():
            self.served_id = int(wanted)
            return self.served_id
        try:
            self.served_id = sync.connect(self.config).project(wanted).id
        except Unreachable as exc:
            raise Unavailable(f"cannot tell which project is {wanted!r} ([labelstudio] project "
                              f"in preannot.toml): {exc}") from None
        except ConfigError as exc:
            raise BadRequest(f"this backend serves project {wanted!r} ([labelstudio] project in "
                             f"preannot.toml): {exc}") from None
        self.log(f"serving project {self.served_id} ({wanted!r})")
        return self.served_id

    def check_project(self, sent: int | None) -> None:
        """Note the project a request comes from; one other than the configured project is
        refused (a request that names none is answered)."""
        if sent is None:
            return
        wanted = self.served()
        if wanted is not None and sent != wanted:
            named = self.config.labelstudio.project
            which = wanted if str(named) == str(wanted) else f"{wanted} ({named!r})"
            raise BadRequest(f"this backend serves project {which} ([labelstudio] project in "
                             f"preannot.toml), not project {sent}")
        self.project_id = sent


def started(config: RunConfig, host: Host, log: Log, **kwargs: Any) -> Backend:
    """A backend, timed: loading the models is the slow part of a start."""
    begin = time.monotonic()
    backend = Backend(config, host, log, **kwargs)
    log(f"serving {backend.pipeline.version} ({len(backend.pipeline.annotators)} annotators "
        f"loaded in {time.monotonic() - begin:.1f} s)")
    return backend
