"""PostgreSQL and Redis restarted under running tasks of two Aegra instances.

What a user must not notice, whatever restarts:

- every task ends, with exactly one outcome event that says what really happened (delivered ↔
  `WorkflowCompleted`; a run the outage did break is `WorkflowFailed` with a dead letter, and
  replaying that letter delivers the task), and each task is delivered at most once;
- once the server is back, no request fails (the pools replace the connections the restart
  broke instead of failing a request each);
- while Redis stays down the task API answers 503 with Retry-After and a one-line JSON error;
- no progress event is lost: each task's log shows the same progress as a task run without a
  fault.

The servers are the tests' own (`services.py`); the machine's are never touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import ApiServer
from tests.integration.faults import tasks
from tests.integration.faults.services import PostgresServer, RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

TASKS = 6
PG_DOWN_S = 8.0
"""Longer than a lease (5 s): every running run's lease expires while its instance lives."""


def urls(server: ApiServer) -> list[str]:
    return [instance.url for instance in server.instances]


async def reference_progress(http: httpx.AsyncClient, server: ApiServer) -> list[Any]:
    """The progress a task logs when nothing goes wrong (the script is deterministic)."""
    [task_id] = await tasks.submit(http, urls(server)[:1], 1)
    ended = await tasks.wait_ended(http, server.url, [task_id])
    assert ended[task_id]["status"] == "completed", ended
    found = tasks.progress(str(server.database_url), task_id)
    assert found, "the team reported no progress"
    return found


def contains_in_order(found: Sequence[Any], wanted: Sequence[Any]) -> bool:
    """Whether `wanted` appears in `found` in order (repeats of a re-run step allowed)."""
    remaining = iter(found)
    return all(any(item == event for event in remaining) for item in wanted)


async def replay_failed(http: httpx.AsyncClient, server: ApiServer) -> list[str]:
    """Replay every open dead letter; the tasks replayed."""
    page = await http.get(
        f"{server.url}/v1/dead-letters", params={"status": "open"}, headers=tasks.HEADERS
    )
    replayed = []
    for letter in page.json()["dead_letters"]:
        response = await http.post(
            f"{server.url}/v1/dead-letters/{letter['id']}/replay", headers=tasks.HEADERS
        )
        assert response.status_code == 200, response.text
        replayed.append(letter["task_id"])
    return replayed


async def test_postgres_restart_under_running_tasks(
    deployment: ApiServer, pg: PostgresServer
) -> None:
    database_url = str(deployment.database_url)
    async with httpx.AsyncClient(timeout=120.0) as http:
        reference = await reference_progress(http, deployment)
        ids = await tasks.submit(http, urls(deployment), TASKS)
        await tasks.wait_all_started(database_url, ids)

        await asyncio.to_thread(pg.stop)
        await asyncio.sleep(PG_DOWN_S)
        await asyncio.to_thread(pg.start)

        codes = await tasks.sweep(http, urls(deployment), ids)
        ended = await tasks.wait_ended(http, urls(deployment)[1], ids)
        codes += await tasks.sweep(http, urls(deployment), ids)
        await tasks.wait_logged(http, deployment.url, database_url, ids)
        result = await tasks.verdict(http, deployment.url, database_url, ended)
        print(f"\nPostgreSQL restart: {result.line()}; requests after it: {dict(codes)}")

        assert set(codes) == {200}, f"requests failed after the restart: {codes}"
        assert not result.lost and not result.duplicate_deliveries, result
        assert not result.wrong_outcomes, result.wrong_outcomes
        for task_id, task in ended.items():
            if task["status"] == "completed":
                assert contains_in_order(tasks.progress(database_url, task_id), reference)

        # A run the outage broke is not lost: its dead letter resumes it, and it delivers once.
        replayed = await replay_failed(http, deployment)
        failed = [task_id for task_id, task in ended.items() if task["status"] == "failed"]
        assert sorted(replayed) == sorted(failed)
        again = await tasks.wait_ended(http, deployment.url, replayed)
        for task_id, task in again.items():
            assert task["status"] == "completed", task
            assert tasks.deliveries(database_url, task_id) == 1


async def test_redis_outage_answers_503_and_loses_no_progress(
    deployment: ApiServer, redis_srv: RedisServer
) -> None:
    database_url = str(deployment.database_url)
    first, second = urls(deployment)
    async with httpx.AsyncClient(timeout=120.0) as http:
        reference = await reference_progress(http, deployment)
        ids = await tasks.submit(http, [first, second], TASKS)
        await tasks.wait_all_started(database_url, ids)

        await asyncio.to_thread(redis_srv.stop)
        refused = await http.post(
            f"{first}/v1/tasks", json={"goal": "Write f()."}, headers=tasks.HEADERS
        )
        read = await http.get(f"{second}/v1/tasks/{ids[0]}", headers=tasks.HEADERS)
        await asyncio.to_thread(redis_srv.start)

        for answer in (refused, read):
            assert answer.status_code == 503, answer.text
            assert int(answer.headers["Retry-After"]) > 0
            assert answer.json()["error"]["code"] == "unavailable"
            assert "\n" not in answer.text.strip()

        codes = await tasks.sweep(http, [first, second], ids)
        ended = await tasks.wait_ended(http, second, ids)
        codes += await tasks.sweep(http, [first, second], ids)
        await tasks.wait_logged(http, first, database_url, ids)
        result = await tasks.verdict(http, first, database_url, ended)
        print(f"\nRedis outage: {result.line()}; requests after it: {dict(codes)}")

        assert set(codes) == {200}, f"requests failed after the restart: {codes}"
        assert result.delivered == TASKS, result
        assert not result.duplicate_deliveries and not result.wrong_outcomes, result
        for task_id in ids:
            assert tasks.progress(database_url, task_id) == reference, task_id
