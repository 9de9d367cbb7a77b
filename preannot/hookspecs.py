"""The hooks a preannot plugin can implement. Each receives a ``register`` callable, as in llm."""

from __future__ import annotations

from collections.abc import Callable

import click
import pluggy

hookspec = pluggy.HookspecMarker("preannot")
hookimpl = pluggy.HookimplMarker("preannot")


@hookspec
def register_annotators(register: Callable[[type], None]) -> None:
    """Register :class:`preannot.Annotator` subclasses: ``register(MyAnnotator)``.

    The class's ``type`` is the name a config file uses to pick it.
    """


@hookspec
def register_rankers(register: Callable[[type], None]) -> None:
    """Register :class:`preannot.Ranker` subclasses that order tasks for humans."""


@hookspec
def register_selectors(register: Callable[[type], None]) -> None:
    """Register :class:`preannot.Selector` subclasses that choose a set of tasks for humans
    (diversity, uncertainty with diversity, rare labels)."""


@hookspec
def register_trainers(register: Callable[[type], None]) -> None:
    """Register :class:`preannot.Trainer` subclasses that retrain from corrections."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``preannot`` command line."""
