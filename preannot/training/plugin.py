"""Training through the hooks: the fusion annotator, the `train` and `models` commands, the
registry that resolves ``registry:`` models, and retraining when a harvest makes it due."""

from __future__ import annotations

import click

from ..hookspecs import hookimpl
from . import retrain
from .commands import models, report_outcomes, train
from .fusion import FusionAnnotator
from .registry import Registry


@hookimpl
def register_annotators(register) -> None:
    register(FusionAnnotator)


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(train)
    cli.add_command(models)


@hookimpl
def model_source(config) -> Registry:
    return Registry(config.registry_dir)


@hookimpl(tryfirst=True)
def harvested(config, log, interactive) -> retrain.Trained | None:
    """``[training] retrain_after``: retrain what the new corrections make due (the gate
    decides; a promotion is announced), told in full to a person waiting."""
    trained = retrain.retrain_if_due(config, log=log)
    if trained is not None and interactive:
        report_outcomes(trained, promote=True)
    return trained


