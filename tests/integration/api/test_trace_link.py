"""One trace per task, through the served app: the API request's span is the parent of the run's.

Two Aegra instances serve the façade with the default file exporter; a client sends its own
W3C `traceparent` with `POST /v1/tasks`. The task completes on whichever instance's worker
picks its run up; the spans both instances wrote to `<data dir>/traces.jsonl` are read back.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import ApiServer, run_api_server
from tests.integration.api.test_facade import wait_for_status
from tests.integration.test_langgraph_server import GOAL, approval_flow_rules

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def traced_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    tmp = tmp_path_factory.mktemp("trace_link")
    # Spans are exported within a tenth of a second instead of every five.
    extra = {"STRATEGOS_OTEL_EXPORTER": "file", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    with run_api_server(tmp, approval_flow_rules(), "aegra", extra_env=extra) as server:
        yield server


def spans_of(server: ApiServer, trace_id: str) -> list[dict[str, Any]]:
    """The trace's spans both instances have exported so far."""
    path = server.data_dir / "traces.jsonl"
    if not path.exists():
        return []
    spans = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [s for s in spans if s["context"]["trace_id"] == f"0x{trace_id}"]


async def trace_with_deliver(server: ApiServer, trace_id: str) -> list[dict[str, Any]]:
    """The trace once its last node (deliver) has been exported."""
    deadline = time.monotonic() + 60
    while True:
        spans = spans_of(server, trace_id)
        if any(s["name"] == "deliver" for s in spans):
            return spans
        if time.monotonic() > deadline:
            pytest.fail(f"no deliver span in trace {trace_id}: {[s['name'] for s in spans]}")
        await asyncio.sleep(0.3)


def ancestors(span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> list[str]:
    names = []
    while span.get("parent_id") in by_id:
        span = by_id[span["parent_id"]]
        names.append(span["name"])
    return names


async def test_the_request_and_the_run_are_one_trace(traced_server: ApiServer) -> None:
    server = traced_server
    async with httpx.AsyncClient(base_url=server.url, timeout=60.0) as http:
        created = await http.post(
            "/v1/tasks",
            json={"goal": GOAL, "options": {"approve": "auto", "use_memory": False}},
            headers={
                **server.headers("alice"),
                "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01",
            },
        )
        assert created.status_code == 201, (created.text, server.tail())
        task = created.json()
        # The answer names the request's span, in the client's trace.
        _, trace_id, request_span, _ = created.headers["traceparent"].split("-")
        assert trace_id == CLIENT_TRACE and task["trace_id"] == CLIENT_TRACE
        done = await wait_for_status(http, server, task["task_id"], "alice", {"completed"})
        assert done["trace_id"] == CLIENT_TRACE  # every view of the task names its trace

    spans = await trace_with_deliver(server, trace_id)
    by_id = {s["context"]["span_id"]: s for s in spans}
    [request] = [s for s in spans if s["name"] == "POST /v1/tasks"]  # FastAPI's server span
    assert request["context"]["span_id"] == f"0x{request_span}"
    assert request["parent_id"] == f"0x{CLIENT_SPAN}"  # joined the client's trace

    # The graph run, executed later by a worker, is a child of the request's span ...
    def traced_by_openinference(span: dict[str, Any] | None) -> bool:
        return span is not None and "openinference.span.kind" in span["attributes"]

    graph_runs = [
        s
        for s in spans
        if traced_by_openinference(s) and not traced_by_openinference(by_id.get(s["parent_id"]))
    ]
    assert len(graph_runs) == 1, [s["name"] for s in graph_runs]
    assert "POST /v1/tasks" in ancestors(graph_runs[0], by_id)
    # ... and every node, model call and tool call of the task hangs under that run.
    nodes = [s for s in spans if s["name"] in {"coder", "tester", "reviewer", "deliver"}]
    assert {s["name"] for s in nodes} == {"coder", "tester", "reviewer", "deliver"}
    for node in nodes:
        assert ancestors(node, by_id)[0] == graph_runs[0]["name"]
        assert "POST /v1/tasks" in ancestors(node, by_id)
    models = [s for s in spans if s["attributes"].get("openinference.span.kind") == "LLM"]
    assert len(models) >= 3
    assert all("POST /v1/tasks" in ancestors(s, by_id) for s in models)
    tools = [s for s in spans if s["name"] == "tool_call"]
    assert {s["attributes"]["strategos.tool"] for s in tools} >= {"run_tests", "deliver_files"}
    # A tool call hangs under its node, not directly under the request the run came from.
    assert all(ancestors(s, by_id)[0] in {"coder", "tester", "deliver"} for s in tools)
    assert all("POST /v1/tasks" in ancestors(s, by_id) for s in tools)


def test_a_task_without_a_client_trace_gets_one_of_its_own(traced_server: ApiServer) -> None:
    server = traced_server
    created = httpx.post(
        f"{server.url}/v1/tasks",
        json={"goal": GOAL, "options": {"approve": "auto", "use_memory": False}},
        headers=server.headers("alice"),
        timeout=60.0,
    )
    assert created.status_code == 201, created.text
    trace_id = created.json()["trace_id"]
    assert trace_id and trace_id != CLIENT_TRACE and len(trace_id) == 32
    assert created.headers["traceparent"].split("-")[1] == trace_id
