"""How a run ended, decided from the server's record of it, and logged exactly once.

The run driver (`service.api.run_driver`) and the readers' `reconcile` log a run's outcome here.
Both decide it the same way: from the run's final status and the thread's final state (its
pending interrupts and the team's `report`), read from the LangGraph server once the run is
over, never from what the watcher saw or failed to see. A stream cut by a database or Redis
restart, a broken connection or an error event of the transport says nothing about the run:
the run may have gone on, been re-queued by the lease reaper and finished elsewhere. So:

- a run with a report is `WorkflowCompleted` (or `WorkflowFailed` if the team gave up), one
  waiting for an answer is `WorkflowPaused` (the question itself is the gateway's one
  `ApprovalRequested`, and the answer its one `ApprovalGiven`/`ApprovalRejected`), and only a run
  that ended without either is a failure (`WorkflowFailed` and a dead letter);
- reads are retried with backoff while the server or the database is unreachable; if they stay
  unreachable past the budget, nothing is written and `reconcile` logs the outcome later;
- the dead letter (one per run) is written before the event, and the event is written once per
  run under a lock of the database the ledger lives in, so a live driver and a reader's
  `reconcile` on another instance cannot both log it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

import httpx
from langgraph_sdk.schema import Run, Thread, ThreadState
from pydantic import JsonValue

from service.api.errors import ApiError, upstream_error
from service.api.outage import is_outage
from service.api.session import Session
from service.api.task_state import pending_interrupts, state_values
from service.dlq import get_dlq_store
from service.sqlstore import LockBusy
from tools.telemetry import TASKS

__all__ = ["Outcome", "Unreachable", "conclude", "final_outcome", "reconcile", "retrying"]

log = logging.getLogger(__name__)

TERMINAL = frozenset({"success", "error", "interrupted", "timeout"})
READ_BUDGET_S = 120.0
"""How long a read keeps being retried before the outcome is left to `reconcile`."""
LOCK_WAIT_S = 10.0
DRIVER_GRACE_S = 3.0
"""A run that ended longer ago than this without a logged outcome lost its driver (a live
driver logs it within moments of the end, unless a dependency is down)."""


class Unreachable(Exception):
    """The server or the database stayed unreachable for the whole retry budget."""


def _transient(exc: BaseException) -> bool:
    """Worth retrying: transport errors, the server's 5xx and 429, outages, a busy lock."""
    if isinstance(exc, httpx.TransportError | LockBusy) or is_outage(exc):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500 or exc.response.status_code == 429
    return isinstance(exc, ApiError) and exc.status_code in (429, 502, 503, 504)


async def retrying[T](what: str, call: Callable[[], Awaitable[T]], budget_s: float) -> T:
    """`call()` until it succeeds; transient failures are retried with backoff for `budget_s`."""
    deadline = time.monotonic() + budget_s
    delay = 0.2
    while True:
        try:
            return await call()
        except Exception as exc:
            if not _transient(exc):
                raise
            if time.monotonic() + delay > deadline:
                raise Unreachable(f"{what}: {type(exc).__name__}") from exc
            log.info("%s failed (%s); retrying in %.1fs", what, type(exc).__name__, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


@dataclass
class Outcome:
    """What one run ended in, read from the server after it ended."""

    interrupts: list[dict[str, JsonValue]] = field(default_factory=list)
    report: dict[str, Any] | None = None
    error: str | None = None
    checkpoint_id: str | None = None

    def failure(self) -> str | None:
        """Why the run failed, if it did (it ended without a report or an interrupt).

        A report whose status is `failed` is not a failure of the run: the team finished and
        gave up, and replaying the same checkpoint would give the same answer.
        """
        if self.interrupts or self.report is not None:
            return None
        return self.error or "the run ended without a report"

    def event(
        self, run_id: str
    ) -> tuple[Literal["WorkflowFailed", "WorkflowPaused", "WorkflowCompleted"], dict[str, Any]]:
        """The ledger event that logs this outcome: its kind and data."""
        if (error := self.failure()) is not None:
            return "WorkflowFailed", {"run_id": run_id, "error": error}
        if self.interrupts:
            return "WorkflowPaused", {"run_id": run_id, "request": self.interrupts[0]}
        report = self.report or {}
        kind: Literal["WorkflowCompleted", "WorkflowFailed"] = (
            "WorkflowFailed" if report.get("status") == "failed" else "WorkflowCompleted"
        )
        return kind, {"run_id": run_id, "report": report}


def outcome_of(run: Run, state: ThreadState, reason: str | None = None) -> Outcome:
    """The outcome of `run`, which has ended, given the thread's state after it.

    `reason` is the error the watcher was told, if any: it only words a failure the run's
    status and the state establish (servers that keep no `error_message` on the run).
    """
    report = state_values(state).get("report")
    checkpoint = state.get("checkpoint") or {}
    checkpoint_id = checkpoint.get("checkpoint_id") if isinstance(checkpoint, dict) else None
    outcome = Outcome(
        interrupts=pending_interrupts(state),
        report=report if isinstance(report, dict) else None,
        checkpoint_id=str(checkpoint_id) if checkpoint_id else None,
    )
    if run["status"] != "success":
        recorded = cast(dict[str, Any], run).get("error_message")  # Aegra's field
        outcome.error = str(recorded or reason or f"the run ended with status {run['status']}")
        outcome.error = outcome.error[:2000]
    return outcome


async def final_outcome(
    sess: Session, task_id: str, run: Run, reason: str | None = None
) -> Outcome:
    """Read the thread's state after `run` ended (retried while unreachable)."""
    state = await retrying("thread state", lambda: sess.state(task_id), READ_BUDGET_S)
    return outcome_of(run, state, reason)


OUTCOME_EVENTS = {
    "WorkflowCompleted": "completed",
    "WorkflowFailed": "failed",
    "WorkflowPaused": "waiting_for_approval",
}
"""The task metric's name for each outcome event the façade logs once per run."""


async def _record(
    sess: Session, task_id: str, run_id: str, outcome: Outcome, input: dict[str, Any] | None
) -> bool:
    """Write the dead letter (if failed) and the outcome event, once; False if already logged."""
    store = await get_dlq_store()
    if (error := outcome.failure()) is not None:
        await store.record(
            tenant=sess.identity.tenant,
            task_id=task_id,
            run_id=run_id,
            error=error,
            input=input,
            checkpoint_id=outcome.checkpoint_id,
        )
    key = f"outcome:{run_id}"
    ledger = sess.facade.ledger
    async with store.exclusive(key, LOCK_WAIT_S):
        if await ledger.events(task_id, 0, 1, key=key):
            return False
        kind, data = outcome.event(run_id)
        await ledger.append_event(task_id, kind, data, key=key)
    TASKS.labels(event=OUTCOME_EVENTS.get(kind, kind)).inc()
    return True


async def conclude(
    sess: Session,
    task_id: str,
    run: Run,
    input: dict[str, Any] | None,
    reason: str | None = None,
) -> bool:
    """Log how `run` (ended) went, retrying while unreachable; False if left to `reconcile`."""
    run_id = str(run["run_id"])
    try:
        outcome = await final_outcome(sess, task_id, run, reason)
        await retrying(
            "outcome", lambda: _record(sess, task_id, run_id, outcome, input), READ_BUDGET_S
        )
    except Unreachable as exc:
        log.warning("outcome of run %s left to reconcile: %s", run_id, exc)
        return False
    return True


async def reconcile(sess: Session, thread: Thread) -> None:
    """Log how the thread's last run ended when the driver that followed it is gone.

    A run's driver lives in the instance that accepted the run. If that instance died, or the
    driver gave up while a dependency was down, nobody logged the outcome, and a stream waiting
    for the end would wait forever. Readers (GET, events, the stream) call this: a run that
    ended more than `DRIVER_GRACE_S` ago without an outcome gets one, as the driver would have
    logged it.
    """
    task_id = str(thread["thread_id"])
    if thread.get("status") == "busy" or sess.facade.driving(task_id):
        return
    try:
        runs = await sess.client.runs.list(task_id, limit=1, headers=sess.headers)
    except httpx.HTTPStatusError as exc:
        raise upstream_error(exc, "task") from None
    if not runs or runs[0]["status"] not in TERMINAL:
        return
    run = runs[0]
    if await sess.facade.ledger.events(task_id, 0, 1, key=f"outcome:{run['run_id']}"):
        return
    ended = datetime.fromisoformat(str(run["updated_at"]))
    if (datetime.now(UTC) - ended).total_seconds() < DRIVER_GRACE_S:
        return  # a live driver may still be logging it
    state = await sess.state(task_id)
    try:
        await _record(sess, task_id, str(run["run_id"]), outcome_of(run, state), None)
    except LockBusy:
        log.info("outcome of run %s is being logged elsewhere", run["run_id"])
