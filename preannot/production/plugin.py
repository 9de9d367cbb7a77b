"""Production review through the hooks: the `review` and `drift` commands, the reviews'
corrections given to training, and recalibration when the pipeline changes."""

from __future__ import annotations

from ..hookspecs import hookimpl
from . import calibrate
from .commands import review
from .drift_commands import drift
from .reviewed import reviewed_corrections


@hookimpl
def register_commands(cli) -> None:
    cli.add_command(review)
    cli.add_command(drift)


@hookimpl
def training_corrections(config) -> list:
    return [reviewed_corrections(config)]


@hookimpl
def promoted(config, push, log) -> None:
    """A new current version: recalibrated at once when production review uses it."""
    calibrate.recalibrate_if_used(config, log)


@hookimpl(trylast=True)
def harvested(config, log, interactive) -> None:
    """After training's reaction: a pipeline version with no calibration yet (a fusion that
    re-learned from the harvest) is calibrated at once when production review is in use."""
    calibrate.recalibrate_if_stale(config, log)
