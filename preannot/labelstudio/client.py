"""The one place that talks HTTP to Label Studio, through the SDK's ``LabelStudio`` client.

Why a wrapper: bounded retries with exponential backoff on 5xx, timeouts and dropped
connections; errors a user can act on (server down, bad token, no such project) instead of
tracebacks; and a token that never shows up in output, logs, exception messages or reprs.
Both token kinds work because the SDK picks the scheme: a legacy token is sent as
``Authorization: Token ...``, a personal access token (a JWT refresh token) is exchanged for a
short-lived access token sent as ``Bearer ...``.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from ..annotator import ConfigError
from ..engine.config import LabelStudioSettings

T = TypeVar("T")
URL_ENV = "LABEL_STUDIO_URL"
KEY_ENV = "LABEL_STUDIO_API_KEY"
PAGE_SIZE = 5000
ANNOTATED_PAGE_SIZE = 500
"""Tasks per page with annotations and predictions: a page of a large project stays a
second or two of the server's time, far inside the timeout, and short for annotators' saves."""
EXPORT_FIELDS = frozenset((
    "id", "data", "meta", "annotations", "predictions", "drafts", "created_at", "updated_at",
    "inner_id", "project", "total_annotations", "cancelled_annotations", "total_predictions",
    "comment_count", "unresolved_comment_count", "last_comment_updated_at", "updated_by"))
"""The task fields of Label Studio's JSON export, asked of its task list instead."""


class LabelStudioError(ConfigError):
    """Something the user must fix about the connection (server down, token, project)."""


class Unreachable(LabelStudioError):
    """The server did not answer, even after retries; a rerun resumes where this stopped."""


@dataclass(frozen=True)
class Connection:
    """Where the server is and the token to use; ``repr`` hides the token."""

    url: str
    api_key: str = field(repr=False)

    @classmethod
    def resolve(cls, settings: LabelStudioSettings | None = None,
                env: Mapping[str, str] | None = None) -> Connection:
        """From ``LABEL_STUDIO_URL``/``LABEL_STUDIO_API_KEY``, else the ``[labelstudio]`` table.

        The table may name ``url``, and the token only indirectly: ``api_key_env`` (a variable to
        read) or ``api_key_file`` (a file holding it), never the token itself, so that a config
        file can be committed (the config parser refuses ``api_key``).
        """
        env = os.environ if env is None else env
        settings = settings or LabelStudioSettings()
        url = env.get(URL_ENV) or settings.url
        if not url:
            raise LabelStudioError(f"no Label Studio server: set {URL_ENV} (and {KEY_ENV}) or "
                                   "[labelstudio] url, or run `preannot ls up` for a local one")
        # tokens pasted or read with $(cat file) often carry a newline: never part of a token
        key = (env.get(KEY_ENV) or "").strip()
        if not key and settings.api_key_env:
            key = (env.get(settings.api_key_env) or "").strip()
        if not key and settings.api_key_file:
            try:
                key = settings.api_key_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise LabelStudioError(f"[labelstudio] api_key_file {settings.api_key_file}: "
                                       f"{exc.strerror}") from None
        if not key:
            where = settings.api_key_env or KEY_ENV
            raise LabelStudioError(f"no Label Studio API key: set {where} (Account & Settings > "
                                   "Personal Access Token, or a legacy token)")
        return cls(url=str(url).strip().rstrip("/"), api_key=key)


class Client:
    """A Label Studio connection with retries and readable errors."""

    def __init__(self, connection: Connection, *, retries: int = 5, backoff: float = 0.5,
                 timeout: float = 300.0, local_files_root: str | None = None) -> None:
        self.url = connection.url
        self.local_files_root = local_files_root
        """The server's ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` when it serves files from this
        machine (the local server does; a remote one when configured): images on disk are
        then pushed as ``/data/local-files/`` paths, with a storage per folder."""
        self.retries = retries
        self.backoff = backoff
        try:
            self.sdk = LabelStudio(base_url=connection.url, api_key=connection.api_key,
                                   timeout=timeout, max_retries=0)
        except ApiError as exc:  # an expired or malformed personal access token
            raise LabelStudioError(f"Label Studio at {self.url} rejected the API key: "
                                   f"{_detail(exc)}") from None

    def __repr__(self) -> str:
        return f"Client(url={self.url!r})"

    def call(self, fn: Callable[..., T], *args: Any, what: str = "request", retry: bool = True,
             retries: int | None = None, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` with bounded exponential backoff on transient failures.

        ``retry=False`` is for requests that must not be repeated blindly (an import whose answer
        was lost may have been applied): the caller checks the server state and decides.
        """
        attempt, retries = 0, self.retries if retries is None else retries
        while True:
            try:
                return fn(*args, **kwargs)
            except (httpx.TransportError, ApiError) as exc:
                if isinstance(exc, httpx.TransportError):  # a request never written won't be
                    transient = not isinstance(exc, httpx.LocalProtocolError)  # written later
                else:
                    transient = exc.status_code is not None and exc.status_code >= 500
                if not transient or not retry or attempt >= retries:
                    raise self._translate(exc, what, attempt) from None
            attempt += 1
            time.sleep(self.backoff * 2 ** (attempt - 1) * (0.75 + random.random() / 2))

    def _translate(self, exc: Exception, what: str, attempts: int) -> LabelStudioError:
        if isinstance(exc, httpx.LocalProtocolError):  # the request could not even be written
            return LabelStudioError(
                f"could not send a request to Label Studio at {self.url} ({what}): the API key "
                f"or another header holds a character HTTP does not allow (a newline or space "
                f"inside the token?): check {KEY_ENV}")
        if isinstance(exc, httpx.TransportError):
            return Unreachable(f"Label Studio at {self.url} is not reachable ({what}: "
                               f"{type(exc).__name__}): start it or set {URL_ENV}")
        assert isinstance(exc, ApiError)
        if exc.status_code == 401:
            return LabelStudioError(f"Label Studio at {self.url} rejected the API key (401): "
                                    f"check {KEY_ENV}")
        if exc.status_code == 403:
            return LabelStudioError(f"Label Studio at {self.url} refused {what} (403): the "
                                    "token's user lacks access")
        if exc.status_code == 404:
            return LabelStudioError(f"Label Studio at {self.url}: {what}: not found (404)")
        if exc.status_code is not None and exc.status_code >= 500:
            return Unreachable(f"Label Studio at {self.url} failed {what} "
                               f"({exc.status_code}) after {attempts} retries")
        return LabelStudioError(f"Label Studio at {self.url} refused {what} "
                                f"({exc.status_code}): {_detail(exc)}")

    def request(self, method: str, path: str, *, what: str = "request",
                params: Mapping[str, Any] | None = None, body: Any = None,
                retries: int | None = None) -> Any:
        """A raw API call (for endpoints the SDK does not wrap), with the SDK's auth. A POST is
        never repeated: one whose answer was lost may have been carried out (an export started,
        a view created), and a second would do it again."""
        def send() -> Any:
            response = self.sdk._client_wrapper.httpx_client.request(
                path, method=method, params=dict(params or {}), json=body)
            if response.status_code >= 400:
                try:
                    payload = response.json()
                except ValueError:
                    payload = response.text[:500]
                raise ApiError(status_code=response.status_code, body=payload)
            return response.json() if response.content else None
        return self.call(send, what=what, retries=retries, retry=method.upper() != "POST")

    def check(self) -> dict[str, Any]:
        """Who the token belongs to; fails clearly when the server or the token is wrong
        (after a short wait only: a server that is down at the start is not worth waiting for)."""
        return self.request("GET", "api/current-user/whoami", what="checking the API key",
                            retries=min(self.retries, 2))

    def project(self, project: int | str) -> Any:
        """A project by id (digits) or exact title."""
        if isinstance(project, int) or str(project).isdigit():
            return self.call(self.sdk.projects.get, int(project), what=f"project {project}")
        found = [p for p in self.call(lambda: list(self.sdk.projects.list()), what="listing projects")
                 if p.title == project]
        if not found:
            raise LabelStudioError(f"Label Studio at {self.url} has no project titled {project!r}")
        return found[0]

    def tasks(self, project_id: int, *, include: str = "id,meta",
              model_version: str | None = None) -> Iterator[dict[str, Any]]:
        """The project's tasks (only the ``include`` fields), in id order; with
        ``model_version``, only tasks that already hold a prediction of that version."""
        filters = []
        if model_version is not None:
            include += ",predictions_model_versions"
            filters.append({"filter": "filter:tasks:predictions_model_versions",
                            "operator": "contains", "type": "List", "value": [model_version]})
        for task in self._walk(project_id, {"fields": "task_only", "include": include},
                               filters, PAGE_SIZE):
            if model_version is None or model_version in str(
                    task.get("predictions_model_versions") or "").split(","):
                yield task

    def annotated_tasks(self, project_id: int, *, changed_after: str | None = None,
                        page_size: int | None = None) -> Iterator[dict[str, Any]]:
        """The project's tasks as Label Studio's JSON export has them (annotations, skipped
        ones included, and full predictions), in id order, without making an export;
        ``changed_after``: only tasks whose ``updated_at`` is later."""
        filters = []
        if changed_after is not None:
            filters.append({"filter": "filter:tasks:updated_at", "operator": "greater",
                            "type": "Datetime", "value": changed_after})
        # the whole task is asked for: an `include` list would be applied to the annotations'
        # fields too, and makes the server four times slower
        for task in self._walk(project_id, {"fields": "all"}, filters,
                               page_size or ANNOTATED_PAGE_SIZE):
            yield {key: value for key, value in task.items() if key in EXPORT_FIELDS}

    def _walk(self, project_id: int, params: dict[str, Any], filters: list[dict[str, Any]],
              size: int) -> Iterator[dict[str, Any]]:
        """Pages of the Data Manager's task list, asked by id ("after the last one seen"), so
        each request is as quick as the first and tasks added or deleted meanwhile shift
        nothing."""
        after = 0
        while True:
            query = {"filters": {"conjunction": "and", "items": [*filters, {
                "filter": "filter:tasks:id", "operator": "greater", "type": "Number",
                "value": after}]}, "ordering": ["tasks:id"]}
            reply = self.request("GET", "api/tasks", what=f"listing tasks of project {project_id}",
                                 params={"project": project_id, "page_size": size, "page": 1,
                                         "resolve_uri": "false", "query": json.dumps(query),
                                         **params})
            yield from reply["tasks"]
            if len(reply["tasks"]) < size:
                return
            after = reply["tasks"][-1]["id"]

    def last_change(self, project_id: int) -> str | None:
        """The latest ``updated_at`` of the project's tasks (None without tasks)."""
        query = {"filters": {"conjunction": "and", "items": []}, "ordering": ["-tasks:updated_at"]}
        reply = self.request("GET", "api/tasks", what=f"reading project {project_id}",
                             params={"project": project_id, "fields": "task_only",
                                     "include": "id,updated_at", "page_size": 1, "page": 1,
                                     "query": json.dumps(query)})
        return reply["tasks"][0]["updated_at"] if reply["tasks"] else None

    def next_task(self, project_id: int) -> dict[str, Any]:
        """The task Label Studio's labeling stream serves next (its sampling applied)."""
        return self.request("GET", f"api/projects/{project_id}/next", what="asking for the next task")

    def ml_backends(self, project_id: int) -> list[dict[str, Any]]:
        """The ML backends connected to a project."""
        return self.request("GET", "api/ml", params={"project": project_id},
                            what=f"listing ML backends of project {project_id}")

    def add_ml_backend(self, fields: dict[str, Any], *, title: str, interactive: bool
                       ) -> dict[str, Any]:
        """Connect an ML backend (``fields``: project, url and how to log in to it); Label
        Studio calls its ``/health`` and ``/setup`` first and refuses one it cannot reach."""
        return self.request("POST", "api/ml", body={**fields, "title": title,
                                                    "is_interactive": interactive},
                            what=f"connecting the ML backend {fields['url']} to project "
                                 f"{fields['project']}")

    def update_ml_backend(self, backend_id: int, **fields: Any) -> dict[str, Any]:
        return self.request("PATCH", f"api/ml/{backend_id}", body=fields,
                            what=f"updating ML backend {backend_id}")

    def remove_ml_backend(self, backend_id: int) -> None:
        self.request("DELETE", f"api/ml/{backend_id}", what=f"removing ML backend {backend_id}")

    def webhooks(self, project_id: int) -> list[dict[str, Any]]:
        return self.request("GET", "api/webhooks/", params={"project": project_id},
                            what=f"listing webhooks of project {project_id}")

    def add_webhook(self, project_id: int, url: str, actions: list[str],
                    headers: dict[str, str] | None = None) -> dict[str, Any]:
        return self.request("POST", "api/webhooks/", body={
            "project": project_id, "url": url, "send_payload": True, "is_active": True,
            "send_for_all_actions": False, "actions": actions, "headers": headers or {}},
            what=f"adding a webhook to project {project_id}")

    def remove_webhook(self, webhook_id: int) -> None:
        self.request("DELETE", f"api/webhooks/{webhook_id}/",
                     what=f"removing webhook {webhook_id}")

    def update_project(self, project_id: int, **fields: Any) -> dict[str, Any]:
        return self.request("PATCH", f"api/projects/{project_id}", body=fields,
                            what=f"updating project {project_id}")

    def retrieve_predictions(self, project_id: int, task_ids: list[int]) -> dict[str, Any]:
        """The Data Manager's "Retrieve predictions" action on these tasks: Label Studio asks
        the project's ML backend and stores what it answers."""
        return self.request("POST", "api/dm/actions",
                            params={"id": "retrieve_tasks_predictions", "project": project_id},
                            body={"selectedItems": {"all": False, "included": task_ids}},
                            what=f"retrieving predictions in project {project_id}")

    def interactive_annotating(self, backend_id: int, task_id: int,
                               context: dict[str, Any]) -> dict[str, Any]:
        """What the editor asks when a user draws with a smart tool (the backend's answer
        under ``data``, or ``errors``)."""
        return self.request("POST", f"api/ml/{backend_id}/interactive-annotating",
                            body={"task": task_id, "context": context},
                            what=f"interactive annotating of task {task_id}")
    def users(self) -> dict[int, str]:
        """User id -> email (else username) of the organization: who made each annotation."""
        reply = self.request("GET", "api/users/", what="listing users")
        return {u["id"]: u.get("email") or u.get("username") or str(u["id"]) for u in reply}

    def set_task_data(self, task_id: int, data: dict[str, Any]) -> dict[str, Any]:
        """Replace a task's data (to hold a value a Data Manager tab filters and sorts on): the
        task as it is now (its new ``updated_at``)."""
        return self.request("PATCH", f"api/tasks/{task_id}", what=f"updating task {task_id}",
                            body={"data": data})

    def ensure_view(self, project_id: int, title: str, field: str) -> int:
        """A Data Manager tab ``title`` showing the tasks whose numeric data ``field`` is above
        0, highest first; created, or its filter and order set again. Its id."""
        column = f"tasks:data.{field}"
        data = {"title": title, "ordering": [f"-{column}"],
                "columnsDisplayType": {column: "Number"},
                "filters": {"conjunction": "and", "items": [
                    {"filter": f"filter:{column}", "operator": "greater", "type": "Number",
                     "value": 0}]}}
        views = self.request("GET", "api/dm/views/", params={"project": project_id},
                             what=f"listing the Data Manager tabs of project {project_id}")
        found = [v for v in views if (v.get("data") or {}).get("title") == title]
        if found:
            self.request("PATCH", f"api/dm/views/{found[0]['id']}", body={
                "project": project_id, "data": {**found[0]["data"], **data}},
                what=f"updating the Data Manager tab {title!r}")
            return int(found[0]["id"])
        made = self.request("POST", "api/dm/views/", body={"project": project_id, "data": data},
                            what=f"creating the Data Manager tab {title!r}")
        return int(made["id"])

    def predictions(self, task_id: int) -> list[dict[str, Any]]:
        """The predictions of one task."""
        return self.request("GET", "api/predictions/", params={"task": task_id},
                            what=f"listing the predictions of task {task_id}")

    def set_prediction_score(self, prediction_id: int, score: float) -> dict[str, Any]:
        """Change a prediction's score: Uncertainty sampling serves the lowest first."""
        return self.request("PATCH", f"api/predictions/{prediction_id}/", body={"score": score},
                            what=f"setting the score of prediction {prediction_id}")

    def view_tasks(self, view_id: int, project_id: int) -> list[int]:
        """The ids of a Data Manager tab's tasks, in its order."""
        reply = self.request("GET", "api/tasks", params={
            "project": project_id, "view": view_id, "fields": "task_only", "include": "id",
            "page_size": PAGE_SIZE, "page": 1}, what=f"listing the tasks of tab {view_id}")
        return [t["id"] for t in reply["tasks"]]

    def export(self, project_id: int) -> list[dict[str, Any]]:
        """Every task of a project with what Label Studio's JSON export holds (small projects:
        a list in memory)."""
        return list(self.annotated_tasks(project_id))


def _detail(exc: ApiError) -> str:
    body = exc.body
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("validation_errors") or body)[:500]
    return str(body)[:500]


def connect(settings: LabelStudioSettings | None = None) -> Client:
    """A checked client from the environment or the ``[labelstudio]`` table."""
    client = Client(Connection.resolve(settings))
    client.check()
    return client
