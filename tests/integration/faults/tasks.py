"""Driving tasks through the task API during a fault, and reading what really happened.

What a user sees comes from the API (`GET /v1/tasks/{id}`, the dead letters); what happened
underneath comes from the shared database: the outcome events the run drivers logged (keyed
`outcome:<run id>`), the deliveries the tool ledger recorded, and the progress events in order.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

from tests.integration.aegra import harness
from tests.integration.faults.conftest import KEY

HEADERS = {"x-api-key": KEY}
ENDED = frozenset({"completed", "failed"})
WAIT_S = 300.0


async def wait_for(
    check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = WAIT_S
) -> None:
    """Poll `check` until it holds; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} (waited {timeout_s:.0f}s)")
        await asyncio.sleep(0.5)


def rows(database_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


async def submit(http: httpx.AsyncClient, urls: Sequence[str], count: int) -> list[str]:
    """Create `count` tasks, alternating between the instances; their ids."""
    ids = []
    for i in range(count):
        created = await http.post(
            f"{urls[i % len(urls)]}/v1/tasks",
            json={"goal": harness.GOAL, "options": {"approve": "auto"}},
            headers=HEADERS,
        )
        assert created.status_code == 201, created.text
        ids.append(created.json()["task_id"])
    return ids


def progress(database_url: str, task_id: str) -> list[Any]:
    """The task's progress events, oldest first."""
    found = rows(
        database_url,
        "SELECT data FROM strategos_events WHERE thread_id = %s AND kind = 'AgentProgress' "
        "ORDER BY id",
        task_id,
    )
    return [row[0] for row in found]


async def wait_all_started(database_url: str, ids: Sequence[str]) -> None:
    """Until every task has reported progress: the fault then lands mid-run."""

    async def started() -> bool:
        found = await asyncio.gather(*(asyncio.to_thread(progress, database_url, t) for t in ids))
        return all(found)

    await wait_for(started, "not every task started")


async def sweep(http: httpx.AsyncClient, urls: Sequence[str], ids: Sequence[str]) -> Counter[int]:
    """Read every task and its events through every instance; the status codes seen."""
    codes: Counter[int] = Counter()
    for url in urls:
        for task_id in ids:
            for path in (f"/v1/tasks/{task_id}", f"/v1/tasks/{task_id}/events"):
                codes[(await http.get(f"{url}{path}", headers=HEADERS)).status_code] += 1
        codes[(await http.get(f"{url}/v1/tasks", headers=HEADERS)).status_code] += 1
    return codes


async def wait_ended(http: httpx.AsyncClient, url: str, ids: Sequence[str]) -> dict[str, Any]:
    """Every task once it is completed or failed, as the API shows it."""
    tasks: dict[str, Any] = {}

    async def ended() -> bool:
        for task_id in ids:
            response = await http.get(f"{url}/v1/tasks/{task_id}", headers=HEADERS)
            assert response.status_code == 200, response.text
            tasks[task_id] = response.json()
        return all(task["status"] in ENDED for task in tasks.values())

    await wait_for(ended, "not every task ended")
    return tasks


def outcomes(database_url: str, task_id: str) -> list[str]:
    """The kinds of the outcome events logged for the task's runs."""
    found = rows(
        database_url,
        "SELECT kind FROM strategos_events WHERE thread_id = %s AND key LIKE 'outcome:%%' "
        "ORDER BY id",
        task_id,
    )
    return [row[0] for row in found]


def deliveries(database_url: str, task_id: str) -> int:
    """How many times `deliver_files` completed for the task (the ledger's record)."""
    [(count,)] = rows(
        database_url,
        "SELECT count(*) FROM strategos_events WHERE thread_id = %s "
        "AND kind = 'ActivityCompleted' AND data->>'tool' = 'deliver_files'",
        task_id,
    )
    return int(count)


async def wait_logged(
    http: httpx.AsyncClient, url: str, database_url: str, ids: Sequence[str]
) -> None:
    """Until every ended task has its outcome logged (reading events lets `reconcile` run)."""

    async def logged() -> bool:
        for task_id in ids:
            await http.get(f"{url}/v1/tasks/{task_id}/events", headers=HEADERS)
        found = await asyncio.gather(*(asyncio.to_thread(outcomes, database_url, t) for t in ids))
        return all(found)

    await wait_for(logged, "an ended task has no outcome event", timeout_s=60.0)


@dataclass
class Verdict:
    """What the fault did to the tasks, in the numbers the report gives."""

    tasks: int = 0
    delivered: int = 0
    failed: int = 0
    lost: list[str] = field(default_factory=list)
    duplicate_deliveries: list[str] = field(default_factory=list)
    wrong_outcomes: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.tasks} tasks: {self.delivered} delivered, {self.failed} failed; "
            f"lost {len(self.lost)}, duplicate deliveries {len(self.duplicate_deliveries)}, "
            f"wrong outcomes {len(self.wrong_outcomes)}"
        )


async def verdict(
    http: httpx.AsyncClient, url: str, database_url: str, tasks: dict[str, Any]
) -> Verdict:
    """Judge each ended task: one outcome event that matches its state, one delivery at most."""
    letters = (await http.get(f"{url}/v1/dead-letters", headers=HEADERS)).json()["dead_letters"]
    dead = {letter["task_id"] for letter in letters}
    result = Verdict(tasks=len(tasks))
    for task_id, task in tasks.items():
        kinds = outcomes(database_url, task_id)
        delivered = task["status"] == "completed" and (task["result"] or {}).get("status") == (
            "delivered"
        )
        result.delivered += delivered
        result.failed += task["status"] == "failed"
        if task["status"] not in ENDED:
            result.lost.append(task_id)
        expected = "WorkflowCompleted" if delivered else "WorkflowFailed"
        if kinds != [expected] or (not delivered and task_id not in dead):
            result.wrong_outcomes.append(f"{task_id}: {task['status']} logged as {kinds}")
        count = deliveries(database_url, task_id)
        if count > 1:
            result.duplicate_deliveries.append(task_id)
        if delivered and count != 1:
            result.wrong_outcomes.append(f"{task_id}: delivered, {count} deliveries in the ledger")
    return result
