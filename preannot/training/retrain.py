"""Training operations: train the configured models, retrain when enough new reviews came in,
promote or roll back by hand; each change of version is announced (``promoted``), and whoever
cares reacts (Label Studio re-predicted, production review recalibrated)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..engine.config import RunConfig
from ..engine.host import get_host
from . import flow
from .registry import Registry, Version

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class Trained:
    """What :func:`train_all` did: each trainer's outcome, and whether any version changed."""

    outcomes: list[flow.Outcome] = field(default_factory=list)
    changed: bool = False
    """A new version became current: Label Studio was (or should be) re-predicted."""

    @property
    def all_promoted(self) -> bool:
        return all(o.promoted for o in self.outcomes)


def train_all(config: RunConfig, names: list[str] | None = None, *, promote: bool = True,
              push: bool = True, force: bool = False, log: Log = _quiet) -> Trained:
    """Train the named (default: every) trainer; re-predict in Label Studio on a promotion."""
    host = get_host()
    registry = Registry(config.registry_dir)
    done = Trained()
    for spec in flow.chosen_trainers(config, names):
        before = registry.current(spec["name"])
        done.outcomes.append(flow.train(config, host, spec, promote=promote, force=force, log=log))
        after = registry.current(spec["name"])
        done.changed |= (before and before.version) != (after and after.version)
    if done.changed:
        host.hook.promoted(config=config, push=push, log=log)
    return done


def retrain_if_due(config: RunConfig, log: Log = _quiet) -> Trained | None:
    """After a harvest. ``[training] retrain_after = N``: retrain each model that has N newly
    reviewed tasks since its last version; the gate decides whether the result is used. None:
    nothing due (the ``harvested`` event's reaction, :mod:`.plugin`)."""
    due = []
    for spec in flow.trainer_specs(config) if config.training.retrain_after > 0 else []:
        is_due, now, then = flow.due(config, spec)
        if is_due:
            log(f"{now - then} newly reviewed tasks since {spec['name']} was last trained "
                "([training] retrain_after): retraining")
            due.append(spec["name"])
    return train_all(config, due, promote=True, push=True, log=log) if due else None


def promote(config: RunConfig, version: str, *, push: bool = True, log: Log = _quiet
            ) -> tuple[Version, Version | None]:
    """Make ``version`` current by hand: (it, the version it replaced)."""
    registry = Registry(config.registry_dir)
    chosen = registry.get(version)
    previous = registry.promote(chosen)
    registry.update(chosen, promoted_by="hand")
    get_host().hook.promoted(config=config, push=push, log=log)
    return chosen, previous


def rollback(config: RunConfig, name: str, *, push: bool = True, log: Log = _quiet
             ) -> tuple[Version, Version]:
    """Retire ``name``'s current version and restore the one before: (retired, restored)."""
    old, restored = Registry(config.registry_dir).rollback(name)
    get_host().hook.promoted(config=config, push=push, log=log)
    return old, restored
