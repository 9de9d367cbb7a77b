"""The ML backend's commands: `serve`, and `ls connect` / `ls disconnect`."""

from __future__ import annotations

from ..hookspecs import hookimpl
from .commands import connect, disconnect, serve


@hookimpl
def register_commands(cli) -> None:
    cli.add_command(serve)

    @cli.group()
    def ls() -> None:
        """Label Studio."""

    ls.add_command(connect)
    ls.add_command(disconnect)
