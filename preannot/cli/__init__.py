"""The ``preannot`` command line: the kernel's commands (``run``, ``plugins``, ``ls push``,
``ls up``), then each plugin's ``register_commands`` hook: the built-in features first
(:data:`preannot.plugins.DEFAULT_PLUGINS`), then installed plugins, whose commands may not
take a name already taken (a clash is refused, with a warning)."""

from __future__ import annotations

import os
import sys

# no colour codes in logs: spaCy prints through wasabi, which colours whatever the output is
# unless told; rich already checks the terminal and NO_COLOR itself
if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
    for _switch in ("ANSI_COLORS_DISABLED", "WASABI_LOG_FRIENDLY", "WASABI_NO_PRETTY"):
        os.environ.setdefault(_switch, "1")  # its dividers are bold even with colours off

from ..engine.host import get_host  # noqa: E402
from .ls import ls  # noqa: E402
from .main import cli  # noqa: E402

cli.add_command(ls)
for _refused in get_host().add_commands(cli):
    print(f"warning: {_refused}", file=sys.stderr)

__all__ = ["cli"]
