"""The embedded error endpoint: "why did job 7f3a fail?" as an HTTP call.

A Starlette application a training server mounts into its own ASGI app (FastAPI included)::

    app.mount("/crashsight", crashsight_app("runs/reports", "runs/logs", token_env="CS_TOKEN"))

Routes, relative to where it is mounted:

==============================  ==========================================================
``GET /jobs``                   `JobList`: known jobs with their verdicts, newest first
``GET /jobs/{job_id}/errors``   `JobErrors`: status, summary, errors, traceback, analysis
``GET /jobs/{job_id}``          the HTML error-trace panel that ``--html`` writes
==============================  ==========================================================

`training_app` serves the same jobs in a training server's existing contract, at
``GET /{job_id}/errors`` (`crashsight.server.training`).

Who talks to whom::

    request ─▶ _SecurityHeaders ─▶ BearerAuth ─▶ route ─(worker thread)─▶ JobStore ─▶ files
                                        │                                    │
                                     401 ErrorBody            Report | cached AnalyzeResult
                                                                             │
                  response ◀── finish: Redactor, then Limits ◀── views ◀─────┘

Statuses: 200 with an empty error list for a running or succeeded job; 400 for a job id that is
not one (it could name a path); 401 for a missing or wrong token; 403 for a job file that
resolves outside its folder (a symlink pointing out: the server's data is misconfigured or
tampered with, and no request can fix it); 404 for an unknown job or route; 422 when the job's
file exists but its content cannot be explained (a binary log, a file that is not a crashsight
report): a fact about that job's data, which retrying will not change; 500 when the server cannot
read its own folders (permissions, I/O errors): the operator must fix the server, and monitoring
alerts on 5xx. Every error is an `ErrorBody`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..diagnostics.analysis_model import AnalyzeResult
from ..diagnostics.rules import Rule
from ..redact import Redactor
from ..report.aggregate import ShardReport, Unreadable, load_shard
from ..report.html import render_panel
from ..report.model import Report
from .auth import BearerAuth, TokenSource, token_source
from .bounds import Limits
from .jobs import JOB_ID, JobFiles, JobStore
from .models import ErrorBody, ErrorTag, JobErrors, JobList, JobSummary
from .training import training_errors
from .views import (
    errors_from_analysis,
    errors_from_report,
    finish,
    finish_panel,
    panel_for,
    running_errors,
    summary_of,
)

__all__ = ["crashsight_app", "training_app"]

_TAGS: dict[int, ErrorTag] = {
    400: "invalid_job_id",
    403: "outside_folder",
    404: "not_found",
    405: "method_not_allowed",
    422: "unprocessable",
    500: "unreadable",
}
_HEADERS = {
    b"cache-control": b"no-store",  # a job's errors are private and change while it runs
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
}
# The panel carries its style and script inline and loads nothing else; frames only from the host.
_PAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)


def crashsight_app(
    reports: str | os.PathLike[str],
    logs: str | os.PathLike[str] | None = None,
    *,
    token_env: str | None = None,
    token: TokenSource | None = None,
    unauthenticated: bool = False,
    limits: Limits | None = None,
    rules: Sequence[Rule] = (),
    redactor: Redactor | None = None,
) -> Starlette:
    """Build the endpoint for the jobs under ``reports`` and ``logs`` (layout: `crashsight.server.jobs`).

    Args:
        reports: Folder of ``<job_id>.json`` reports and ``<job_id>.running`` markers.
        logs: Folder of ``<job_id>.log`` logs; None when jobs leave reports only.
        token_env: Environment variable holding the bearer token, read now.
        token: Callable returning the bearer token, called per request (for rotation).
        unauthenticated: Serve without a token, because the host app authorises requests.
        limits: Response size limits (default `Limits()`).
        rules: Classification rules tried first when analysing a log, as ``--rules`` loads them.
        redactor: Applied to every string served (default: this process's secrets and the
            well-known credential shapes).

    Raises:
        ConfigurationError: A folder is missing, or the token options are missing, contradict
            each other, or name an unset environment variable.
    """
    endpoint, middleware = _endpoint(
        reports, logs, token_env, token, unauthenticated, limits, rules, redactor
    )
    return _starlette(
        [
            Route("/jobs", endpoint.jobs, methods=["GET"]),
            Route("/jobs/{job_id}", endpoint.page, methods=["GET"]),
            Route("/jobs/{job_id}/errors", endpoint.errors, methods=["GET"]),
        ],
        middleware,
    )


def training_app(
    reports: str | os.PathLike[str],
    logs: str | os.PathLike[str] | None = None,
    *,
    token_env: str | None = None,
    token: TokenSource | None = None,
    unauthenticated: bool = False,
    limits: Limits | None = None,
    rules: Sequence[Rule] = (),
    redactor: Redactor | None = None,
) -> Starlette:
    """The same jobs in the training-server contract (`crashsight.server.training`).

    Mount it where the UI expects it, ``app.mount("/api/training", training_app(...))``, and
    ``GET /api/training/{job_id}/errors`` answers a `TrainingErrors`; the arguments, the auth,
    the path rules and the size limits are those of `crashsight_app`.
    """
    endpoint, middleware = _endpoint(
        reports, logs, token_env, token, unauthenticated, limits, rules, redactor
    )
    return _starlette(
        [Route("/{job_id}/errors", endpoint.training_errors, methods=["GET"])], middleware
    )


def _endpoint(
    reports: str | os.PathLike[str],
    logs: str | os.PathLike[str] | None,
    token_env: str | None,
    token: TokenSource | None,
    unauthenticated: bool,
    limits: Limits | None,
    rules: Sequence[Rule],
    redactor: Redactor | None,
) -> tuple[_Endpoint, list[Middleware]]:
    source = token_source(token_env=token_env, token=token, unauthenticated=unauthenticated)
    limits = limits or Limits()
    redactor = redactor or Redactor()
    store = JobStore(reports, logs, limits=limits, rules=rules, redactor=redactor)
    middleware = [Middleware(_SecurityHeaders)]
    if source is not None:
        middleware.append(Middleware(BearerAuth, token=source))
    return _Endpoint(store, redactor, limits), middleware


def _starlette(routes: list[Route], middleware: list[Middleware]) -> Starlette:
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )


class _Endpoint:
    """The routes; each runs its file work in a worker thread, off the event loop."""

    def __init__(self, store: JobStore, redactor: Redactor, limits: Limits) -> None:
        self.store = store
        self.redactor = redactor
        self.limits = limits

    async def errors(self, request: Request) -> Response:
        answer = await anyio.to_thread.run_sync(self._errors, request.path_params["job_id"])
        return Response(answer.model_dump_json(), media_type="application/json")

    async def training_errors(self, request: Request) -> Response:
        answer = await anyio.to_thread.run_sync(self._errors, request.path_params["job_id"])
        return Response(training_errors(answer).model_dump_json(), media_type="application/json")

    async def page(self, request: Request) -> Response:
        page = await anyio.to_thread.run_sync(self._page, request.path_params["job_id"])
        return HTMLResponse(page, headers={"Content-Security-Policy": _PAGE_POLICY})

    async def jobs(self, request: Request) -> Response:
        answer = await anyio.to_thread.run_sync(self._jobs)
        return Response(answer.model_dump_json(), media_type="application/json")

    def _found(self, files: JobFiles) -> Report | AnalyzeResult | None:
        """The report, else (unless running) the log analysis; None for a running job."""
        if files.report is not None:
            return self.store.read_report(files.report)
        if files.running or files.log is None:
            return None
        return self.store.analyse_log(files.log)

    def _errors(self, job_id: str) -> JobErrors:
        found = self._found(self.store.locate(job_id))
        if isinstance(found, Report):
            answer = errors_from_report(job_id, found, self.limits)
        elif isinstance(found, AnalyzeResult):
            answer = errors_from_analysis(job_id, found)
        else:
            answer = running_errors(job_id)
        return finish(answer, "errors", self.redactor, self.limits)

    def _page(self, job_id: str) -> str:
        panel = panel_for(job_id, self._found(self.store.locate(job_id)))
        return render_panel(finish_panel(panel, self.redactor, self.limits))

    def _jobs(self) -> JobList:
        ids = self.store.job_ids()
        rows = [self._summary(job_id) for job_id in ids[: self.limits.max_jobs]]
        answer = JobList(jobs=rows, more_jobs=len(ids) - len(rows))
        return finish(answer, "jobs", self.redactor, self.limits)

    def _summary(self, job_id: str) -> JobSummary:
        """A job's row; a file that cannot be used makes an ``unreadable`` row, not an error."""
        try:
            files = self.store.locate(job_id)
        except HTTPException as exc:
            return summary_of(job_id, None, Unreadable(path=job_id, reason=exc.detail))
        found: ShardReport | Unreadable | AnalyzeResult | None = None
        if files.report is not None:
            found = load_shard(files.report)
            if isinstance(found, Unreadable):
                found = Unreadable(path=files.report.name, reason=found.reason)
        elif not files.running and files.log is not None:
            try:
                found = self.store.analyse_log(files.log)
            except HTTPException as exc:
                found = Unreadable(path=files.log.name, reason=exc.detail)
        return summary_of(job_id, files.updated_at, found)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Every expected refusal as an `ErrorBody`, tagged by its status."""
    assert isinstance(exc, HTTPException)
    job_id = request.path_params.get("job_id")
    body = ErrorBody(
        error=_TAGS.get(exc.status_code, "internal"),
        detail=exc.detail,
        job_id=job_id if job_id and JOB_ID.fullmatch(job_id) else None,  # never echo a bad one
    )
    return body.response(exc.status_code, exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    """A bug: the client learns only where to look; the traceback goes to the server's log."""
    body = ErrorBody(error="internal", detail="internal error; the server's log has the traceback")
    return body.response(500)


class _SecurityHeaders:
    """Adds `_HEADERS` to every response, the 401s of `BearerAuth` included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in _HEADERS.items() if k not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
