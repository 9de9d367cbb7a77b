"""The check a command needing an optional extra makes first: one line naming the extra to
install, exit 1, instead of a traceback ending in ModuleNotFoundError."""

from __future__ import annotations

import click

from ..extras import MissingExtra, require


def need(extra: str) -> None:
    """Stop the running command with the line from :func:`preannot.extras.require`."""
    try:
        require(extra, click.get_current_context().command_path)
    except MissingExtra as exc:
        raise click.ClickException(str(exc)) from None
