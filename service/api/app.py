"""The task API: a thin façade over LangGraph threads and runs (langgraph.json → `http.app`).

A task is a thread (`task_id == thread_id`) whose metadata holds its tenant, goal and nesting depth.
The façade never runs the graph itself: it drives runs through the LangGraph Server API of the
server it is mounted in (`STRATEGOS_SERVER_URL`, else the socket that accepted the request — never
the client's Host header), with the official SDK and the caller's own API key, so the server's auth
(`service.api.auth`) applies to every call as well: another tenant's task is not found.

Events are the ledger's append-only log of the thread (`tools.ledger`), whose per-thread ids
increase by one in commit order, so `?after=<id>` pages and `last_event_id` resumes a stream
without gaps or duplicates. Besides what the tool gateway writes there (the approval's one
question and one answer among it), the façade appends the workflow's lifecycle (WorkflowStarted,
WorkflowPaused, WorkflowCompleted/Failed) and the team's live progress (the nodes' custom stream
events, as `AgentProgress`), so a reconnecting client replays those too.

Every error is `{"error": {"code": …, "message": …}}` with a stable code:

| status | code | when |
|---|---|---|
| 401 | `unauthorized` | no or unknown API key (`x-api-key` or `Authorization: Bearer`) |
| 403 | `task_depth_exceeded` | an agent-created task nested deeper than `max_task_depth` (3) |
| 403 | `no_quota` | the tenant's model quota is 0 (`STRATEGOS_QUOTA_*`, `tenant_limits`) |
| 403 | `forbidden` | approval looser than the operator's policy, or an agent key approving |
| 404 | `not_found` | no such task for this tenant (another tenant's task included) |
| 409 | `not_waiting_for_approval` | approve/reject while the task is not waiting for it |
| 409 | `conflict` | the task already has a run in progress |
| 409 | `dead_letter_closed` | replay of a dead letter that is not open, or resolve twice |
| 422 | `validation_error` | the request does not match the schema |
| 413 | `repository_too_large` | a repository over the operator's caps (`STRATEGOS_REPO_MAX_*`) |
| 422 | `invalid_options` | an option over the operator's cap (`STRATEGOS_*_CAP`) |
| 422 | `bad_repository` | an upload with a link, an absolute or `..` path; not an offered name |
| 429 | `rate_limited` | the tenant's requests/s bucket is empty (`Retry-After`) |
| 429 | `active_task_limit` | the tenant already has `max_active_tasks` running or waiting tasks |
| 429 | `quota_exceeded` | the tenant's model tokens or steps of this hour/day are spent |
| 429 | `overloaded` | backpressure: run backlog or model 429s over threshold (`Retry-After`) |
| 502 | `upstream_error` | the LangGraph server answered something unexpected |
| 503 | `busy` | another request held the tenant's or task's lock too long (`Retry-After`) |
| 503 | `unavailable` | PostgreSQL or Redis is unreachable right now (`Retry-After`) |
"""

# This module is the app, its error handlers and its routes. The rest of the façade lives
# beside it in `service.api`: `schemas` (wire format), `errors`, `dependencies` (auth, rate
# limit, session), `admission` (whether a new task may start), `session` (`Facade`,
# `Session`), `task_state` (a task's status), `run_driver` and `run_outcome` (starting runs,
# logging their outcomes) and `task_stream` (the WebSocket's event pump).

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
from fastapi import FastAPI, Header, Path, Query, Request, WebSocket, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from langgraph_sdk.schema import Thread
from pydantic import JsonValue, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.websockets import WebSocketDisconnect

from service.api.admission import (
    refuse_looser_than_policy,
    refuse_over_active_cap,
    refuse_over_quota,
    refuse_when_overloaded,
    task_depth,
)
from service.api.console_routes import router as console_router
from service.api.dependencies import SessionDep, rate_limit, server_url
from service.api.dlq_routes import router as dlq_router
from service.api.docs_routes import document
from service.api.docs_routes import install as install_docs
from service.api.errors import ERRORS, ApiError, error_response, upstream_error
from service.api.files_routes import router as files_router
from service.api.outage import OUTAGE_TYPES, is_outage
from service.api.outage import install as answer_outages_with_503
from service.api.run_driver import (
    GRAPH_ID,
    REPO_GRAPH_ID,
    exclusive,
    graph_of,
    run_context,
    start_run,
)
from service.api.run_outcome import reconcile
from service.api.schemas import (
    MAX_AFTER,
    ApproveRequest,
    CreateTaskRequest,
    ErrorBody,
    EventPage,
    StreamHello,
    TaskList,
    TaskOptions,
    TaskView,
    event_view,
)
from service.api.session import TASK_KIND, Facade, Session
from service.api.task_state import (
    json_dict,
    pending_interrupts,
    state_values,
    task_status,
    task_summary,
    with_roles,
    with_values,
)
from service.api.task_stream import pump_events, stream_error
from service.api.tenancy import (
    Unauthenticated,
    close_key_stores,
    get_key_store,
    keys_required,
    resolve_identity,
)
from service.api.trace_context import RUN_KEY, TraceRequests, current_traceparent, trace_id_of
from service.dlq import close_dlq_stores
from service.rate_limits import close_limit_stores, get_limit_store, limits_for
from service.repos import RepoError, from_request, repo_input
from service.settings import Settings, get_settings
from tools.ledger import open_ledger
from tools.telemetry import API_ERRORS, TASKS

DEPTH_HEADER = "X-Strategos-Depth"
WS_AUTH_TIMEOUT_S = 10.0


# ---------------------------------------------------------------- the app


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
    docs_url=None,  # served offline by `docs_routes`
    redoc_url=None,
    lifespan=lifespan,
)


def _facade_openapi() -> dict[str, Any]:
    """The façade's own routes only.

    Aegra serves its LangGraph Server API from this same app; that API is documented by the
    LangGraph server itself and is not part of the task API's contract.
    """
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        # Filter the generated paths, not the routes: an included router (the dead letters) is
        # one route entry without a path of its own.
        schema["paths"] = {k: v for k, v in schema["paths"].items() if _is_ours(k)}
        app.openapi_schema = document(schema)
    return app.openapi_schema


app.openapi = _facade_openapi  # type: ignore[method-assign]
install_docs(app, "/v1/openapi.json")
answer_outages_with_503(app)
app.add_middleware(TraceRequests)  # one span per /v1 request; its runs join its trace


# ---------------------------------------------------------------- error handlers


def _is_ours(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


@app.exception_handler(ApiError)
async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    API_ERRORS.labels(code=exc.code).inc()
    response = error_response(exc.status_code, exc.code, exc.message)
    response.headers.update(exc.headers)
    return response


@app.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    details = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
        for e in exc.errors()
    ]
    return error_response(
        422, "validation_error", "the request does not match the schema", details=details
    )


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """Our JSON errors under /v1; the server's own routes keep their usual error format."""
    if not _is_ours(request.url.path):
        return await http_exception_handler(request, exc)
    codes = {404: "not_found", 405: "method_not_allowed"}
    code = codes.get(exc.status_code, "http_error")
    response = error_response(exc.status_code, code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


# ---------------------------------------------------------------- views


async def _view(sess: Session, thread: Thread) -> TaskView:
    await reconcile(sess, thread)
    state = await sess.state(str(thread["thread_id"]))
    values = state_values(state)
    interrupts = pending_interrupts(state)
    summary = task_summary(thread)
    status_ = task_status(str(thread["status"]), values, bool(interrupts))
    last = await sess.facade.ledger.last_event_id(summary.task_id)
    nxt = state.get("next") or []
    return TaskView(
        **{**summary.model_dump(), "status": status_},
        current_step=str(nxt[0]) if nxt else None,
        pending_approval=interrupts[0]
        if interrupts and status_ == "waiting_for_approval"
        else None,
        usage=await with_roles(json_dict(values.get("usage")), summary.task_id),
        result=json_dict(values.get("report")),
        last_event_id=last,
        trace_id=trace_id_of((thread.get("metadata") or {}).get(RUN_KEY)),
    )


# ---------------------------------------------------------------- routes


TaskId = Annotated[uuid.UUID, Path(description="The task id (a thread id).")]


@app.post(
    "/v1/tasks",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskView,
    responses={
        **ERRORS,
        403: {"model": ErrorBody, "description": "`task_depth_exceeded` or `no_quota`."},
        413: {
            "model": ErrorBody,
            "description": "`repository_too_large`: the repository is over the operator's caps.",
        },
        422: {
            "model": ErrorBody,
            "description": "Invalid request (`validation_error`), or a repository that cannot be "
            "taken (`bad_repository`: a link, an absolute or '..' path, an unknown name).",
        },
        429: {
            "model": ErrorBody,
            "description": "`rate_limited`, `active_task_limit`, `quota_exceeded` or "
            "`overloaded`; see Retry-After.",
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
    depth = await task_depth(sess, options, depth, settings.max_task_depth)
    graph, run_input, started = await _task_input(body, settings)
    await refuse_when_overloaded()
    await refuse_over_quota(tenant)
    cap = limits_for(settings, tenant).max_active_tasks
    async with exclusive(f"tenant:{tenant}"):
        # Counted and created under the tenant's lock: two requests cannot both take the
        # last free place.
        await refuse_over_active_cap(sess, cap)
        refuse_looser_than_policy(options, tenant)
        task_id = await _create_thread(sess, body, tenant, depth, graph)
        await sess.facade.ledger.append_event(
            task_id,
            "WorkflowStarted",
            {
                "goal": body.goal,
                "tenant": tenant,
                "depth": depth,
                "options": _options(options),
                **started,
            },
        )
        await start_run(
            sess, task_id, input=run_input, context=run_context(options, tenant), graph=graph
        )
    TASKS.labels(event="created").inc()
    return await _view(sess, await sess.thread(task_id))


async def _task_input(
    body: CreateTaskRequest, settings: Settings
) -> tuple[str, dict[str, Any], dict[str, JsonValue]]:
    """The graph, its input and what the start event records; a repository is taken first."""
    source = body.repository
    if source is None:
        return GRAPH_ID, {"goal": body.goal}, {}
    try:
        snapshot = await asyncio.to_thread(
            from_request, source.archive_base64, source.name, settings
        )
    except RepoError as exc:
        status_code, code = (
            (413, "repository_too_large") if exc.too_big else (422, "bad_repository")
        )
        raise ApiError(status_code, code, str(exc)) from None
    summary: dict[str, JsonValue] = {
        "files": len(snapshot.files),
        "skipped": list(snapshot.skipped[:100]),
        "name": source.name,
    }
    return REPO_GRAPH_ID, repo_input(body.goal, snapshot), {"repository": summary}


async def _create_thread(
    sess: Session, body: CreateTaskRequest, tenant: str, depth: int, graph: str = GRAPH_ID
) -> str:
    """Create the task's thread, its metadata saying whose it is and where it nests; its id."""
    options = body.options
    metadata: dict[str, JsonValue] = {
        "graph": graph,
        "kind": TASK_KIND,
        "tenant": tenant,
        "depth": depth,
        "goal": body.goal[:200],
        "options": _options(options),
    }
    if options.parent_task_id is not None:
        metadata["parent_task_id"] = str(options.parent_task_id)
    if (traceparent := current_traceparent()) is not None:
        metadata[RUN_KEY] = traceparent  # the task's later runs join this request's trace
    try:
        thread = await sess.client.threads.create(metadata=metadata, headers=sess.headers)
    except httpx.HTTPStatusError as exc:
        raise upstream_error(exc, "task") from None
    return str(thread["thread_id"])


def _options(options: TaskOptions) -> dict[str, JsonValue]:
    dumped: dict[str, JsonValue] = options.model_dump(mode="json", exclude_none=True)
    return dumped


@app.get("/v1/tasks", response_model=TaskList, responses=ERRORS, summary="List tasks")
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
        raise upstream_error(exc, "tasks") from None
    complete = await asyncio.gather(*(with_values(sess, t) for t in threads))
    tasks = [task_summary(t) for t in complete]
    return TaskList(tasks=tasks, next_offset=offset + len(tasks) if len(tasks) == limit else None)


@app.get("/v1/tasks/{task_id}", response_model=TaskView, responses=ERRORS, summary="Get a task")
async def get_task(task_id: TaskId, sess: SessionDep) -> TaskView:
    """Status, current step, pending approval, usage and result of one task."""
    return await _view(sess, await sess.thread(str(task_id)))


@app.post(
    "/v1/tasks/{task_id}/approve",
    response_model=TaskView,
    responses={
        **ERRORS,
        409: {"model": ErrorBody, "description": "`not_waiting_for_approval` or `conflict`."},
    },
    summary="Approve or reject",
)
async def approve_task(task_id: TaskId, body: ApproveRequest, sess: SessionDep) -> TaskView:
    """Answer the pending approval; a rejection's comment goes back to the team."""
    tid = str(task_id)
    if not sess.identity.can_approve:
        raise ApiError(
            403, "forbidden", "this API key may submit and watch tasks but not approve them"
        )
    async with exclusive(f"task:{tid}"):
        await sess.facade.settle(tid)
        thread = await sess.thread(tid)
        state = await sess.state(tid)
        values = state_values(state)
        interrupts = pending_interrupts(state)
        if task_status(str(thread["status"]), values, bool(interrupts)) != "waiting_for_approval":
            raise ApiError(409, "not_waiting_for_approval", "the task is not waiting for approval")
        # The answer is logged once, by the gateway, when the resumed run consumes it.
        metadata = thread.get("metadata") or {}
        options = TaskOptions.model_validate(
            {"approve": "ask", "use_memory": True}
            if not isinstance(metadata.get("options"), dict)
            else metadata["options"]
        )
        await start_run(
            sess,
            tid,
            command={"resume": {"approved": body.approved, "comment": body.comment}},
            context=run_context(options, sess.identity.tenant),
            traceparent=metadata.get(RUN_KEY),
            graph=graph_of(metadata),
        )
    return await _view(sess, await sess.thread(tid))


@app.get("/v1/tasks/{task_id}/events", response_model=EventPage, responses=ERRORS, summary="Events")
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
        await stream_error(ws, "starting", "the task API is starting; retry shortly", 1013)
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
        await rate_limit(identity)
        sess = Session(facade, identity, server_url(ws.scope))
        thread = await sess.thread(str(task_id))
    except Unauthenticated as exc:
        await stream_error(ws, "unauthorized", str(exc), 4401)
        return
    except ApiError as exc:
        await stream_error(ws, exc.code, exc.message, 4000 + min(exc.status_code, 999))
        return
    except OUTAGE_TYPES as exc:
        if not is_outage(exc):
            raise
        await stream_error(ws, "unavailable", "a service the stream needs is unavailable", 1013)
        return
    del thread
    await pump_events(ws, sess, str(task_id), cursor or 0)


app.include_router(dlq_router)
app.include_router(files_router)
app.include_router(console_router)  # the web console, outside the OpenAPI document
