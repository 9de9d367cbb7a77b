"""Worker processes end with the run that started them. A run killed with SIGKILL cleans
nothing up: its workers, and the multiprocessing resource tracker whose pipe they hold open,
would go on under init until someone killed them."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCH_SECONDS = 1.0


def die_with_parent(parent: int) -> None:
    """Called first in a worker: end it once ``parent`` (the pid that started it) is gone.

    On Linux the kernel sends SIGKILL when the parent dies (PR_SET_PDEATHSIG); elsewhere, and
    as a fallback, a thread watches the parent pid."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # a libc without prctl: the watch below does it
            pass
    if os.getppid() != parent:  # died before the kernel was told to watch
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), name="preannot-parent-watch",
                     daemon=True).start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_SECONDS)
    os._exit(1)
