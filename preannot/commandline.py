"""What the kernel's commands and each feature's share: the console they write to, the
``--config`` option, the progress bar, one line of progress, and the ``harvested`` event a
command emits after pulling corrections. Outside :mod:`preannot.cli`, whose import adds the
plugins' commands, so that a feature's commands can import it while the host loads them."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from .annotator import ConfigError
from .engine.host import get_host
from .extras import MissingExtra, require

err = Console(stderr=True)
config_option = click.option("-c", "--config", "config_path",
                             type=click.Path(path_type=Path, dir_okay=False),
                             help="Config file (default: ./preannot.toml if present).")


def need(extra: str) -> None:
    """Stop the running command with the one line :func:`preannot.extras.require` gives (the
    extra to install) instead of a traceback ending in ModuleNotFoundError; exit 1."""
    try:
        require(extra, click.get_current_context().command_path)
    except MissingExtra as exc:
        raise click.ClickException(str(exc)) from None


def log_line(message: str) -> None:
    """One line of the loop's progress on stderr, as is (no rich markup)."""
    err.print(message, markup=False, highlight=False)


def progress_bar(label: str, no_progress: bool, *columns) -> Progress:
    return Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), *columns,
                    console=err, disable=no_progress)


def after_harvest(config) -> None:
    """Tell every feature that corrections were harvested (``harvested``: training retrains
    what is due and says how it went)."""
    try:
        get_host().hook.harvested(config=config, log=log_line, interactive=True)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
