"""The ``preannot`` command line: option parsing and printing over :mod:`preannot.loop`.

Built-in commands are added first; then each plugin's ``register_commands`` hook, whose
commands may not take a built-in name (a clash is refused, with a warning)."""

from __future__ import annotations

import sys

from ..engine.host import get_host
from .ls import ls
from .main import cli
from .training import models, train

cli.add_command(ls)
cli.add_command(train)
cli.add_command(models)
for _refused in get_host().add_commands(cli):
    print(f"warning: {_refused}", file=sys.stderr)

__all__ = ["cli"]
