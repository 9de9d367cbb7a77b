"""What preannot ships with (the fusion annotator, the rankers, the selectors), registered
through the same hooks a third-party plugin uses."""

from __future__ import annotations

from .fusion import FusionAnnotator
from ..hookspecs import hookimpl
from .ranking import BUILT_IN
from .selection import BUILT_IN as SELECTORS


@hookimpl
def register_rankers(register) -> None:
    for ranker in BUILT_IN:
        register(ranker)


@hookimpl
def register_annotators(register) -> None:
    register(FusionAnnotator)


@hookimpl
def register_selectors(register) -> None:
    for selector in SELECTORS:
        register(selector)
