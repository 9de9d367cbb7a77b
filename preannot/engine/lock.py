"""One run at a time per output: two runs writing one output file would both rebuild it from
the ledger and the slower one would overwrite the other's tasks.

The lock is an OS file lock (``filelock``) on a hidden file beside the output, so it is
released when the process ends, however it ends (Ctrl-C, kill, crash): a stale lock never
blocks the next run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from ..annotator import ConfigError


class Busy(ConfigError):
    """Another process holds the output's lock."""


def lock_path(output: Path) -> Path:
    return output.with_name(f".{output.name}.lock")


@contextmanager
def output_lock(output: Path, what: str = "preannot run",
                else_: str = "or write elsewhere with -o") -> Iterator[None]:
    """Hold ``output``'s lock for the block, or refuse at once with one line."""
    path = lock_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise Busy(f"another {what} is writing {output} (it holds {path.name}): wait for it "
                   f"to finish, {else_}") from None
    try:
        yield
    finally:
        lock.release()
