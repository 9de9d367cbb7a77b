"""The rankers preannot ships with, registered through the same hook a third-party plugin uses."""

from __future__ import annotations

from .hookspecs import hookimpl
from .ranking import BUILT_IN


@hookimpl
def register_rankers(register) -> None:
    for ranker in BUILT_IN:
        register(ranker)
