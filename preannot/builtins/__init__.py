"""What preannot ships with (the fusion annotator, the rankers), registered through the same
hooks a third-party plugin uses."""

from __future__ import annotations

from .fusion import FusionAnnotator
from ..hookspecs import hookimpl
from .ranking import BUILT_IN


@hookimpl
def register_rankers(register) -> None:
    for ranker in BUILT_IN:
        register(ranker)


@hookimpl
def register_annotators(register) -> None:
    register(FusionAnnotator)
