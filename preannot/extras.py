"""The optional extras of ``pyproject.toml``: which modules each one brings, and the one line
that tells a user which to install when a command needs a module that is not there."""

from __future__ import annotations

import importlib

from .annotator import ConfigError

# extra -> the top-level modules a command needs from it (usearch, in [select], is left out:
# without it the index is an exact numpy search)
MODULES: dict[str, tuple[str, ...]] = {
    "serve": ("starlette", "uvicorn"),
    "review": ("sklearn", "scipy"),
    "select": ("sklearn", "scipy"),
    "quality": ("krippendorff",),
    "ray": ("ray", "ray.data"),
}


class MissingExtra(ConfigError):
    """A module of an optional extra is not installed; the message is the line to print."""


def missing(extra: str) -> str | None:
    """The top-level module that stops the first of ``extra``'s modules from importing (it,
    or one it imports: scipy for sklearn), else None."""
    for module in MODULES[extra]:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return (exc.name or module).split(".")[0]
    return None


def hint(extra: str, what: str, module: str) -> str:
    return (f'{what} needs the "{extra}" extra ({module} is not installed): '
            f'pip install "preannot[{extra}]"')


def require(extra: str, what: str) -> None:
    """Raise :class:`MissingExtra` naming the extra to install when ``what`` cannot run."""
    module = missing(extra)
    if module is not None:
        raise MissingExtra(hint(extra, what, module))
