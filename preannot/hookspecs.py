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


# Events: one feature (or the kernel) emits them through the host; whoever cares reacts. Each
# cross-feature rule lives in the one hook implementation that applies it.


@hookspec(firstresult=True)
def model_source(config):
    """The :class:`~preannot.engine.runner.ModelSource` that resolves this config's
    ``registry:`` model references (the training feature's model registry); None: none."""


@hookspec(firstresult=True)
def push_ranker(config, annotators, client, project_id, input_file, log):
    """A ranker that orders this push's tasks in place of ``[ranking]`` (None: no opinion).

    ``project_id`` with ``input_file`` None: the tasks already in that project are pushed;
    else those of ``input_file``. ``log`` takes a sentence."""


@hookspec
def pre_annotated(config, annotators, no_progress):
    """`preannot run` wrote ``config.output`` with ``annotators``: work that follows a run
    (the selection feature embeds and indexes the output). Returns how many records failed."""


@hookspec(firstresult=True)
def harvest_duplicates(config, corrections, warnings):
    """Near-duplicate groups among the annotated tasks of a harvest's ``corrections`` file, for
    its metrics (``{"threshold": ..., "groups": [[task id, ...], ...]}``); None: not counted.
    Called only for `ls pull`; say what could not be done in ``warnings`` (a list)."""


@hookspec
def harvested(config, log, interactive):
    """Human corrections were harvested (`ls pull`, `review sync`, the ML backend's background
    harvest): react, e.g. retrain what is due. ``interactive``: a person at a terminal waits
    and is told the outcomes in full; ``log`` takes a sentence. Returns what was done."""


@hookspec
def promoted(config, push, log):
    """A model version became current (a gate's promotion, a promotion by hand, a rollback):
    react, e.g. re-predict the Label Studio project (only with ``push``) or recalibrate."""


@hookspec
def training_corrections(config):
    """Corrections files, beyond ``[training] corrections``, that trainers learn from (the
    production review's): a list of paths, absent ones allowed."""
