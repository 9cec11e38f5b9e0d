"""The task service end to end with the real local model: Aegra, the task API, a human's OK.

One `strategos serve` instance (Aegra over the machine's PostgreSQL and Redis) runs the team on
the bundled llama-server. A tenant creates a task over HTTP, follows it on the WebSocket stream
until the team asks for approval, approves it, and follows the stream to its end; the report
tells the truth about the delivered code.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.e2e.reports import assert_report_tells_the_truth
from tests.e2e.test_real_model import TASKS
from tests.integration.aegra import harness

pytestmark = [pytest.mark.model, pytest.mark.slow, pytest.mark.timeout(1200)]

KEY = "model-tenant-key-0001"
STREAM_TIMEOUT_S = 900.0


async def follow(url: str, task_id: str, until: set[str]) -> list[dict[str, Any]]:
    """Stream messages until an event of a kind in `until`, or the end of the stream."""
    ws_url = url.replace("http://", "ws://") + f"/v1/tasks/{task_id}/stream"
    messages: list[dict[str, Any]] = []
    async with asyncio.timeout(STREAM_TIMEOUT_S):
        async with websockets.connect(ws_url, additional_headers={"x-api-key": KEY}) as ws:
            async for raw in ws:
                message = json.loads(raw)
                messages.append(message)
                if message["type"] != "event" or message["event"]["kind"] in until:
                    break
    return messages


async def drive(url: str, goal: str) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    headers = {"x-api-key": KEY}
    async with httpx.AsyncClient(base_url=url, timeout=60.0) as http:
        created = await http.post(
            "/v1/tasks", json={"goal": goal, "options": {"approve": "ask"}}, headers=headers
        )
        assert created.status_code == 201, created.text
        task_id = str(created.json()["task_id"])
        asked = await follow(url, task_id, {"ApprovalRequested"})
        assert asked[-1]["type"] == "event", asked[-3:]
        waiting = (await http.get(f"/v1/tasks/{task_id}", headers=headers)).json()
        assert waiting["status"] == "waiting_for_approval", waiting
        assert waiting["pending_approval"]["files"] == ["solution.py"]
        approved = await http.post(
            f"/v1/tasks/{task_id}/approve",
            json={"approved": True, "comment": "looks right"},
            headers=headers,
        )
        assert approved.status_code == 200, approved.text
        ended = await follow(url, task_id, set())
        done = (await http.get(f"/v1/tasks/{task_id}", headers=headers)).json()
    return task_id, asked + ended, done


def test_a_tenant_runs_a_task_through_the_service_on_the_real_model(tmp_path: Path) -> None:
    goal, _hidden = TASKS["vowels"]
    prefix = f"strategos-test:{uuid.uuid4().hex[:8]}:"
    unused = tmp_path / "no-script.json"
    with harness.fresh_database() as database_url:
        env = harness.server_env(tmp_path, database_url, unused, prefix)
        del env["STRATEGOS_SCRIPTED_MODEL"]  # the real local model
        env["STRATEGOS_API_KEYS"] = f"model-tenant:{KEY}"
        try:
            with harness.serving("a", tmp_path, env) as instance:
                task_id, messages, done = asyncio.run(drive(instance.url, goal))
        finally:
            harness.clean_redis(prefix)

    assert messages[-1] == {"type": "end", "status": "completed"}, messages[-3:]
    kinds = [m["event"]["kind"] for m in messages if m["type"] == "event"]
    assert kinds[0] == "WorkflowStarted" and kinds[-1] == "WorkflowCompleted"
    assert {"ApprovalRequested", "ApprovalGiven"} <= set(kinds)
    roles = {m["event"]["data"].get("role") for m in messages if m["type"] == "event"}
    assert "coder" in roles, "the team's progress was not streamed"

    report = done["result"]
    assert done["status"] == "completed" and report["status"] == "delivered"
    assert report["model_calls"] >= 3 and report["prompt_tokens"] > 0
    delivered = tmp_path / "data" / "tasks" / task_id / "delivered"
    assert_report_tells_the_truth(goal, report, delivered)
