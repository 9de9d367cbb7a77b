"""Label Studio's ML-backend protocol over HTTP (Starlette, served by uvicorn).

Routes, as Label Studio 1.23 calls them: ``GET /health`` (and ``/``) within its 1 s,
``POST /setup`` within its 3 s (both answered on the event loop, never behind a prediction or
a training), ``POST /predict`` (a batch of tasks, or one task with the editor's ``context`` for
an interactive answer), ``POST /webhook`` (annotation events, ``START_TRAINING``), the legacy
``POST /train``, ``GET /versions`` and ``GET /metrics``. With ``BASIC_AUTH_USER`` and
``BASIC_AUTH_PASS`` set (the names Label Studio's own ML backends read), every route asks for
them.
"""

from __future__ import annotations

import time
import traceback

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .auth import authorized, credentials
from .backend import Backend
from .pipeline import interact, predict
from .request import BadRequest, Body, parse

ANNOTATION_EVENTS = frozenset({"ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED",
                               "ANNOTATIONS_DELETED"})
"""Label Studio's webhook actions for saved and deleted annotations (deletes are plural)."""


async def _body(request: Request) -> Body:
    return parse(request.url.path, await request.body())


def create_app(backend: Backend) -> Starlette:
    log = backend.log

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(backend.health())

    async def setup(request: Request) -> JSONResponse:
        body = await _body(request)
        await run_in_threadpool(backend.check_project, body.project())
        pipeline = backend.pipeline
        fits = pipeline.fit(body.text("schema", "a string (the labeling config)"), log)
        answer = {"model_version": pipeline.version}
        return JSONResponse({**answer, "notice": fits.note} if fits.note else answer)

    async def predict_route(request: Request) -> JSONResponse:
        body = await _body(request)
        tasks = body.get("tasks", list, "a list of Label Studio tasks", required=True)
        await run_in_threadpool(backend.check_project, body.project())
        pipeline = backend.pipeline  # one version for the whole request
        fits = pipeline.fit(body.text("label_config", "a string (the labeling config)"), log)
        prompts = body.prompts(body.context())
        begin = time.monotonic()
        if prompts:
            if len(tasks) != 1:
                raise BadRequest("/predict: an interactive request holds one task")
            results = [await run_in_threadpool(interact, pipeline, tasks[0], prompts, fits, log)]
            backend.timed("interactive", time.monotonic() - begin)
        else:
            results = await run_in_threadpool(predict, pipeline, tasks, fits, log)
            backend.timed("predict", time.monotonic() - begin)
            backend.counts["tasks"] += len(tasks)
        return JSONResponse({"results": results, "model_version": pipeline.version})

    async def webhook(request: Request) -> JSONResponse:
        body = await _body(request)
        action = body.text("action", "a string (a Label Studio webhook action)")
        project = body.project()
        backend.counts[f"webhook {action}"] += 1
        if backend.learner is None:
            return JSONResponse({"status": "ignored", "reason": "learning is off ([serve] learn)"})
        if action == "START_TRAINING":
            backend.learner.train_now(project)
        elif action in ANNOTATION_EVENTS:
            backend.learner.annotations_changed(project)
        else:
            return JSONResponse({"status": "ignored", "action": action})
        return JSONResponse({"status": "ok", "action": action})

    async def train(request: Request) -> JSONResponse:
        body = await _body(request)
        if backend.learner is None:
            return JSONResponse({"status": "ignored", "reason": "learning is off ([serve] learn)"})
        backend.learner.train_now(body.project())
        return JSONResponse({"status": "ok"})

    async def versions(request: Request) -> JSONResponse:
        return JSONResponse({"versions": await run_in_threadpool(backend.versions)})

    async def metrics(request: Request) -> JSONResponse:
        return JSONResponse(backend.metrics())

    expected = credentials()

    async def guard(request: Request, call_next):
        if not authorized(request.headers.get("authorization", ""), expected):
            return JSONResponse({"error": "authentication required (HTTP Basic)"}, status_code=401,
                                headers={"WWW-Authenticate": 'Basic realm="preannot"'})
        return await call_next(request)

    async def refused(request: Request, exc: BadRequest) -> JSONResponse:
        log(f"{request.method} {request.url.path}: refused: {exc}")
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": f"{request.method} {request.url.path}: {exc.detail}"},
                            status_code=exc.status_code, headers=exc.headers)

    async def failed(request: Request, exc: Exception) -> JSONResponse:
        """A bug, not a bad request: logged with its traceback, answered in JSON all the same."""
        log(f"{request.method} {request.url.path}: failed: "
            + "".join(traceback.format_exception(exc)))
        return JSONResponse({"error": f"{request.url.path}: internal error "
                             f"({type(exc).__name__}); see the server's log"}, status_code=500)

    return Starlette(
        routes=[Route("/", health), Route("/health", health),
                Route("/setup", setup, methods=["POST"]),
                Route("/predict", predict_route, methods=["POST"]),
                Route("/webhook", webhook, methods=["POST"]),
                Route("/train", train, methods=["POST"]),
                Route("/versions", versions), Route("/metrics", metrics)],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)] if expected else [],
        exception_handlers={BadRequest: refused, HTTPException: http_error, Exception: failed})


def serve(backend: Backend, host: str, port: int) -> None:
    """Serve until interrupted (uvicorn: one process, the models loaded once in it)."""
    import uvicorn

    try:
        uvicorn.run(create_app(backend), host=host, port=port, log_level="warning",
                    timeout_graceful_shutdown=5)
    finally:
        backend.stop()
