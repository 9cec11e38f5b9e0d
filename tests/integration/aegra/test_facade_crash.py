"""Tasks accepted by an instance that is then SIGKILLed still end, and their logs say so.

The façade's driver of a run lives in the instance that accepted the request. When that
instance dies, the survivor finishes the runs (Aegra's lease reaper) but no driver is left to
log how they ended; readers on the survivor notice and log it
(`service.api.run_outcome.reconcile`). A client following the task on the survivor sees each task
delivered once, an event log that ends in one `WorkflowCompleted`, and a stream that ends
instead of waiting forever.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.aegra import harness
from tests.integration.api.conftest import ApiServer, run_api_server
from tests.integration.api.test_facade import all_events, read_stream, wait_for_status

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

TASKS = 6
LOG_TIMEOUT_S = 30.0


async def logged_to_the_end(
    http: httpx.AsyncClient, server: ApiServer, task_id: str
) -> list[dict[str, Any]]:
    """The task's events once the log has its end (readers log a dead driver's outcome)."""
    deadline = time.monotonic() + LOG_TIMEOUT_S
    while True:
        events = await all_events(http, server, task_id, "alice", limit=100)
        if events[-1]["kind"] in ("WorkflowCompleted", "WorkflowFailed"):
            return events
        if time.monotonic() > deadline:
            pytest.fail(f"no end logged: {[e['kind'] for e in events]}\n{server.tail()}")
        await asyncio.sleep(0.5)


async def test_tasks_of_a_killed_instance_finish_and_log_their_end(tmp_path: Path) -> None:
    with run_api_server(tmp_path, harness.crash_rules(), "aegra", latency_s=1.0) as server:
        survivor, victim = server.instances
        alice = server.headers("alice")
        ids: list[str] = []
        async with httpx.AsyncClient(base_url=victim.url, timeout=60.0) as via_victim:
            for _ in range(TASKS):
                created = await via_victim.post(
                    "/v1/tasks",
                    json={"goal": harness.GOAL, "options": {"approve": "auto"}},
                    headers=alice,
                )
                assert created.status_code == 201, (created.text, server.tail())
                ids.append(created.json()["task_id"])
        victim.kill()  # every driver dies with it, mid-run

        # A stream opened on the survivor now ends by itself once the task is done.
        live = asyncio.create_task(
            read_stream(server, ids[0], "alice", last_event_id=None, count=None)
        )
        async with httpx.AsyncClient(base_url=survivor.url, timeout=60.0) as http:
            for task_id in ids:
                done = await wait_for_status(http, server, task_id, "alice", {"completed"})
                assert done["result"]["status"] == "delivered"
                assert done["result"]["model_calls"] == harness.SCRIPTED_CALLS, "restarted"
                events = await logged_to_the_end(http, server, task_id)
                kinds = [e["kind"] for e in events]
                assert kinds[0] == "WorkflowStarted" and kinds[-1] == "WorkflowCompleted", kinds
                assert kinds.count("WorkflowCompleted") == 1, kinds
                deliveries = [
                    e
                    for e in events
                    if e["kind"] == "ActivityCompleted" and e["data"].get("tool") == "deliver_files"
                ]
                assert len(deliveries) == 1, kinds
        streamed = await live
        assert streamed[-1] == {"type": "end", "status": "completed"}, streamed[-3:]
