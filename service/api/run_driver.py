"""Driving the team's runs: start one, follow it to its end, and log how it ended.

The façade never runs the graph itself. A driver streams one run from the LangGraph server in
the background (`Facade.spawn`) and, once the server says the run is over, logs its outcome
(`service.api.run_outcome`: decided from the thread's final state, never from the stream, and a
failure becomes a dead letter). The team's progress events are logged by the Aegra instance
that executes the run (`service.api.aegra_progress`); under a server that does not, the driver
appends them from the stream, keeping them in order while the ledger is unreachable. If the
instance holding a driver dies, the run goes on in the server; `reconcile`, called by every
reader, logs the outcome in its place. `exclusive` serializes what must not race across
instances (the active-task cap, answers).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import httpx
from langgraph_sdk.schema import Run

from service.api.aegra_progress import logged_at_source
from service.api.errors import ApiError, upstream_error
from service.api.outage import is_outage
from service.api.run_outcome import READ_BUDGET_S, TERMINAL, Unreachable, conclude, retrying
from service.api.schemas import TaskOptions
from service.api.session import Session
from service.api.trace_context import RUN_KEY, current_traceparent
from service.rate_limits import LockBusy, get_limit_store
from tools.ledger import EventKind

log = logging.getLogger(__name__)

GRAPH_ID = "coding_team"
REPO_GRAPH_ID = "repo_agent"
"""The repository agent (`graphs/repo_team.py`), for tasks created with a repository."""
GRAPHS = frozenset({GRAPH_ID, REPO_GRAPH_ID})


def graph_of(metadata: Mapping[str, Any] | None) -> str:
    """The graph a task's thread runs on, from its metadata (the coding team unless named)."""
    graph = (metadata or {}).get("graph")
    return graph if isinstance(graph, str) and graph in GRAPHS else GRAPH_ID


PROGRESS_KIND: EventKind = "AgentProgress"
RUN_START_TIMEOUT_S = 30.0
LOCK_HOLD_S = RUN_START_TIMEOUT_S + 30.0
"""A lock outlives the longest run start it guards, and frees itself if its holder crashed."""
LOCK_WAIT_S = RUN_START_TIMEOUT_S + 5.0
FOLLOW_POLL_S = 1.0
"""How often a run whose stream broke is asked whether it is over."""


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


async def _drive(
    sess: Session,
    task_id: str,
    ready: asyncio.Future[str],
    *,
    input: dict[str, Any] | None = None,
    command: dict[str, Any] | None = None,
    checkpoint_id: str | None = None,
    context: dict[str, Any],
    traceparent: str | None = None,
    graph: str = GRAPH_ID,
) -> None:
    """Run the graph once on the thread, then log its outcome (`service.api.run_outcome`).

    Streaming (rather than a background run) hands the driver the run's id at once and, where
    the server does not log them itself, every custom event from the run's first step; the run
    goes on in the server if the stream breaks or this process goes away
    (`on_disconnect="continue"`). Whatever happened to the stream, the outcome is read from the
    server once the run is over.
    """
    watch = _Watch(log_progress=not logged_at_source())
    try:
        run = _RunRequest(input, command, checkpoint_id, context, traceparent, graph)
        await _stream(sess, task_id, ready, watch, run)
    except Exception as exc:  # the run's fate is read from the server below
        if not ready.done():
            ready.set_exception(exc)
            return
        log.warning("run stream of task %s broke: %s", task_id, type(exc).__name__)
    finally:
        if not ready.done():
            ready.set_exception(RuntimeError("the run ended before it started"))
    if watch.run_id is not None:
        await _finish(sess, task_id, watch, input)


class _Watch:
    """What the driver learned from the stream: the run's id, its unlogged progress, an error."""

    def __init__(self, *, log_progress: bool) -> None:
        self.run_id: str | None = None
        self.log_progress = log_progress
        self.unlogged: list[dict[str, Any]] = []
        self.error: str | None = None


@dataclass(frozen=True)
class _RunRequest:
    """What a run is started with; `traceparent` makes its spans part of the task's trace."""

    input: dict[str, Any] | None
    command: dict[str, Any] | None
    checkpoint_id: str | None
    context: dict[str, Any]
    traceparent: str | None
    graph: str = GRAPH_ID

    def config(self) -> dict[str, Any] | None:
        """The run's config: its metadata names the trace parent (read where it executes)."""
        return {"metadata": {RUN_KEY: self.traceparent}} if self.traceparent else None


async def _stream(
    sess: Session, task_id: str, ready: asyncio.Future[str], watch: _Watch, run: _RunRequest
) -> None:
    """Start the run and follow its stream; sets `ready` to the run's id."""
    async for part in sess.client.runs.stream(
        task_id,
        run.graph,
        input=run.input,
        command=cast(Any, run.command),
        checkpoint_id=run.checkpoint_id,
        context=run.context,
        config=cast(Any, run.config()),
        stream_mode=["custom"],
        multitask_strategy="reject",
        on_disconnect="continue",
        stream_resumable=True,
        headers=sess.headers,
    ):
        if part.event == "metadata" and watch.run_id is None and isinstance(part.data, dict):
            watch.run_id = str(part.data.get("run_id"))
            await _gauge(get_limit_store().run_started(watch.run_id))
            if not ready.done():
                ready.set_result(watch.run_id)
        elif part.event == "custom" and watch.log_progress and isinstance(part.data, dict):
            await _progress(sess, task_id, watch, part.data)
        elif part.event == "error":  # words a failure, if the server confirms one
            watch.error = json.dumps(part.data, default=str)[:2000]


async def _progress(sess: Session, task_id: str, watch: _Watch, data: dict[str, Any]) -> None:
    """Append a progress event in order; while the ledger is unreachable, keep it for later."""
    watch.unlogged.append(data)
    try:
        await _flush_progress(sess, task_id, watch)
    except Exception as exc:
        if not is_outage(exc):
            raise
        log.warning(
            "%d progress events of task %s wait for the ledger", len(watch.unlogged), task_id
        )


async def _flush_progress(sess: Session, task_id: str, watch: _Watch) -> None:
    """Append the kept progress events, oldest first."""
    while watch.unlogged:
        first = watch.unlogged[0]
        await sess.facade.ledger.append_event(task_id, PROGRESS_KIND, first, key=watch.run_id)
        watch.unlogged.pop(0)


async def _finish(sess: Session, task_id: str, watch: _Watch, input: dict[str, Any] | None) -> None:
    """Wait until the run is over (as the server says), then log what is left and its outcome."""
    run_id = str(watch.run_id)
    try:
        run = await _ended(sess, task_id, run_id)
        if watch.unlogged:
            await retrying("progress", lambda: _flush_progress(sess, task_id, watch), READ_BUDGET_S)
        await conclude(sess, task_id, run, input, watch.error)
    except Unreachable as exc:
        log.warning("outcome of run %s left to reconcile: %s", run_id, exc)
    except Exception:  # a reader's `reconcile` logs it later; never a wrong outcome here
        log.exception("could not log the outcome of run %s; left to reconcile", run_id)
    finally:
        await _gauge(get_limit_store().run_finished(run_id))


async def _ended(sess: Session, task_id: str, run_id: str) -> Run:
    """The run's record once its status is final; polled while the run goes on.

    The stream usually ends with the run. If it broke first (a restart of the database, Redis or
    a proxy), the run goes on, may be re-queued by Aegra's lease reaper and finish elsewhere:
    its status, not the stream, says when it is over.
    """
    while True:
        run = await retrying(
            "run status",
            lambda: sess.client.runs.get(task_id, run_id, headers=sess.headers),
            READ_BUDGET_S,
        )
        if run["status"] in TERMINAL:
            return run
        await asyncio.sleep(FOLLOW_POLL_S)


async def _gauge(update: Awaitable[None]) -> None:
    """Update the backpressure gauge; never fail the run's logging because Redis is down."""
    try:
        await update
    except Exception:
        log.warning("could not update the in-flight gauge", exc_info=True)


async def start_run(
    sess: Session,
    task_id: str,
    *,
    context: dict[str, Any],
    input: dict[str, Any] | None = None,
    command: dict[str, Any] | None = None,
    checkpoint_id: str | None = None,
    traceparent: str | None = None,
    graph: str = GRAPH_ID,
) -> str:
    """Start the driver and wait until the server accepted the run; its id.

    With neither input nor command, name the checkpoint to resume from: servers differ on
    whether a bare run continues the thread (Aegra refuses it). The run's spans hang under
    `traceparent` (the task's), else under the current span (the request starting it).
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
        traceparent=traceparent or current_traceparent(),
        graph=graph,
    )
    sess.facade.spawn(task_id, drive)
    try:
        return await asyncio.wait_for(ready, RUN_START_TIMEOUT_S)
    except httpx.HTTPStatusError as exc:
        raise upstream_error(exc, "task") from None
    except (httpx.HTTPError, RuntimeError, TimeoutError) as exc:
        log.warning("could not start a run for task %s: %s", task_id, type(exc).__name__)
        raise ApiError(
            502, "upstream_error", "the LangGraph server did not start the run"
        ) from None


def run_context(options: TaskOptions, tenant: str) -> dict[str, Any]:
    """The run's `context` (`graphs.context.TeamContext`) from the task's options.

    No tenant: the server takes it from the caller's key, which the façade forwards.
    """
    del tenant
    context: dict[str, Any] = {"approve": options.approve, "use_memory": options.use_memory}
    for name in ("max_steps", "max_iterations", "token_budget"):
        if (value := getattr(options, name)) is not None:
            context[name] = value
    return context
