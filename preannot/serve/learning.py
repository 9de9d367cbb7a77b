"""Learning from the editor: annotation events start, in the background and debounced, the
incremental harvest and ``[training] retrain_after`` (gate, promotion, re-predict);
``START_TRAINING`` trains at once. Predictions never wait for any of it, and a failure is
recorded for ``/health``, never fatal to serving."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..engine.config import RunConfig
from ..engine.host import get_host
from ..harvest.pull import pull
from ..labelstudio import sync
from ..training import retrain

Log = Callable[[str], None]


class Learner:
    """One background thread that harvests and trains, one job at a time."""

    def __init__(self, config: RunConfig, on_change: Callable[[], Any], log: Log) -> None:
        self.config, self.on_change, self.log = config, on_change, log
        self.debounce = config.serve.debounce
        self._cond = threading.Condition()
        self._last_event: float | None = None
        self._train_now = False
        self._project: int | str | None = config.labelstudio.project
        self._stopped = False
        self.status: dict[str, Any] = {"harvests": 0, "trainings": 0, "busy": None,
                                       "last_harvest": None, "last_error": None}
        self._thread = threading.Thread(target=self._loop, name="preannot-learner", daemon=True)
        self._thread.start()

    def annotations_changed(self, project: int | None) -> None:
        """An annotation was created, updated or deleted: harvest once things go quiet."""
        with self._cond:
            self._note_project(project)
            self._last_event = time.monotonic()
            self._cond.notify()

    def train_now(self, project: int | None) -> None:
        """Label Studio's "Start training" (or the legacy ``/train``): harvest, then train."""
        with self._cond:
            self._note_project(project)
            self._train_now = True
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _note_project(self, project: int | None) -> None:
        if self.config.labelstudio.project is None and project is not None:
            self._project = project  # no project configured: the one the events come from

    def _next_job(self) -> bool | None:
        """Wait for work: True to train now, False to harvest (and retrain when due), None to
        stop."""
        with self._cond:
            while True:
                if self._stopped:
                    return None
                if self._train_now:
                    self._train_now, self._last_event = False, None
                    return True
                if self._last_event is not None:
                    quiet = time.monotonic() - self._last_event
                    if quiet >= self.debounce:
                        self._last_event = None
                        return False
                    self._cond.wait(self.debounce - quiet)
                else:
                    self._cond.wait()

    def _loop(self) -> None:
        while (train := self._next_job()) is not None:
            try:
                self._run(train)
                self.status["last_error"] = None
            except Exception as exc:  # logged and shown by /health; serving goes on
                self.status["last_error"] = f"{type(exc).__name__}: {exc}"
                self.log(f"learning failed: {self.status['last_error']}")
            finally:
                self.status["busy"] = None

    def _run(self, train: bool) -> None:
        if self._project is None:
            raise ValueError("which project? set [labelstudio] project in preannot.toml")
        self.status["busy"] = "harvest"
        client = sync.connect(self.config)
        harvest = pull(self.config, client, project=str(self._project))
        self.status["harvests"] += 1
        self.status["last_harvest"] = {"project": harvest.project_id,
                                       "fetched": harvest.fetched.fetched,
                                       "tasks": harvest.metrics["tasks"]}
        self.log(f"harvested {harvest.fetched.fetched} changed tasks of project "
                 f"{harvest.project_id}")
        self.status["busy"] = "training"
        trained = (retrain.train_all(self.config, log=self.log) if train
                   else self._after_harvest())
        if trained is not None:
            self.status["trainings"] += 1
            if trained.changed:
                self.on_change()

    def _after_harvest(self) -> retrain.Trained | None:
        """The ``harvested`` event's reactions; what training did, if anything."""
        done = get_host().hook.harvested(config=self.config, log=self.log, interactive=False)
        return next((d for d in done if isinstance(d, retrain.Trained)), None)
