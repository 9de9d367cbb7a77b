"""Fixtures shared by the whole suite (tests/ and every plugin's tests): one real Label Studio.

``labelstudio`` starts a local server once per session (about 30 s; data in a temporary
folder), or reuses the one named by ``PREANNOT_TEST_LS_URL`` + ``PREANNOT_TEST_LS_TOKEN``.
The label-studio executable comes from ``PREANNOT_LABEL_STUDIO_BIN``, PATH, or a venv the
fixture creates at ``.cache/labelstudio-venv``.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import pytest

from preannot.labelstudio.client import Client, Connection
from preannot.labelstudio.server import LocalServer, local_server


@dataclass
class LabelStudioFixture:
    url: str
    api_key: str
    server: LocalServer | None
    """The process when the fixture started it (None for a reused server): tests that stop and
    restart it skip without it."""

    @property
    def files_root(self):
        """The folder it serves files from (Local Files storages go in sub-folders of it)."""
        return self.server.files_root if self.server else None

    def client(self, **kwargs) -> Client:
        return Client(Connection(self.url, self.api_key), **kwargs)

    def env(self) -> dict[str, str]:
        """Environment for a ``preannot`` subprocess that should use this server."""
        return {"LABEL_STUDIO_URL": self.url, "LABEL_STUDIO_API_KEY": self.api_key}

    def project(self, label_config: str, title: str = "preannot test") -> int:
        """A fresh project (unique title) for one test."""
        created = self.client().sdk.projects.create(
            title=f"{title} {uuid.uuid4().hex[:6]}", label_config=label_config)
        return created.id


@pytest.fixture(scope="session")
def labelstudio(tmp_path_factory):
    url, token = os.environ.get("PREANNOT_TEST_LS_URL"), os.environ.get("PREANNOT_TEST_LS_TOKEN")
    if url and token:
        yield LabelStudioFixture(url.rstrip("/"), token, None)
        return
    server = local_server(tmp_path_factory.mktemp("labelstudio"),
                          files_root=tmp_path_factory.mktemp("served")).start()
    try:
        yield LabelStudioFixture(server.url, server.api_key, server)
    finally:
        server.stop()
