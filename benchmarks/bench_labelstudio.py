"""The Label Studio a benchmark talks to: the one ``LABEL_STUDIO_URL`` and
``LABEL_STUDIO_API_KEY`` name, else a local one started for the benchmark and stopped after."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from preannot.labelstudio.client import Connection
from preannot.labelstudio.server import local_server


@contextmanager
def label_studio(data_dir: Path | None = None) -> Iterator[Connection]:
    if os.environ.get("LABEL_STUDIO_URL") and os.environ.get("LABEL_STUDIO_API_KEY"):
        yield Connection.resolve()
        return
    server = local_server(data_dir or Path(tempfile.mkdtemp(prefix="ls-bench-"))).start()
    try:
        yield Connection(server.url, server.api_key)
    finally:
        server.stop()
