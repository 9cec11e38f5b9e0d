"""A task's status and summary, read from its thread: the LangGraph server is the truth.

The façade stores no status of its own; these helpers derive the API's `TaskStatus` from the
thread's status, its state's values (the team's `report`) and its pending interrupts, the same
way for a listing, a detailed view, the stream's end and the run driver's reconciliation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

from langgraph_sdk.schema import Thread, ThreadState
from pydantic import JsonValue

from nodes.inbox import request_of
from service.api.schemas import TaskStatus, TaskSummary
from service.api.session import Session
from service.budget_redis import role_spending
from service.settings import get_settings


def pending_interrupts(state: ThreadState) -> list[dict[str, JsonValue]]:
    """What the thread's interrupts ask for: the team's own request (any other value as `value`).

    The interrupt carries it in Agent Inbox's shape; `nodes.inbox.request_of` unwraps it, so the
    task API shows the same fields it showed before.
    """
    found: list[dict[str, JsonValue]] = []
    for task in state.get("tasks") or []:
        for item in task.get("interrupts") or []:
            value = item.get("value") if isinstance(item, dict) else None
            request = request_of(value)
            found.append(request if request is not None else {"value": value})
    return found


def state_values(state: ThreadState | Thread) -> dict[str, Any]:
    """The state's values, or an empty dict when the server left them out."""
    values = state.get("values")
    return values if isinstance(values, dict) else {}


def task_status(thread_status: str, values: Mapping[str, Any], waiting: bool) -> TaskStatus:
    """The task's status from the thread's status and state (the server is the truth)."""
    if thread_status == "busy":
        return "running"
    if waiting or thread_status == "interrupted":
        return "waiting_for_approval"
    report = values.get("report")
    if isinstance(report, dict):
        # The team finished: its report is the task's fate, even when a write after the
        # delivery failed and left the thread in error (`service.api.run_outcome` logs it so too).
        return "failed" if report.get("status") == "failed" else "completed"
    if thread_status == "error":
        return "failed"
    return "queued"


async def with_values(sess: Session, thread: Thread) -> Thread:
    """The thread with its state's values: Aegra's thread records leave them out.

    A busy thread is running whatever its values say, so it costs no extra request.
    """
    if "values" in thread or thread.get("status") == "busy":
        return thread
    state = await sess.state(str(thread["thread_id"]))
    return cast(Thread, {**thread, "values": state_values(state)})


def task_summary(thread: Thread) -> TaskSummary:
    """The task as a listing shows it (the thread needs its values, see `with_values`)."""
    metadata = thread.get("metadata") or {}
    values = state_values(thread)
    interrupts = thread.get("interrupts") or {}
    return TaskSummary(
        task_id=str(thread["thread_id"]),
        status=task_status(str(thread["status"]), values, bool(interrupts)),
        goal=str(values.get("goal") or metadata.get("goal") or ""),
        depth=int(metadata.get("depth") or 0),
        created_at=str(thread.get("created_at")),
        updated_at=str(thread.get("updated_at")),
    )


def json_dict(value: Any) -> dict[str, JsonValue] | None:
    """A dict of the state as plain JSON (odd values as strings); None for a non-dict."""
    if not isinstance(value, dict):
        return None
    loaded: dict[str, JsonValue] = json.loads(json.dumps(value, default=str))
    return loaded


async def with_roles(
    usage: dict[str, JsonValue] | None, task_id: str
) -> dict[str, JsonValue] | None:
    """The usage and `by_role`: tokens each role (graph node) spent, from the budget ledger."""
    if usage is None:
        return None
    by_role = await role_spending(task_id, get_settings())
    return {**usage, "by_role": dict(by_role)} if by_role else usage
