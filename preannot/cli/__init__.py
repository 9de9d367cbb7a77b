"""The ``preannot`` command line: option parsing and printing over :mod:`preannot.loop`.

Built-in commands are added first; then each plugin's ``register_commands`` hook, whose
commands may not take a built-in name (a clash is refused, with a warning)."""

from __future__ import annotations

import os
import sys

# no colour codes in logs: spaCy prints through wasabi, which colours whatever the output is
# unless told; rich already checks the terminal and NO_COLOR itself
if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
    for _switch in ("ANSI_COLORS_DISABLED", "WASABI_LOG_FRIENDLY", "WASABI_NO_PRETTY"):
        os.environ.setdefault(_switch, "1")  # its dividers are bold even with colours off

from ..engine.host import get_host  # noqa: E402
from .drift import drift  # noqa: E402
from .ls import ls  # noqa: E402
from .main import cli  # noqa: E402
from .review import review  # noqa: E402
from .serve import serve  # noqa: E402
from .select import duplicates, embed, similar  # noqa: E402
from .training import models, train  # noqa: E402

cli.add_command(ls)
cli.add_command(train)
cli.add_command(models)
cli.add_command(review)
cli.add_command(serve)
for _command in (similar, duplicates, embed):
    cli.add_command(_command)
cli.add_command(drift)
for _refused in get_host().add_commands(cli):
    print(f"warning: {_refused}", file=sys.stderr)

__all__ = ["cli"]
