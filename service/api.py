"""The task API: a thin façade over LangGraph threads and runs (langgraph.json → `http.app`).

A task is a thread (`task_id == thread_id`) whose metadata holds its tenant, goal and nesting
depth. The façade never runs the graph itself: it drives runs through the LangGraph Server API of
the server it is mounted in (`STRATEGOS_SERVER_URL`, else the socket that accepted the request —
never the client's Host header), with the official SDK and the caller's own API key, so the
server's auth (`service.auth`) applies to every call as well: another tenant's task is not found.

Events are the ledger's append-only log of the thread (`tools.ledger`), whose per-thread ids
increase by one in commit order, so `?after=<id>` pages and `last_event_id` resumes a stream
without gaps or duplicates. Besides what the tool gateway writes there, the façade appends the
workflow's lifecycle (WorkflowStarted, ApprovalRequested, ApprovalGiven/Rejected,
WorkflowCompleted/Failed) and the team's live progress (the nodes' custom stream events, as
`AgentProgress`), so a reconnecting client replays those too.

Every error is `{"error": {"code": …, "message": …}}` with a stable code:

| status | code | when |
|---|---|---|
| 401 | `unauthorized` | no or unknown API key (`x-api-key` or `Authorization: Bearer`) |
| 403 | `task_depth_exceeded` | an agent-created task nested deeper than `max_task_depth` (3) |
| 404 | `not_found` | no such task for this tenant (another tenant's task included) |
| 409 | `not_waiting_for_approval` | approve/reject while the task is not waiting for it |
| 409 | `conflict` | the task already has a run in progress |
| 409 | `dead_letter_closed` | replay of a dead letter that is not open, or resolve twice |
| 422 | `validation_error` | the request does not match the schema |
| 429 | `rate_limited` | the tenant's requests/s bucket is empty (`Retry-After`) |
| 429 | `active_task_limit` | the tenant already has `max_active_tasks` running or waiting tasks |
| 429 | `overloaded` | backpressure: run backlog or model 429s over threshold (`Retry-After`) |
| 502 | `upstream_error` | the LangGraph server answered something unexpected |
| 503 | `busy` | another request held the tenant's or task's lock too long (`Retry-After`) |
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, cast

import httpx
from fastapi import Depends, FastAPI, Header, Path, Query, Request, WebSocket, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import Thread, ThreadState, ThreadStatus
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.websockets import WebSocketDisconnect, WebSocketState

from service.dlq import close_dlq_stores, record_dead_letter
from service.limits import (
    LockBusy,
    close_limit_stores,
    get_limit_store,
    limits_for,
    retry_after,
)
from service.settings import get_settings
from service.tenancy import (
    Identity,
    Unauthenticated,
    close_key_stores,
    get_key_store,
    keys_required,
    resolve_identity,
)
from tools.ledger import EventKind, Ledger, LedgerEvent, open_ledger

log = logging.getLogger(__name__)

GRAPH_ID = "coding_team"
TASK_KIND = "strategos_task"
DEPTH_HEADER = "X-Strategos-Depth"
PROGRESS_KIND: EventKind = "AgentProgress"
"""Kind of the team's progress events (typed `Any` until `tools.ledger.EventKind` lists it)."""
TERMINAL_KINDS = frozenset({"WorkflowCompleted", "WorkflowFailed"})
POLL_S = 0.2
RUN_START_TIMEOUT_S = 30.0
WS_AUTH_TIMEOUT_S = 10.0
MAX_AFTER = 2**53
ACTIVE_RETRY_AFTER_S = 30
LOCK_HOLD_S = RUN_START_TIMEOUT_S + 30.0
"""A lock outlives the longest run start it guards, and frees itself if its holder crashed."""
LOCK_WAIT_S = RUN_START_TIMEOUT_S + 5.0
DRIVER_GRACE_S = 3.0
"""A run that ended longer ago than this without a logged outcome lost its driver (a live
driver logs it as its stream ends; a later one only risks a progress event after the end)."""
RECONCILE_EVERY_S = 2.0

TaskStatus = Literal["queued", "running", "waiting_for_approval", "completed", "failed"]
EventType = Literal["lifecycle", "progress", "tool", "approval", "policy", "other"]


# ---------------------------------------------------------------- errors


class ErrorDetail(BaseModel):
    """What went wrong, with a code clients can switch on."""

    code: str
    message: str
    details: list[dict[str, JsonValue]] | None = None


class ErrorBody(BaseModel):
    """Every error response of the façade."""

    error: ErrorDetail


class ApiError(Exception):
    """An error with a stable code, rendered as `ErrorBody`."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def _error(status_code: int, code: str, message: str, **extra: Any) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, **extra))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status_code)


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No or unknown API key (`unauthorized`)."},
    404: {"model": ErrorBody, "description": "No such task for this tenant (`not_found`)."},
    422: {"model": ErrorBody, "description": "Invalid request (`validation_error`)."},
    429: {"model": ErrorBody, "description": "`rate_limited`; see Retry-After."},
    502: {"model": ErrorBody, "description": "Unexpected answer of the LangGraph server."},
    503: {"model": ErrorBody, "description": "A shared lock is held too long (`busy`)."},
}


# ---------------------------------------------------------------- models


def _clean_text(value: str) -> str:
    """Refuse text that cannot be stored: NUL (PostgreSQL) and lone surrogates (UTF-8)."""
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None
    return value


class TaskOptions(BaseModel):
    """How the team works on the task (all optional; the deployment's defaults otherwise)."""

    model_config = ConfigDict(extra="forbid")

    approve: Literal["ask", "auto", "deny"] = Field(
        default="ask", description="Deliver only after a human approves, always, or never."
    )
    max_steps: int | None = Field(default=None, ge=1, le=200)
    max_iterations: int | None = Field(default=None, ge=1, le=20)
    token_budget: int | None = Field(default=None, ge=1, le=10_000_000)
    use_memory: bool = Field(default=True, description="Use and store lessons across tasks.")
    parent_task_id: uuid.UUID | None = Field(
        default=None,
        description="The task that created this one; its depth + 1 is this task's depth.",
    )


class CreateTaskRequest(BaseModel):
    """A new task for the team."""

    model_config = ConfigDict(extra="forbid")

    goal: str = Field(min_length=1, max_length=20_000, description="What to build.")
    options: TaskOptions = Field(default_factory=TaskOptions)

    @field_validator("goal")
    @classmethod
    def _goal(cls, value: str) -> str:
        value = _clean_text(value)
        if not value.strip():
            raise ValueError("goal must not be blank")
        return value


class ApproveRequest(BaseModel):
    """A human's answer to the pending approval."""

    model_config = ConfigDict(extra="forbid")

    approved: bool
    comment: str = Field(default="", max_length=5_000)

    @field_validator("comment")
    @classmethod
    def _comment(cls, value: str) -> str:
        return _clean_text(value)


class TaskSummary(BaseModel):
    """A task in a listing."""

    task_id: str
    status: TaskStatus
    goal: str
    depth: int
    created_at: str
    updated_at: str


class TaskView(TaskSummary):
    """A task in detail."""

    current_step: str | None = Field(description="The node that runs (or waits) next.")
    pending_approval: dict[str, JsonValue] | None = Field(
        description="What the team asks a human to approve, while waiting_for_approval."
    )
    usage: dict[str, JsonValue] | None = Field(description="Model calls and tokens so far.")
    result: dict[str, JsonValue] | None = Field(description="The final report, once completed.")
    last_event_id: int = Field(description="Id of the newest event (resume point).")


class TaskList(BaseModel):
    """One page of the tenant's tasks, newest first."""

    tasks: list[TaskSummary]
    next_offset: int | None


class EventView(BaseModel):
    """One event of the task's log; `id` increases by one per event."""

    id: int
    type: EventType
    kind: str
    data: dict[str, JsonValue]
    created_at: float


class EventPage(BaseModel):
    """Events after a cursor; pass `next_after` as `after` for the next page."""

    events: list[EventView]
    next_after: int | None


_TYPES: dict[str, EventType] = {
    "WorkflowStarted": "lifecycle",
    "WorkflowCompleted": "lifecycle",
    "WorkflowFailed": "lifecycle",
    "AgentProgress": "progress",
    "ActivityScheduled": "tool",
    "ActivityCompleted": "tool",
    "ActivityFailed": "tool",
    "ActivityReplayed": "tool",
    "ActivityInDoubt": "tool",
    "TimerFired": "tool",
    "ApprovalRequested": "approval",
    "ApprovalGiven": "approval",
    "ApprovalRejected": "approval",
    "PolicyDenied": "policy",
    "ToolCallInvalid": "policy",
    "HoneypotTriggered": "policy",
}


def event_view(event: LedgerEvent) -> EventView:
    """The public shape of a ledger event."""
    return EventView(
        id=event.id,
        type=_TYPES.get(event.kind, "other"),
        kind=event.kind,
        data=event.data,
        created_at=event.created_at,
    )


# ---------------------------------------------------------------- the façade's state


class Facade:
    """What the routes share: the ledger, SDK clients per server URL, and the run drivers."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._clients: dict[str, LangGraphClient] = {}
        self._drivers: set[asyncio.Task[None]] = set()
        self._latest: dict[str, asyncio.Task[None]] = {}

    def client(self, url: str) -> LangGraphClient:
        """One SDK client per server URL; the caller's key travels per request."""
        if url not in self._clients:
            self._clients[url] = get_client(
                url=url,
                api_key=None,
                timeout=(30.0, 600.0, 30.0, 30.0),
            )
        return self._clients[url]

    def spawn(self, task_id: str, coro: Any) -> asyncio.Task[None]:
        """Keep a reference to a task's background driver until it ends."""
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._drivers.add(task)
        self._latest[task_id] = task

        def done(finished: asyncio.Task[None]) -> None:
            self._drivers.discard(finished)
            if self._latest.get(task_id) is finished:
                del self._latest[task_id]

        task.add_done_callback(done)
        return task

    def driving(self, task_id: str) -> bool:
        """Whether a driver in this process is following the task's latest run."""
        task = self._latest.get(task_id)
        return task is not None and not task.done()

    async def settle(self, task_id: str, timeout_s: float = 15.0) -> None:
        """Wait until this process's driver of the task has logged its run's outcome.

        A client may see the thread waiting (the server's state) a moment before the driver
        has appended ApprovalRequested; answering in between would log the answer first.
        """
        task = self._latest.get(task_id)
        if task is not None and not task.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), timeout_s)

    async def close(self) -> None:
        """Stop drivers (their runs go on in the server) and close clients and the ledger."""
        for task in list(self._drivers):
            task.cancel()
        await asyncio.gather(*self._drivers, return_exceptions=True)
        for client in self._clients.values():
            await client.aclose()
        await self.ledger.close()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the ledger, seed the API keys and prepare the limit store at startup."""
    settings = get_settings()
    await asyncio.to_thread(settings.data_dir.mkdir, parents=True, exist_ok=True)
    await get_key_store()
    get_limit_store()
    facade = Facade(await open_ledger(settings.ledger_url()))
    app.state.strategos = facade
    try:
        yield
    finally:
        await facade.close()
        await close_limit_stores()
        await close_dlq_stores()
        await close_key_stores()


app = FastAPI(
    title="Strategos task API",
    version="1.0.0",
    description=(__doc__ or "").split("\n\n", 1)[1],
    openapi_url="/v1/openapi.json",
    docs_url="/v1/docs",
    redoc_url=None,
    lifespan=lifespan,
)


def _facade_openapi() -> dict[str, Any]:
    """The façade's own routes only.

    Aegra serves its LangGraph Server API from this same app; that API is documented by the
    LangGraph server itself and is not part of the task API's contract.
    """
    if app.openapi_schema is None:
        ours = [r for r in app.routes if str(getattr(r, "path", "")).startswith("/v1/")]
        app.openapi_schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=ours
        )
    return app.openapi_schema


app.openapi = _facade_openapi  # type: ignore[method-assign]


def _facade(request: Request) -> Facade:
    facade = getattr(request.app.state, "strategos", None)
    if not isinstance(facade, Facade):
        raise ApiError(503, "starting", "the task API is starting; retry shortly")
    return facade


# ---------------------------------------------------------------- error handlers


def _is_ours(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


@app.exception_handler(ApiError)
async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    response = _error(exc.status_code, exc.code, exc.message)
    response.headers.update(exc.headers)
    return response


@app.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    details = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
        for e in exc.errors()
    ]
    return _error(422, "validation_error", "the request does not match the schema", details=details)


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """Our JSON errors under /v1; the server's own routes keep their usual error format."""
    if not _is_ours(request.url.path):
        return await http_exception_handler(request, exc)
    codes = {404: "not_found", 405: "method_not_allowed"}
    code = codes.get(exc.status_code, "http_error")
    response = _error(exc.status_code, code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


# ---------------------------------------------------------------- dependencies

_api_key_scheme = APIKeyHeader(name="x-api-key", auto_error=False, description="Tenant API key.")


async def authenticate(
    request: Request, _key: Annotated[str | None, Depends(_api_key_scheme)] = None
) -> Identity:
    """The calling tenant (401 otherwise), after taking a token from its rate bucket."""
    try:
        identity = await resolve_identity(request.headers)
    except Unauthenticated as exc:
        raise ApiError(401, "unauthorized", str(exc)) from None
    await _rate_limit(identity)
    return identity


async def _rate_limit(identity: Identity) -> None:
    limits = limits_for(get_settings(), identity.tenant)
    wait = await get_limit_store().take(identity.tenant, limits)
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            f"more than {limits.rate_limit_per_s:g} requests/s for this tenant",
            headers={"Retry-After": str(retry_after(wait))},
        )


Caller = Annotated[Identity, Depends(authenticate)]
TaskId = Annotated[uuid.UUID, Path(description="The task id (a thread id).")]


def server_url(scope: Mapping[str, Any]) -> str:
    """The LangGraph server to drive: the setting, else the socket this request arrived on.

    The Host header is the client's to choose, so it is never used (no request forgery).
    """
    configured = get_settings().server_url
    if configured:
        return configured.rstrip("/")
    server = scope.get("server")
    if not server or server[1] is None:
        raise ApiError(503, "server_unknown", "set STRATEGOS_SERVER_URL for this deployment")
    host, port = str(server[0]), int(server[1])
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _headers(identity: Identity) -> dict[str, str]:
    return {"x-api-key": identity.api_key} if identity.api_key else {}


def _upstream(exc: httpx.HTTPStatusError, what: str) -> ApiError:
    code = exc.response.status_code
    if code in (403, 404):
        return ApiError(404, "not_found", f"{what} not found")
    if code == 409:
        return ApiError(409, "conflict", "the task already has a run in progress")
    if code == 401:
        return ApiError(401, "unauthorized", "the server refused the API key")
    if code == 422:
        return ApiError(422, "validation_error", "the server refused the request")
    log.warning("LangGraph server answered %s for %s", code, what)
    return ApiError(502, "upstream_error", f"the LangGraph server answered {code}")


class Session:
    """One request's view of the server: the caller's identity and an SDK client."""

    def __init__(self, facade: Facade, identity: Identity, url: str) -> None:
        self.facade = facade
        self.identity = identity
        self.client = facade.client(url)
        self.headers = _headers(identity)

    async def thread(self, task_id: str) -> Thread:
        """The tenant's task thread, or 404 (also for threads that are not façade tasks)."""
        try:
            thread = await self.client.threads.get(task_id, headers=self.headers)
        except httpx.HTTPStatusError as exc:
            raise _upstream(exc, "task") from None
        metadata = thread.get("metadata") or {}
        if metadata.get("kind") != TASK_KIND or metadata.get("tenant") != self.identity.tenant:
            raise ApiError(404, "not_found", "task not found")
        return thread

    async def state(self, task_id: str) -> ThreadState:
        """The thread's current state."""
        try:
            return await self.client.threads.get_state(task_id, headers=self.headers)
        except httpx.HTTPStatusError as exc:
            raise _upstream(exc, "task") from None

    async def active_tasks(self, cap: int) -> int:
        """Tasks of this tenant running, queued or waiting for approval, counted up to `cap`.

        A bounded search rather than `threads.count`, which not every server implements
        (Aegra 0.11 has no `/threads/count`).
        """
        metadata = {"kind": TASK_KIND, "tenant": self.identity.tenant}
        statuses: Sequence[ThreadStatus] = ("busy", "interrupted")
        active = 0
        try:
            for status_ in statuses:
                found = await self.client.threads.search(
                    metadata=metadata, status=status_, limit=cap, headers=self.headers
                )
                active += len(found)
        except httpx.HTTPStatusError as exc:
            raise _upstream(exc, "tasks") from None
        return min(active, cap)


@asynccontextmanager
async def exclusive(name: str) -> AsyncIterator[None]:
    """Hold a lock shared by every instance (per tenant for the cap, per task for answers)."""
    try:
        async with get_limit_store().lock(name, hold_s=LOCK_HOLD_S, wait_s=LOCK_WAIT_S):
            yield
    except LockBusy:
        raise ApiError(
            503,
            "busy",
            "another request on this tenant or task is still being handled; retry shortly",
            headers={"Retry-After": "5"},
        ) from None


async def session(request: Request, identity: Caller) -> Session:
    """Dependency: the caller's session against the server this app is mounted in."""
    return Session(_facade(request), identity, server_url(request.scope))


SessionDep = Annotated[Session, Depends(session)]


# ---------------------------------------------------------------- status


def _interrupts(state: ThreadState) -> list[dict[str, JsonValue]]:
    found: list[dict[str, JsonValue]] = []
    for task in state.get("tasks") or []:
        for item in task.get("interrupts") or []:
            value = item.get("value") if isinstance(item, dict) else None
            found.append(value if isinstance(value, dict) else {"value": value})
    return found


def _values(state: ThreadState | Thread) -> dict[str, Any]:
    values = state.get("values")
    return values if isinstance(values, dict) else {}


def task_status(thread_status: str, values: Mapping[str, Any], waiting: bool) -> TaskStatus:
    """The task's status from the thread's status and state (the server is the truth)."""
    if thread_status == "busy":
        return "running"
    if waiting or thread_status == "interrupted":
        return "waiting_for_approval"
    if thread_status == "error":
        return "failed"
    report = values.get("report")
    if isinstance(report, dict):
        return "failed" if report.get("status") == "failed" else "completed"
    return "queued"


async def _with_values(sess: Session, thread: Thread) -> Thread:
    """The thread with its state's values: Aegra's thread records leave them out.

    A busy thread is running whatever its values say, so it costs no extra request.
    """
    if "values" in thread or thread.get("status") == "busy":
        return thread
    state = await sess.state(str(thread["thread_id"]))
    return cast(Thread, {**thread, "values": _values(state)})


def _summary(thread: Thread) -> TaskSummary:
    metadata = thread.get("metadata") or {}
    values = _values(thread)
    interrupts = thread.get("interrupts") or {}
    return TaskSummary(
        task_id=str(thread["thread_id"]),
        status=task_status(str(thread["status"]), values, bool(interrupts)),
        goal=str(values.get("goal") or metadata.get("goal") or ""),
        depth=int(metadata.get("depth") or 0),
        created_at=str(thread.get("created_at")),
        updated_at=str(thread.get("updated_at")),
    )


def _json_dict(value: Any) -> dict[str, JsonValue] | None:
    if not isinstance(value, dict):
        return None
    loaded: dict[str, JsonValue] = json.loads(json.dumps(value, default=str))
    return loaded


async def _view(sess: Session, thread: Thread) -> TaskView:
    await reconcile(sess, thread)
    state = await sess.state(str(thread["thread_id"]))
    values = _values(state)
    interrupts = _interrupts(state)
    summary = _summary(thread)
    status_ = task_status(str(thread["status"]), values, bool(interrupts))
    last = await _last_event_id(sess.facade.ledger, summary.task_id)
    nxt = state.get("next") or []
    return TaskView(
        **{**summary.model_dump(), "status": status_},
        current_step=str(nxt[0]) if nxt else None,
        pending_approval=interrupts[0]
        if interrupts and status_ == "waiting_for_approval"
        else None,
        usage=_json_dict(values.get("usage")),
        result=_json_dict(values.get("report")),
        last_event_id=last,
    )


async def _last_event_id(ledger: Ledger, thread_id: str) -> int:
    last = 0
    while batch := await ledger.events(thread_id, last, 1000):
        last = batch[-1].id
    return last


# ---------------------------------------------------------------- driving runs


async def _drive(
    sess: Session,
    task_id: str,
    ready: asyncio.Future[str],
    *,
    input: dict[str, Any] | None = None,
    command: dict[str, Any] | None = None,
    checkpoint_id: str | None = None,
    context: dict[str, Any],
) -> None:
    """Run the graph once on the thread, logging its progress and outcome to the ledger.

    Streaming (rather than a background run) hands the driver every custom event from the
    run's first step, and the outcome (interrupt, report or error) of this very run, so a later
    run cannot be mistaken for it; the run goes on in the server if this process goes away
    (`on_disconnect="continue"`).
    """
    ledger = sess.facade.ledger
    limits = get_limit_store()
    run_id: str | None = None
    outcome = _Outcome()
    try:
        async for part in sess.client.runs.stream(
            task_id,
            GRAPH_ID,
            input=input,
            command=cast(Any, command),
            checkpoint_id=checkpoint_id,
            context=context,
            stream_mode=["custom", "updates"],
            multitask_strategy="reject",
            on_disconnect="continue",
            headers=sess.headers,
        ):
            if part.event == "metadata" and run_id is None and isinstance(part.data, dict):
                run_id = str(part.data.get("run_id"))
                await limits.run_started(run_id)
                if not ready.done():
                    ready.set_result(run_id)
            elif part.event == "custom" and isinstance(part.data, dict):
                await ledger.append_event(task_id, PROGRESS_KIND, part.data, key=run_id)
            elif part.event == "updates" and isinstance(part.data, dict):
                outcome.update(part.data)
            elif part.event == "error":
                outcome.error = json.dumps(part.data, default=str)[:2000]
    except Exception as exc:  # the outcome is recorded below; the caller sees `ready` fail
        if not ready.done():
            ready.set_exception(exc)
            return
        outcome.error = f"{type(exc).__name__}: {exc}"[:2000]
        log.warning("run stream of task %s ended with %s", task_id, type(exc).__name__)
    finally:
        if run_id is not None:
            await limits.run_finished(run_id)
        if not ready.done():
            ready.set_exception(RuntimeError("the run ended before it started"))
    if run_id is not None:
        await _record_outcome(sess, task_id, run_id, outcome)
        if (error := outcome.failure()) is not None:
            await record_dead_letter(
                sess.client,
                sess.headers,
                tenant=sess.identity.tenant,
                task_id=task_id,
                run_id=run_id,
                error=error,
                input=input,
            )


class _Outcome:
    """What one run ended in, gathered from its `updates` stream."""

    def __init__(self) -> None:
        self.interrupts: list[dict[str, JsonValue]] = []
        self.report: dict[str, Any] | None = None
        self.error: str | None = None

    def failure(self) -> str | None:
        """Why the run failed, if it did (an error, or an end without report or interrupt).

        A report whose status is `failed` is not a failure of the run: the team finished and
        gave up, and replaying the same checkpoint would give the same answer.
        """
        if self.error is not None:
            return self.error
        if not self.interrupts and self.report is None:
            return "the run ended without a report"
        return None

    def update(self, data: Mapping[str, Any]) -> None:
        """Take note of interrupts and of a node's `report`."""
        for node, update in data.items():
            if node == "__interrupt__" and isinstance(update, list):
                for item in update:
                    value = item.get("value") if isinstance(item, dict) else item
                    self.interrupts.append(value if isinstance(value, dict) else {"value": value})
            elif isinstance(update, dict) and isinstance(update.get("report"), dict):
                self.report = update["report"]


async def _record_outcome(sess: Session, task_id: str, run_id: str, outcome: _Outcome) -> None:
    """Append what the run ended in, once: under a lock shared with the other instances."""
    key = f"outcome:{run_id}"
    try:
        async with get_limit_store().lock(key, hold_s=DRIVER_GRACE_S, wait_s=DRIVER_GRACE_S):
            if await sess.facade.ledger.events(task_id, 0, 1, key=key):
                return
            await _append_outcome(sess, task_id, run_id, outcome)
    except LockBusy:
        log.warning("outcome of run %s is being recorded elsewhere", run_id)


async def _append_outcome(sess: Session, task_id: str, run_id: str, outcome: _Outcome) -> None:
    """Append a request for approval, a completion or a failure."""
    ledger = sess.facade.ledger
    key = f"outcome:{run_id}"
    if outcome.error is not None:
        await ledger.append_event(
            task_id, "WorkflowFailed", {"run_id": run_id, "error": outcome.error}, key=key
        )
    elif outcome.interrupts:
        request = outcome.interrupts[0]
        await ledger.append_event(
            task_id, "ApprovalRequested", {"run_id": run_id, "request": request}, key=key
        )
    elif outcome.report is not None:
        report = outcome.report
        kind: Literal["WorkflowCompleted", "WorkflowFailed"] = (
            "WorkflowFailed" if report.get("status") == "failed" else "WorkflowCompleted"
        )
        await ledger.append_event(task_id, kind, {"run_id": run_id, "report": report}, key=key)
    else:
        await ledger.append_event(
            task_id,
            "WorkflowFailed",
            {"run_id": run_id, "error": "the run ended without a report"},
            key=key,
        )


async def reconcile(sess: Session, thread: Thread) -> None:
    """Log how the thread's last run ended when the driver that followed it is gone.

    A run's driver lives in the instance that accepted the run. If that instance died, another
    one finished the run, but nobody logged its outcome, and a stream waiting for the end would
    wait forever. Readers (GET, events, the stream) call this: a run that ended more than
    `DRIVER_GRACE_S` ago without an outcome gets one, derived from the thread's state, and a
    failed one a dead letter.
    """
    task_id = str(thread["thread_id"])
    if thread.get("status") == "busy" or sess.facade.driving(task_id):
        return
    try:
        runs = await sess.client.runs.list(task_id, limit=1, headers=sess.headers)
    except httpx.HTTPStatusError as exc:
        raise _upstream(exc, "task") from None
    if not runs or runs[0]["status"] in ("pending", "running"):
        return
    run = runs[0]
    run_id = str(run["run_id"])
    if await sess.facade.ledger.events(task_id, 0, 1, key=f"outcome:{run_id}"):
        return
    ended = datetime.fromisoformat(str(run["updated_at"]))
    if (datetime.now(UTC) - ended).total_seconds() < DRIVER_GRACE_S:
        return  # a live driver may still be logging it
    state = await sess.state(task_id)
    outcome = _Outcome()
    outcome.interrupts = _interrupts(state)
    report = _values(state).get("report")
    outcome.report = report if isinstance(report, dict) else None
    if run["status"] != "success" and not outcome.interrupts and outcome.report is None:
        outcome.error = f"the run ended with status {run['status']}"
    await _record_outcome(sess, task_id, run_id, outcome)
    if (error := outcome.failure()) is not None:
        await record_dead_letter(
            sess.client,
            sess.headers,
            tenant=sess.identity.tenant,
            task_id=task_id,
            run_id=run_id,
            error=error,
            input=None,
        )


async def _start_run(
    sess: Session,
    task_id: str,
    *,
    context: dict[str, Any],
    input: dict[str, Any] | None = None,
    command: dict[str, Any] | None = None,
    checkpoint_id: str | None = None,
) -> str:
    """Start the driver and wait until the server accepted the run; its id.

    With neither input nor command, name the checkpoint to resume from: servers differ on
    whether a bare run continues the thread (Aegra refuses it).
    """
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    drive = _drive(
        sess,
        task_id,
        ready,
        input=input,
        command=command,
        checkpoint_id=checkpoint_id,
        context=context,
    )
    sess.facade.spawn(task_id, drive)
    try:
        return await asyncio.wait_for(ready, RUN_START_TIMEOUT_S)
    except httpx.HTTPStatusError as exc:
        raise _upstream(exc, "task") from None
    except (httpx.HTTPError, RuntimeError, TimeoutError) as exc:
        log.warning("could not start a run for task %s: %s", task_id, type(exc).__name__)
        raise ApiError(
            502, "upstream_error", "the LangGraph server did not start the run"
        ) from None


def _context(options: TaskOptions, tenant: str) -> dict[str, Any]:
    context: dict[str, Any] = {
        "approve": options.approve,
        "use_memory": options.use_memory,
        "tenant": tenant,
    }
    for name in ("max_steps", "max_iterations", "token_budget"):
        if (value := getattr(options, name)) is not None:
            context[name] = value
    return context


# ---------------------------------------------------------------- routes


@app.post(
    "/v1/tasks",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskView,
    responses={
        **_ERRORS,
        403: {"model": ErrorBody, "description": "`task_depth_exceeded`."},
        429: {
            "model": ErrorBody,
            "description": "`rate_limited`, `active_task_limit` or `overloaded`; see Retry-After.",
        },
    },
    summary="Start a task",
)
async def create_task(
    body: CreateTaskRequest,
    sess: SessionDep,
    depth: Annotated[
        int,
        Header(
            alias=DEPTH_HEADER,
            ge=0,
            le=1000,
            description="Nesting depth of an agent-created task (0 for a human's).",
        ),
    ] = 0,
) -> TaskView:
    """Create the task's thread and start the team on it; poll GET or stream its events."""
    settings = get_settings()
    tenant = sess.identity.tenant
    options = body.options
    if options.parent_task_id is not None:
        try:
            parent = await sess.thread(str(options.parent_task_id))
        except ApiError as exc:
            if exc.status_code == 404:
                raise ApiError(404, "not_found", "parent task not found") from None
            raise
        depth = max(depth, int((parent.get("metadata") or {}).get("depth") or 0) + 1)
    if depth > settings.max_task_depth:
        raise ApiError(
            403,
            "task_depth_exceeded",
            f"task depth {depth} exceeds the limit of {settings.max_task_depth}",
        )
    pressure = await get_limit_store().backpressure()
    if pressure is not None:
        raise ApiError(
            429,
            "overloaded",
            f"not accepting new tasks right now: {pressure.reason}",
            headers={"Retry-After": str(pressure.retry_after_s)},
        )
    cap = limits_for(settings, tenant).max_active_tasks
    async with exclusive(f"tenant:{tenant}"):
        active = await sess.active_tasks(cap)
        if active >= cap:
            raise ApiError(
                429,
                "active_task_limit",
                f"{active} tasks are running or waiting; the limit is {cap}",
                headers={"Retry-After": str(ACTIVE_RETRY_AFTER_S)},
            )
        metadata: dict[str, Any] = {
            "kind": TASK_KIND,
            "tenant": tenant,
            "depth": depth,
            "goal": body.goal[:200],
            "options": _options(options),
        }
        if options.parent_task_id is not None:
            metadata["parent_task_id"] = str(options.parent_task_id)
        try:
            thread = await sess.client.threads.create(metadata=metadata, headers=sess.headers)
        except httpx.HTTPStatusError as exc:
            raise _upstream(exc, "task") from None
        task_id = str(thread["thread_id"])
        await sess.facade.ledger.append_event(
            task_id,
            "WorkflowStarted",
            {"goal": body.goal, "tenant": tenant, "depth": depth, "options": _options(options)},
        )
        await _start_run(
            sess, task_id, input={"goal": body.goal}, context=_context(options, tenant)
        )
    return await _view(sess, await sess.thread(task_id))


def _options(options: TaskOptions) -> dict[str, JsonValue]:
    dumped: dict[str, JsonValue] = options.model_dump(mode="json", exclude_none=True)
    return dumped


@app.get("/v1/tasks", response_model=TaskList, responses=_ERRORS, summary="List tasks")
async def list_tasks(
    sess: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> TaskList:
    """The tenant's tasks, newest first."""
    try:
        threads = await sess.client.threads.search(
            metadata={"kind": TASK_KIND, "tenant": sess.identity.tenant},
            limit=limit,
            offset=offset,
            sort_by="created_at",
            sort_order="desc",
            headers=sess.headers,
        )
    except httpx.HTTPStatusError as exc:
        raise _upstream(exc, "tasks") from None
    complete = await asyncio.gather(*(_with_values(sess, t) for t in threads))
    tasks = [_summary(t) for t in complete]
    return TaskList(tasks=tasks, next_offset=offset + len(tasks) if len(tasks) == limit else None)


@app.get("/v1/tasks/{task_id}", response_model=TaskView, responses=_ERRORS, summary="Get a task")
async def get_task(task_id: TaskId, sess: SessionDep) -> TaskView:
    """Status, current step, pending approval, usage and result of one task."""
    return await _view(sess, await sess.thread(str(task_id)))


@app.post(
    "/v1/tasks/{task_id}/approve",
    response_model=TaskView,
    responses={
        **_ERRORS,
        409: {"model": ErrorBody, "description": "`not_waiting_for_approval` or `conflict`."},
    },
    summary="Approve or reject",
)
async def approve_task(task_id: TaskId, body: ApproveRequest, sess: SessionDep) -> TaskView:
    """Answer the pending approval; a rejection's comment goes back to the team."""
    tid = str(task_id)
    async with exclusive(f"task:{tid}"):
        await sess.facade.settle(tid)
        thread = await sess.thread(tid)
        state = await sess.state(tid)
        values = _values(state)
        interrupts = _interrupts(state)
        if task_status(str(thread["status"]), values, bool(interrupts)) != "waiting_for_approval":
            raise ApiError(409, "not_waiting_for_approval", "the task is not waiting for approval")
        kind: Literal["ApprovalGiven", "ApprovalRejected"] = (
            "ApprovalGiven" if body.approved else "ApprovalRejected"
        )
        await sess.facade.ledger.append_event(
            tid, kind, {"comment": body.comment, "by": sess.identity.tenant}
        )
        metadata = thread.get("metadata") or {}
        options = TaskOptions.model_validate(
            {"approve": "ask", "use_memory": True}
            if not isinstance(metadata.get("options"), dict)
            else metadata["options"]
        )
        await _start_run(
            sess,
            tid,
            command={"resume": {"approved": body.approved, "comment": body.comment}},
            context=_context(options, sess.identity.tenant),
        )
    return await _view(sess, await sess.thread(tid))


@app.get(
    "/v1/tasks/{task_id}/events", response_model=EventPage, responses=_ERRORS, summary="Events"
)
async def task_events(
    task_id: TaskId,
    sess: SessionDep,
    after: Annotated[int, Query(ge=0, le=MAX_AFTER, description="Events after this id.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventPage:
    """The task's event log, oldest first, a page at a time."""
    await reconcile(sess, await sess.thread(str(task_id)))
    events = await sess.facade.ledger.events(str(task_id), after, limit)
    return EventPage(
        events=[event_view(e) for e in events],
        next_after=events[-1].id if len(events) == limit else None,
    )


# ---------------------------------------------------------------- WebSocket


class StreamHello(BaseModel):
    """Optional first client message: a key (browsers cannot set headers) and a resume point."""

    model_config = ConfigDict(extra="ignore")

    api_key: str | None = Field(default=None, max_length=512)
    last_event_id: int | None = Field(default=None, ge=0, le=MAX_AFTER)


class StreamMessage(BaseModel):
    """A server message on the stream: an event, the end of the task, or an error."""

    type: Literal["event", "end", "error"]
    event: EventView | None = None
    status: TaskStatus | None = None
    error: ErrorDetail | None = None


async def _ws_error(ws: WebSocket, code: str, message: str, close_code: int) -> None:
    msg = StreamMessage(type="error", error=ErrorDetail(code=code, message=message))
    with contextlib.suppress(Exception):
        await ws.send_json(msg.model_dump(mode="json", exclude_none=True))
        await ws.close(code=close_code)


@app.websocket("/v1/tasks/{task_id}/stream")
async def stream_task(
    ws: WebSocket,
    task_id: uuid.UUID,
    last_event_id: Annotated[int | None, Query(ge=0, le=MAX_AFTER)] = None,
) -> None:
    """Live events of the task; `last_event_id` (query, or the first message) resumes after it.

    Messages are `StreamMessage` JSON. Authentication is the `x-api-key` header, or — when it
    is missing and keys are required — an `api_key` in the first message.
    """
    await ws.accept()
    facade = getattr(ws.app.state, "strategos", None)
    if not isinstance(facade, Facade):
        await _ws_error(ws, "starting", "the task API is starting; retry shortly", 1013)
        return
    headers: dict[str, str] = dict(ws.headers)
    cursor = last_event_id
    if "x-api-key" not in headers and "authorization" not in headers and await keys_required():
        try:
            hello = StreamHello.model_validate_json(
                await asyncio.wait_for(ws.receive_text(), WS_AUTH_TIMEOUT_S)
            )
        except (TimeoutError, ValidationError, WebSocketDisconnect, KeyError):
            hello = StreamHello()
        if hello.api_key:
            headers["x-api-key"] = hello.api_key
        if hello.last_event_id is not None:
            cursor = hello.last_event_id
    try:
        identity = await resolve_identity(headers)
        await _rate_limit(identity)
        sess = Session(facade, identity, server_url(ws.scope))
        thread = await sess.thread(str(task_id))
    except Unauthenticated as exc:
        await _ws_error(ws, "unauthorized", str(exc), 4401)
        return
    except ApiError as exc:
        await _ws_error(ws, exc.code, exc.message, 4000 + min(exc.status_code, 999))
        return
    del thread
    await _pump(ws, sess, str(task_id), cursor or 0)


async def _pump(ws: WebSocket, sess: Session, task_id: str, cursor: int) -> None:
    """Send the ledger's events after `cursor` as they are appended, until the task ends."""
    closed = asyncio.Event()

    async def watch_close() -> None:
        with contextlib.suppress(Exception):
            while True:
                message = await ws.receive()
                if message.get("type") == "websocket.disconnect":
                    break
        closed.set()

    watcher = asyncio.create_task(watch_close())
    last_kind = ""
    if cursor > 0:
        previous = await sess.facade.ledger.events(task_id, cursor - 1, 1)
        last_kind = previous[0].kind if previous else ""
    last_check = time.monotonic()
    try:
        while not closed.is_set():
            events = await sess.facade.ledger.events(task_id, cursor, 200)
            for event in events:
                msg = StreamMessage(type="event", event=event_view(event))
                await ws.send_json(msg.model_dump(mode="json", exclude_none=True))
                cursor, last_kind = event.id, event.kind
            if last_kind in TERMINAL_KINDS and len(events) < 200:
                thread = await _with_values(sess, await sess.thread(task_id))
                status_ = task_status(str(thread["status"]), _values(thread), False)
                if status_ in ("completed", "failed"):
                    end = StreamMessage(type="end", status=status_)
                    await ws.send_json(end.model_dump(mode="json", exclude_none=True))
                    await ws.close()
                    return
            if not events:
                if time.monotonic() - last_check > RECONCILE_EVERY_S:
                    last_check = time.monotonic()
                    # The task may have been deleted, or its run's driver died with its
                    # instance: then this logs the outcome, and the stream can end.
                    await reconcile(sess, await sess.thread(task_id))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(closed.wait(), POLL_S)
    except (WebSocketDisconnect, RuntimeError):
        return
    except ApiError as exc:
        await _ws_error(ws, exc.code, exc.message, 4000 + min(exc.status_code, 999))
    finally:
        watcher.cancel()
        if ws.application_state == WebSocketState.CONNECTED and closed.is_set():
            with contextlib.suppress(Exception):
                await ws.close()


from service.dlq_routes import router as _dlq_router  # noqa: E402  (it imports this module)

app.include_router(_dlq_router)
