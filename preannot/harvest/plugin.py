"""The harvest's commands, added to ``preannot ls``."""

from __future__ import annotations

from ..hookspecs import hookimpl
from .commands import pull, suggest_rules


@hookimpl
def register_commands(cli) -> None:
    @cli.group()
    def ls() -> None:
        """Label Studio."""

    ls.add_command(pull)
    ls.add_command(suggest_rules)
