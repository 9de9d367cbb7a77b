"""The kernel's own hook implementations: the built-in rankers, and Label Studio re-predicted
when a model version becomes current."""

from __future__ import annotations

from ..hookspecs import hookimpl
from . import sync
from .ranking import BUILT_IN


@hookimpl
def register_rankers(register) -> None:
    for ranker in BUILT_IN:
        register(ranker)


@hookimpl(tryfirst=True)
def promoted(config, push, log) -> None:
    """Fresh predictions for the tasks no human touched (before anything recalibrates)."""
    if push:
        sync.repredict(config, log=log)
