"""Connecting a running ``preannot serve`` to a Label Studio project, and undoing it.

The backend is registered under its pipeline's ``model_version`` as title: Label Studio shows
a project's predictions of the version its ``model_version`` names, and moves that name along
when a backend's title changes, so a promotion (the server renames its entry) keeps the
editor showing the served version's predictions.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

from ..engine.config import RunConfig
from ..engine.host import Host, get_host
from ..labelstudio.client import Client, LabelStudioError
from ..labelstudio import sync

Log = Callable[[str], None]
WEBHOOK_ACTIONS = ["ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED",
                   "ANNOTATIONS_DELETED"]


def _quiet(_: str) -> None:
    pass


@dataclass
class Connected:
    project_id: int
    backend_id: int
    model_version: str
    interactive: bool
    webhook: bool
    """Annotation events reach the backend (learning from the editor)."""


def ours(client: Client, project_id: int, url: str) -> list[dict]:
    """This backend's entries in the project (by URL)."""
    return [b for b in client.ml_backends(project_id) if b.get("url", "").rstrip("/") == url]


def connect_backend(config: RunConfig, client: Client, *, interactive: bool = False,
                    auth: tuple[str, str] | None = None, project: str | None = None,
                    host: Host | None = None, log: Log = _quiet) -> Connected:
    """Register the backend at ``[serve] url`` with the project (replacing an earlier entry of
    the same URL), retrieve predictions automatically when a task opens, and send annotation
    events to its ``/webhook``. The backend must be running: Label Studio asks it for its
    version before it accepts it."""
    url = config.serve.backend_url
    built = sync.annotators(config, host or get_host())
    project_id = sync.project_for(config, client, built, project, log)
    version = sync.pipeline_version(config, built) or "preannot"
    for old in ours(client, project_id, url):
        client.remove_ml_backend(old["id"])
    try:
        backend = client.add_ml_backend(ml_fields(project_id, url, auth), title=version,
                                        interactive=interactive)
    except LabelStudioError as exc:
        raise LabelStudioError(
            f"{exc}\n  is `preannot serve` running at {url}? A Label Studio that refuses "
            "local addresses needs ML_BLOCK_LOCAL_IP=false in its environment (the local one "
            "`preannot ls up` starts has it)") from None
    client.update_project(project_id, show_collab_predictions=True,
                          evaluate_predictions_automatically=True, model_version=version)
    webhook = _add_webhook(client, project_id, f"{url}/webhook", auth, log)
    return Connected(project_id, backend["id"], version, interactive, webhook)


def _add_webhook(client: Client, project_id: int, url: str, auth: tuple[str, str] | None,
                 log: Log) -> bool:
    for old in client.webhooks(project_id):
        if old.get("url") == url:
            client.remove_webhook(old["id"])
    headers = {}
    if auth:
        pair = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {pair}"
    try:
        client.add_webhook(project_id, url, WEBHOOK_ACTIONS, headers)
        return True
    except LabelStudioError as exc:
        log(f"annotation events will not reach the backend (no learning from the editor): "
            f"{exc}\n  a Label Studio on the same machine needs SSRF_PROTECTION_ENABLED=false "
            "to send webhooks to a local address (the one `preannot ls up` starts has it)")
        return False


def disconnect_backend(config: RunConfig, client: Client, *, project: str | None = None,
                       host: Host | None = None) -> int:
    """Remove this backend and its webhook from the project and stop retrieving predictions
    automatically; the predictions already made stay. Returns how many entries were removed."""
    url = config.serve.backend_url
    built = sync.annotators(config, host or get_host())
    project_id = sync.project_for(config, client, built, project)
    removed = ours(client, project_id, url)
    for backend in removed:
        client.remove_ml_backend(backend["id"])
    for hook in client.webhooks(project_id):
        if hook.get("url") == f"{url}/webhook":
            client.remove_webhook(hook["id"])
    client.update_project(project_id, evaluate_predictions_automatically=False)
    return len(removed)


def follow_version(config: RunConfig, client: Client, project_id: int, version: str,
                   auth: tuple[str, str] | None = None) -> int:
    """After a promotion: rename this backend's entries to the new version, which moves the
    project's ``model_version`` with them. Returns how many were renamed."""
    entries = ours(client, project_id, config.serve.backend_url)
    for backend in entries:
        # Label Studio 1.23 checks the backend again on any change, with only the fields the
        # change names: the url, the project and the login go along
        client.update_ml_backend(backend["id"], **ml_fields(project_id, backend["url"], auth),
                                 title=version)
    return len(entries)


def ml_fields(project_id: int, url: str, auth: tuple[str, str] | None) -> dict:
    """What Label Studio needs to reach the backend, as its ML-backend API names them."""
    fields = {"project": project_id, "url": url, "auth_method": "NONE"}
    if auth:
        fields.update(auth_method="BASIC_AUTH", basic_auth_user=auth[0], basic_auth_pass=auth[1])
    return fields
