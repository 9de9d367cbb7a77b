"""The local model registry: every trained version with its lineage, and which one is current.

Plain files, so a person can look: ``<root>/<model>/<version>/`` holds the model (``model/``
or the trainer's file) and ``card.json`` (trainer, parent version, the harvest it learned
from, options, evaluation, the gate's decision); ``<root>/<model>/state.json`` names the
current version and the promotion history that rollback walks back. Writes go to a temporary
file renamed into place, so a reader (a pre-annotation run) never sees half a state, and
training never locks anything a run needs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any

from ..annotator import ConfigError, chain_order, upstream_names

TRAINED = "trained.txt"
"""In a version's folder: the ids of the tasks it was trained on, one per line."""
REGISTRY_PREFIX = "registry:"
"""An annotator option ``"registry:NAME"`` (``model = "registry:ner"``) means the file or
folder of NAME's current version."""


@dataclass
class Version:
    """One trained model version; ``card`` is its ``card.json``."""

    name: str
    version: str
    folder: Path
    card: dict[str, Any]

    @property
    def artifact(self) -> Path:
        return self.folder / self.card["artifact"]

    @property
    def status(self) -> str:
        return self.card.get("status", "candidate")

    def trained_on(self) -> set[str] | None:
        """The stable ids of the tasks this version learned from (``trained.txt``, written by
        `preannot train`); None when unknown (a version registered before it was kept)."""
        path = self.folder / TRAINED
        if not path.exists():
            return None
        return set(path.read_text(encoding="utf-8").split())


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


class Registry:
    """Model versions under one folder (``[training] registry``, default ``.preannot/models``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def resolve(self, specs: list[dict[str, Any]], combines: Callable[[dict[str, Any]], bool]
                ) -> tuple[list[dict[str, Any]], list[str]]:
        """What the runner asks of a model source (:class:`preannot.engine.runner.ModelSource`):
        see :func:`resolve_models`."""
        return resolve_models(specs, self, combines)

    def _state(self, name: str) -> dict[str, Any]:
        path = self.root / name / "state.json"
        if not path.exists():
            return {"current": None, "history": []}
        return json.loads(path.read_text(encoding="utf-8"))

    def names(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "state.json").exists()
                      or any(p.glob("*/card.json")))

    def versions(self, name: str) -> list[Version]:
        """Every version of ``name``, oldest first."""
        found = []
        for card in (self.root / name).glob("*/card.json"):
            found.append(Version(name, card.parent.name, card.parent,
                                 json.loads(card.read_text(encoding="utf-8"))))
        return sorted(found, key=lambda v: v.card.get("number", 0))

    def get(self, version: str) -> Version:
        """A version by its string (``ner-v3``)."""
        match = re.fullmatch(r"(.+)-v\d+", version)
        if match:
            folder = self.root / match.group(1) / version
            if (folder / "card.json").exists():
                card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
                return Version(match.group(1), version, folder, card)
        known = [v.version for n in self.names() for v in self.versions(n)]
        raise ConfigError(f"no model version {version!r} in {self.root} "
                          f"(known: {', '.join(known) or 'none'})")

    def current(self, name: str) -> Version | None:
        state = self._state(name)
        return self.get(state["current"]) if state["current"] else None

    def history(self, name: str) -> list[str]:
        """Versions promoted so far, oldest first (rolled-back ones removed)."""
        return list(self._state(name)["history"])

    def add(self, name: str, artifact: Path, card: dict[str, Any]) -> Version:
        """Store a new version of ``name`` (the artifact is moved in); status ``candidate``."""
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise ConfigError(f"model name {name!r}: use letters, digits, '.', '_' and '-'")
        (self.root / name).mkdir(parents=True, exist_ok=True)
        number = 1 + max((v.card.get("number", 0) for v in self.versions(name)), default=0)
        version = f"{name}-v{number}"
        folder = self.root / name / version
        staging = self.root / name / f".{version}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        shutil.move(str(artifact), staging / artifact.name)
        card = {**card, "name": name, "version": version, "number": number,
                "artifact": artifact.name, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "status": "candidate"}
        _write_json(staging / "card.json", card)
        os.replace(staging, folder)
        return Version(name, version, folder, card)

    def update(self, version: Version, **changes: Any) -> None:
        version.card.update(changes)
        _write_json(version.folder / "card.json", version.card)

    def promote(self, version: Version) -> Version | None:
        """Make ``version`` current; returns the version it replaces."""
        state = self._state(version.name)
        previous = self.get(state["current"]) if state["current"] else None
        history = [v for v in state["history"] if v != version.version] + [version.version]
        _write_json(self.root / version.name / "state.json",
                    {"current": version.version, "history": history})
        self.update(version, status="promoted",
                    promoted_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        return previous

    def rollback(self, name: str) -> tuple[Version, Version]:
        """Retire the current version and restore the one promoted before it: (old, restored)."""
        state = self._state(name)
        if len(state["history"]) < 2:
            raise ConfigError(f"model {name!r} has no earlier promoted version to roll back to")
        retired, restored = state["history"][-1], state["history"][-2]
        _write_json(self.root / name / "state.json",
                    {"current": restored, "history": state["history"][:-1]})
        old = self.get(retired)
        self.update(old, status="rolled back", rolled_back_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        return old, self.get(restored)


def registry_reference(spec: dict[str, Any]) -> tuple[str, str | None]:
    """(option, model name) of the option that names a registry model, e.g. ``model =
    "registry:ner"`` or, for a trained dictionary, ``rules = "registry:terms"``; else
    (``"model"``, None)."""
    for key, value in spec.items():
        if isinstance(value, str) and value.startswith(REGISTRY_PREFIX):
            return key, value[len(REGISTRY_PREFIX):]
    return "model", None


def trained_on(specs: list[dict[str, Any]], registry: Registry) -> set[str] | None:
    """The tasks any current registry model of ``specs`` learned from (none: an empty set);
    None when one of them does not say."""
    out: set[str] = set()
    for spec in specs:
        _, name = registry_reference(spec)
        if name is None or (version := registry.current(name)) is None:
            continue
        keys = version.trained_on()
        if keys is None:
            return None
        out |= keys
    return out


def _without(spec: dict[str, Any], gone: list[str]) -> dict[str, Any]:
    """A combiner's spec without the upstreams left out: out of ``after``, and out of a
    precedence ``order`` that ranks them (it may name only what ``after`` holds)."""
    out = {**spec, "after": [a for a in upstream_names(spec.get("after")) if a not in gone]}
    if isinstance(spec.get("order"), list):
        out["order"] = [a for a in spec["order"] if a not in gone]
    return out


def resolve_models(specs: list[dict[str, Any]], registry: Registry,
                   combines: Callable[[dict[str, Any]], bool]) -> tuple[list[dict[str, Any]], list[str]]:
    """Annotator specs with an option ``"registry:NAME"`` pointed at NAME's current version (its
    ``model_version`` becomes the version string), and notices for what was left out.

    A spec whose model has no promoted version yet is left out, and so is everything chained
    after it, except a combiner (``combines(spec)``), which runs with the upstreams left."""
    by_name = {spec["name"]: spec for spec in specs}
    resolved: dict[str, dict[str, Any]] = {}
    notices: list[str] = []
    for name in chain_order({n: upstream_names(s.get("after")) for n, s in by_name.items()}):
        spec = by_name[name]
        after = upstream_names(spec.get("after"))
        if gone := sorted(a for a in after if a not in resolved):
            if not combines(spec):
                notices.append(f"annotator {name!r} left out: it runs after {', '.join(gone)}")
                continue
            spec = _without(spec, gone)
        key, model = registry_reference(spec)
        if model is not None:
            current = registry.current(model)
            if current is None:
                notices.append(f"annotator {name!r} left out: model {model!r} has no promoted "
                               "version yet (run `preannot train`)")
                continue
            spec = {**spec, key: str(current.artifact)}
            spec.setdefault("model_version", current.version)
        resolved[name] = spec
    return [resolved[s["name"]] for s in specs if s["name"] in resolved], notices
