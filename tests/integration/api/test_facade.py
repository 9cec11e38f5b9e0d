"""The task façade end to end under `langgraph dev`: create, approve, events, stream, tenancy."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import websockets
from langgraph_sdk import get_client

from tests.integration.api.conftest import ApiServer
from tests.integration.test_langgraph_server import COMMENT, DOCUMENTED_ADD, GOAL

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

POLL_TIMEOUT_S = 60.0


async def wait_for_status(
    http: httpx.AsyncClient, server: ApiServer, task_id: str, tenant: str, wanted: set[str]
) -> dict[str, Any]:
    """Poll GET /v1/tasks/{id} until the status is one of `wanted`."""
    deadline = time.monotonic() + POLL_TIMEOUT_S
    while True:
        response = await http.get(f"/v1/tasks/{task_id}", headers=server.headers(tenant))
        assert response.status_code == 200, response.text
        task: dict[str, Any] = response.json()
        if task["status"] in wanted:
            return task
        assert task["status"] in {"queued", "running", "waiting_for_approval"}, (
            task,
            server.tail(),
        )
        if time.monotonic() > deadline:
            pytest.fail(f"task stuck in {task['status']}:\n{server.tail()}")
        await asyncio.sleep(0.3)


async def all_events(
    http: httpx.AsyncClient, server: ApiServer, task_id: str, tenant: str, limit: int
) -> list[dict[str, Any]]:
    """Page through the whole event log `limit` events at a time."""
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        response = await http.get(
            f"/v1/tasks/{task_id}/events",
            params={"after": after, "limit": limit},
            headers=server.headers(tenant),
        )
        assert response.status_code == 200, response.text
        page = response.json()
        events += page["events"]
        assert len(page["events"]) <= limit
        if page["next_after"] is None:
            return events
        after = page["next_after"]


async def read_stream(
    server: ApiServer,
    task_id: str,
    tenant: str,
    *,
    last_event_id: int | None,
    count: int | None,
    hello: bool = False,
) -> list[dict[str, Any]]:
    """Read stream messages: `count` events, or until the server ends the stream.

    With `hello`, the key and resume point go in the first message (as a browser would send
    them) instead of the header and the query string.
    """
    url = server.url.replace("http://", "ws://") + f"/v1/tasks/{task_id}/stream"
    if last_event_id is not None and not hello:
        url += f"?last_event_id={last_event_id}"
    headers = {} if hello else server.headers(tenant)
    messages: list[dict[str, Any]] = []
    async with asyncio.timeout(POLL_TIMEOUT_S):
        async with websockets.connect(url, additional_headers=headers) as ws:
            if hello:
                first = {"api_key": server.headers(tenant)["x-api-key"]}
                await ws.send(json.dumps({**first, "last_event_id": last_event_id}))
            async for raw in ws:
                message = json.loads(raw)
                messages.append(message)
                if message["type"] != "event":
                    break
                if count is not None and len(messages) >= count:
                    break
    return messages


async def scraped(api_server: ApiServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of both instances' /metrics, summed across them by name and labels."""
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for url in filter(None, (api_server.url, api_server.peer_url)):
        async with httpx.AsyncClient(base_url=url) as client:
            page = await client.get("/metrics", timeout=30.0)
        assert page.status_code == 200, page.text[:500]
        for family in text_string_to_metric_families(page.text):
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


async def gauge_settles(
    api_server: ApiServer, name: str, wanted: Callable[[float], bool], **labels: str
) -> float:
    """Scrape until the gauge (summed over the instances) is present and `wanted` holds.

    Gauges of the database are read at most every few seconds, so a scrape may be stale.
    """
    deadline = time.monotonic() + POLL_TIMEOUT_S
    while True:
        found = await scraped(api_server)
        series = [v for (n, ls), v in found.items() if n == name and set(labels.items()) <= set(ls)]
        if series and wanted(sum(series)):
            return sum(series)
        if time.monotonic() > deadline:
            pytest.fail(f"{name}{labels} is {series}:\n{api_server.tail()}")
        await asyncio.sleep(0.5)


async def metrics_tell_the_story(api_server: ApiServer) -> None:
    """A Prometheus scrape after the task: the task, its model calls, its tools."""
    found = await scraped(api_server)

    def total(name: str, **labels: str) -> float:
        wanted = set(labels.items())
        return sum(v for (n, ls), v in found.items() if n == name and wanted <= set(ls))

    assert total("strategos_tasks_total", event="created") >= 1
    assert total("strategos_tasks_total", event="completed") >= 1
    assert total("strategos_model_calls_total", node="coder", tenant="alice") >= 2
    assert total("strategos_model_tokens_total", tenant="alice", kind="completion") > 0
    assert (
        total("strategos_gateway_decisions_total", tool="deliver_files", decision="executed") == 1
    )
    assert total("strategos_tool_seconds_count", tool="run_tests") >= 1
    assert total("strategos_model_calls_total", tenant="bob") == 0  # bob did nothing
    assert total("strategos_sandbox_seconds_count") >= 1  # the tester's runs, in the sandbox
    # Steps per task, by node: the coder wrote twice (the rejection), then delivery ran.
    assert total("strategos_graph_steps_total", node="coder", tenant="alice") >= 2
    assert total("strategos_graph_steps_total", node="deliver", tenant="alice") >= 1
    # Lease recoveries are Aegra's reaper's counter: none here, but the series is served.
    assert ("aegra_reaper_recovered_runs_total", (("outcome", "crashed_retried"),)) in found
    # Nothing is left waiting for a worker once the task is over.
    await gauge_settles(api_server, "strategos_queue_depth", lambda depth: depth == 0)
    await gauge_settles(api_server, "strategos_runs_running", lambda running: running == 0)


async def test_owner_rejects_then_approves_and_the_task_is_delivered(
    http: httpx.AsyncClient, api_server: ApiServer
) -> None:
    alice = api_server.headers("alice")
    created = await http.post("/v1/tasks", json={"goal": GOAL}, headers=alice)
    assert created.status_code == 201, (created.text, api_server.tail())
    task = created.json()
    task_id = task["task_id"]
    assert task["status"] in {"queued", "running", "waiting_for_approval"}
    assert task["depth"] == 0 and task["goal"] == GOAL

    # A stream opened now, from the start, follows the task live.
    live = asyncio.create_task(
        read_stream(api_server, task_id, "alice", last_event_id=None, count=None)
    )

    waiting = await wait_for_status(http, api_server, task_id, "alice", {"waiting_for_approval"})
    request = waiting["pending_approval"]
    assert request["kind"] == "approval_request" and request["files"] == ["solution.py"]
    assert "def add" in request["contents"]["solution.py"]  # the approver sees the code
    assert request["failing"] == []
    assert waiting["current_step"] == "approval"
    early = (await http.get(f"/v1/tasks/{task_id}/files", headers=alice)).json()
    assert early["delivered"] is False and early["files"] == []
    assert [f["path"] for f in early["current"]] == ["solution.py"]  # the code being judged
    assert "def add" in early["current"][0]["content"]
    assert waiting["usage"]["model_calls"] >= 3

    # The listing shows it, for its tenant only.
    listed = (await http.get("/v1/tasks", headers=alice)).json()
    assert task_id in [t["task_id"] for t in listed["tasks"]]
    bobs = (await http.get("/v1/tasks", headers=api_server.headers("bob"))).json()
    assert task_id not in [t["task_id"] for t in bobs["tasks"]]

    # Reject with a comment: the team reworks the code and asks again.
    rejected = await http.post(
        f"/v1/tasks/{task_id}/approve", json={"approved": False, "comment": COMMENT}, headers=alice
    )
    assert rejected.status_code == 200, rejected.text
    waiting = await wait_for_status(http, api_server, task_id, "alice", {"waiting_for_approval"})
    assert waiting["pending_approval"]["kind"] == "approval_request"

    # Under Aegra the approval goes to the other instance: a task belongs to the deployment.
    async with httpx.AsyncClient(base_url=api_server.peer_url or api_server.url) as peer:
        approved = await peer.post(
            f"/v1/tasks/{task_id}/approve",
            json={"approved": True, "comment": "ship it"},
            headers=alice,
            timeout=60.0,
        )
    assert approved.status_code == 200, approved.text
    done = await wait_for_status(http, api_server, task_id, "alice", {"completed", "failed"})
    listed = (await http.get("/v1/tasks", headers=alice)).json()
    assert {t["task_id"]: t["status"] for t in listed["tasks"]}[task_id] == "completed"
    assert done["status"] == "completed", done
    assert done["result"]["status"] == "delivered"
    assert done["result"]["approval"] == {"approved": True, "comment": "ship it"}
    assert done["pending_approval"] is None
    delivered = api_server.data_dir / "tasks" / task_id / "delivered" / "solution.py"
    assert delivered.read_text() == DOCUMENTED_ADD
    # A client reads what was delivered through the API, not from the server's disk.
    served = await http.get(f"/v1/tasks/{task_id}/files", headers=alice)
    assert served.status_code == 200, served.text
    body = served.json()
    assert body["delivered"] is True
    assert body["files"] == [{"path": "solution.py", "content": DOCUMENTED_ADD}]
    other = await http.get(f"/v1/tasks/{task_id}/files", headers=api_server.headers("bob"))
    assert other.status_code == 404, other.text  # another tenant's task does not exist for bob
    if api_server.backend == "aegra":
        await metrics_tell_the_story(api_server)

    # The event log, paginated 3 at a time, is gap-free and tells the whole story.
    events = await all_events(http, api_server, task_id, "alice", limit=3)
    ids = [e["id"] for e in events]
    assert ids == list(range(1, len(ids) + 1))
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "WorkflowStarted"
    assert kinds[-1] == "WorkflowCompleted"
    paused = [e for e in events if e["kind"] == "WorkflowPaused"]
    assert [e["data"]["request"]["kind"] for e in paused] == ["approval_request"] * 2
    # One question and one answer per round, in order, answered by the task's owner.
    approvals = [e for e in events if e["type"] == "approval"]
    assert [e["kind"] for e in approvals] == [
        "ApprovalRequested",
        "ApprovalRejected",
        "ApprovalRequested",
        "ApprovalGiven",
    ], kinds
    assert all(e["data"]["tool"] == "deliver_files" for e in approvals[::2])
    assert {e["data"]["approver"] for e in approvals[1::2]} == {"human (alice)"}
    rejection = events[kinds.index("ApprovalRejected")]
    assert rejection["data"]["comment"] == COMMENT and rejection["type"] == "approval"
    assert any(e["type"] == "progress" and e["data"].get("role") == "coder" for e in events)
    assert any(e["type"] == "tool" for e in events), kinds
    assert done["last_event_id"] == ids[-1]

    # Nothing is waiting any more: another answer is refused with a clear code.
    late = await http.post(f"/v1/tasks/{task_id}/approve", json={"approved": True}, headers=alice)
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "not_waiting_for_approval"

    # The live stream saw exactly the log, then the end.
    streamed = await live
    assert streamed[-1] == {"type": "end", "status": "completed"}
    assert [m["event"] for m in streamed[:-1]] == events

    # A client that stops after 5 events and reconnects with the last id misses nothing.
    first = await read_stream(api_server, task_id, "alice", last_event_id=None, count=5)
    resumed = await read_stream(
        api_server, task_id, "alice", last_event_id=first[-1]["event"]["id"], count=None
    )
    replay = [m["event"] for m in first] + [m["event"] for m in resumed[:-1]]
    assert replay == events
    assert resumed[-1]["type"] == "end"
    middle = events[len(events) // 2]["id"]
    browser = await read_stream(
        api_server, task_id, "alice", last_event_id=middle, count=None, hello=True
    )
    assert [m["event"] for m in browser[:-1]] == events[middle:]
    ws_url = api_server.url.replace("http://", "ws://") + f"/v1/tasks/{task_id}/stream"
    async with websockets.connect(ws_url) as ws:
        await ws.send(json.dumps({"api_key": "wrong-key-123"}))
        refused = json.loads(await ws.recv())
    assert refused["type"] == "error" and refused["error"]["code"] == "unauthorized"

    # Another tenant gets 404, never the data: façade routes, the stream and the native API.
    bob = api_server.headers("bob")
    for response in (
        await http.get(f"/v1/tasks/{task_id}", headers=bob),
        await http.get(f"/v1/tasks/{task_id}/events", headers=bob),
        await http.post(f"/v1/tasks/{task_id}/approve", json={"approved": True}, headers=bob),
    ):
        assert response.status_code == 404, response.text
        assert response.json() == {"error": {"code": "not_found", "message": "task not found"}}
    [message] = await read_stream(api_server, task_id, "bob", last_event_id=None, count=None)
    assert message["type"] == "error" and message["error"]["code"] == "not_found"
    async with get_client(url=api_server.url, api_key=KEY_BOB(api_server)) as sdk:
        with pytest.raises(httpx.HTTPStatusError) as info:
            await sdk.threads.get(task_id)
        assert info.value.response.status_code == 404
        with pytest.raises(httpx.HTTPStatusError) as info:
            await sdk.threads.get_state(task_id)
        assert info.value.response.status_code == 404
        assert task_id not in [t["thread_id"] for t in await sdk.threads.search(limit=100)]
    async with get_client(
        url=api_server.url, api_key=api_server.headers("alice")["x-api-key"]
    ) as sdk:
        thread = await sdk.threads.get(task_id)
        assert (thread["metadata"] or {})["owner"] == "alice"


def KEY_BOB(server: ApiServer) -> str:  # noqa: N802
    return server.headers("bob")["x-api-key"]
