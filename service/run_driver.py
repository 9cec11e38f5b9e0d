"""Driving the team's runs: start one, log its progress and outcome, and recover lost drivers.

The façade never runs the graph itself. A driver streams one run from the LangGraph server in
the background (`Facade.spawn`), appends the team's progress and the run's outcome to the
ledger, and turns a failure into a dead letter. If the instance holding a driver dies, the run
goes on in the server; `reconcile`, called by every reader, logs the outcome in its place.
`exclusive` serializes what must not race across instances (the active-task cap, answers).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Literal, cast

import httpx
from langgraph_sdk.schema import Thread
from pydantic import JsonValue

from service.api_errors import ApiError, upstream_error
from service.api_models import TaskOptions
from service.api_session import Session
from service.dlq import record_dead_letter
from service.limits import LockBusy, get_limit_store
from service.task_state import pending_interrupts, state_values
from tools.ledger import EventKind

log = logging.getLogger(__name__)

GRAPH_ID = "coding_team"
PROGRESS_KIND: EventKind = "AgentProgress"
"""Kind of the team's progress events (typed `Any` until `tools.ledger.EventKind` lists it)."""
RUN_START_TIMEOUT_S = 30.0
LOCK_HOLD_S = RUN_START_TIMEOUT_S + 30.0
"""A lock outlives the longest run start it guards, and frees itself if its holder crashed."""
LOCK_WAIT_S = RUN_START_TIMEOUT_S + 5.0
DRIVER_GRACE_S = 3.0
"""A run that ended longer ago than this without a logged outcome lost its driver (a live
driver logs it as its stream ends; a later one only risks a progress event after the end)."""


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
        await _conclude(sess, task_id, run_id, outcome, input)


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


async def _conclude(
    sess: Session,
    task_id: str,
    run_id: str,
    outcome: _Outcome,
    input: dict[str, Any] | None,
) -> None:
    """Log how the run ended and, if it failed, file it as a dead letter."""
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


async def _record_outcome(sess: Session, task_id: str, run_id: str, outcome: _Outcome) -> None:
    """Append what the run ended in, once: under a lock shared with the other instances.

    A failure (`_Outcome.failure`), else a request for approval, else the team's report.
    """
    key = f"outcome:{run_id}"
    ledger = sess.facade.ledger
    try:
        async with get_limit_store().lock(key, hold_s=DRIVER_GRACE_S, wait_s=DRIVER_GRACE_S):
            if await ledger.events(task_id, 0, 1, key=key):
                return
            if (error := outcome.failure()) is not None:
                data: dict[str, Any] = {"run_id": run_id, "error": error}
                await ledger.append_event(task_id, "WorkflowFailed", data, key=key)
            elif outcome.interrupts:
                data = {"run_id": run_id, "request": outcome.interrupts[0]}
                await ledger.append_event(task_id, "ApprovalRequested", data, key=key)
            else:
                report = outcome.report or {}
                kind: Literal["WorkflowCompleted", "WorkflowFailed"] = (
                    "WorkflowFailed" if report.get("status") == "failed" else "WorkflowCompleted"
                )
                data = {"run_id": run_id, "report": report}
                await ledger.append_event(task_id, kind, data, key=key)
    except LockBusy:
        log.warning("outcome of run %s is being recorded elsewhere", run_id)


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
        raise upstream_error(exc, "task") from None
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
    outcome.interrupts = pending_interrupts(state)
    report = state_values(state).get("report")
    outcome.report = report if isinstance(report, dict) else None
    if run["status"] != "success" and not outcome.interrupts and outcome.report is None:
        outcome.error = f"the run ended with status {run['status']}"
    await _conclude(sess, task_id, run_id, outcome, None)


async def start_run(
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
        raise upstream_error(exc, "task") from None
    except (httpx.HTTPError, RuntimeError, TimeoutError) as exc:
        log.warning("could not start a run for task %s: %s", task_id, type(exc).__name__)
        raise ApiError(
            502, "upstream_error", "the LangGraph server did not start the run"
        ) from None


def run_context(options: TaskOptions, tenant: str) -> dict[str, Any]:
    """The run's `context` (`graphs.context.TeamContext`) from the task's options."""
    context: dict[str, Any] = {
        "approve": options.approve,
        "use_memory": options.use_memory,
        "tenant": tenant,
    }
    for name in ("max_steps", "max_iterations", "token_budget"):
        if (value := getattr(options, name)) is not None:
            context[name] = value
    return context
