"""The coding team served by `langgraph dev`, driven through the official LangGraph SDK.

One server process for the module: the repo's `langgraph.json`, a scripted chat model (so the run
is deterministic and offline) and a temporary data dir. The tests go through the HTTP API like
Studio or any other client would: stream a run until the approval interrupt, reject with a
comment, let the team rework the code, approve, and check what was delivered (into the task's own
folder under the data dir: a served run cannot choose a host path) and what the ledger recorded.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamMode, ThreadState

from tests.conftest import cases_reply, cli_env, coder_reply, review_reply, write_script
from tools.ledger import EventKind, LedgerEvent, open_ledger

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
GRAPH_ID = "coding_team"
NODES = ("supervisor", "coder", "tester", "reviewer", "approval", "deliver")
GOAL = "Write add(a, b) returning the sum.\nExample: add(2, 3) == 5"
COMMENT = "add a docstring"
PLAIN_ADD = "def add(a, b):\n    return a + b\n"
DOCUMENTED_ADD = 'def add(a, b):\n    """Return the sum of a and b."""\n    return a + b\n'
STREAM_MODE: list[StreamMode] = ["updates", "custom"]
START_TIMEOUT_S = 90.0
RUN_TIMEOUT_S = 60.0
TAKEN_PORTS = {2024}


@dataclass(frozen=True)
class Server:
    """A running `langgraph dev` and the data dir it writes to."""

    url: str
    data_dir: Path
    log: Path
    ledger_url: str | None = None
    """The tool ledger and event log: PostgreSQL for Aegra, else SQLite in the data dir."""

    def context(self) -> dict[str, Any]:
        """The run context: ask a human before delivering."""
        return {"approve": "ask"}

    def delivered(self, thread_id: str) -> Path:
        """Where a served run delivers: the task's own folder under the data dir."""
        return self.data_dir / "tasks" / thread_id / "delivered"

    async def events(self, thread_id: str, kinds: list[EventKind]) -> list[LedgerEvent]:
        """The thread's ledgered events of these kinds, oldest first."""
        ledger = await open_ledger(self.ledger_url or str(self.data_dir / "ledger.sqlite"))
        try:
            return await ledger.events(thread_id, 0, 10_000, kinds=kinds)
        finally:
            await ledger.close()


def _free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in TAKEN_PORTS:
            return port


def _log_tail(log: Path, lines: int = 60) -> str:
    text = log.read_text(errors="replace") if log.exists() else "(no log)"
    return "\n".join(re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines()[-lines:])


def _wait_until_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"langgraph dev exited with {proc.returncode}:\n{_log_tail(log)}")
        try:
            if httpx.get(f"{url}/ok", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    pytest.fail(f"langgraph dev not ready after {START_TIMEOUT_S:.0f}s:\n{_log_tail(log)}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


def approval_flow_rules() -> list[dict[str, Any]]:
    """A first version, a reviewed approval, and a fix once a human asks for a docstring."""
    return [
        {"role": "coder", "when": [COMMENT], "reply": coder_reply(DOCUMENTED_ADD, "docstring")},
        {"role": "coder", "reply": coder_reply(PLAIN_ADD, "first version")},
        {"role": "tester", "reply": cases_reply(("add(1, 1)", 2), ("add(0, 0)", 0))},
        {"role": "reviewer", "reply": review_reply()},
    ]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Start `langgraph dev` on the repo's langgraph.json with a scripted model."""
    tmp = tmp_path_factory.mktemp("langgraph_server")
    script = write_script(
        tmp / "script.json",
        approval_flow_rules(),
    )
    env = cli_env(
        tmp,
        STRATEGOS_SCRIPTED_MODEL=str(script),
        LANGGRAPH_CLI_NO_ANALYTICS="1",
        LANGGRAPH_NO_VERSION_CHECK="true",
    )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp / "server.log"
    command = [
        str(Path(sys.executable).parent / "langgraph"),
        "dev",
        "--no-browser",
        "--no-reload",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_ready(proc, url, log)
        yield Server(url=url, data_dir=Path(env["STRATEGOS_DATA_DIR"]), log=log)
    finally:
        _stop(proc)


@pytest.fixture
async def client(server: Server) -> AsyncIterator[LangGraphClient]:
    """An SDK client for the server (closed after the test)."""
    async with get_client(url=server.url) as sdk:
        yield sdk


@pytest.fixture
async def thread_id(client: LangGraphClient) -> AsyncIterator[str]:
    """A fresh thread, deleted afterwards so the dev server's local store does not grow."""
    thread = await client.threads.create()
    yield thread["thread_id"]
    await client.threads.delete(thread["thread_id"])


async def stream_run(
    client: LangGraphClient, server: Server, thread_id: str, **run: Any
) -> list[tuple[str, Any]]:
    """Stream one run to its end; fail on an error event, with the server log's tail."""
    events: list[tuple[str, Any]] = []
    async with asyncio.timeout(RUN_TIMEOUT_S):
        async for part in client.runs.stream(
            thread_id, GRAPH_ID, stream_mode=STREAM_MODE, context=server.context(), **run
        ):
            events.append((part.event, part.data))
    errors = [data for event, data in events if event == "error"]
    assert not errors, f"run failed: {errors}\n{_log_tail(server.log)}"
    return events


def updates(events: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [data for event, data in events if event == "updates"]


def custom(events: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [data for event, data in events if event == "custom"]


def interrupts(events: list[tuple[str, Any]]) -> list[Any]:
    """The run's interrupt values, as sent (Agent Inbox's shape: a list of one question)."""
    return [i["value"] for u in updates(events) for i in u.get("__interrupt__", [])]


def inbox_question(value: Any) -> dict[str, Any]:
    """The one `HumanInterrupt` an interrupt value holds, checked against Agent Inbox's shape."""
    assert isinstance(value, list) and len(value) == 1, value
    [question] = value
    assert set(question) == {"action_request", "config", "description"}, question
    assert set(question["action_request"]) == {"action", "args"}
    assert question["config"] == {
        "allow_accept": True,
        "allow_respond": True,
        "allow_ignore": True,
        "allow_edit": False,  # the approval is bound to the files shown
    }
    assert isinstance(question["description"], str) and question["description"]
    return cast(dict[str, Any], question)


def node_updates(events: list[tuple[str, Any]], node: str) -> list[dict[str, Any]]:
    return [u[node] for u in updates(events) if node in u]


def values_of(state: ThreadState) -> dict[str, Any]:
    values = state["values"]
    assert isinstance(values, dict), values
    return values


async def assert_waiting_for_approval(
    client: LangGraphClient, server: Server, thread_id: str, events: list[tuple[str, Any]]
) -> ThreadState:
    """The run ended at the approval interrupt, both in the stream and in the thread's state."""
    [value] = interrupts(events)
    question = inbox_question(value)
    assert question["action_request"]["action"] == "deliver"
    request = question["action_request"]["args"]
    assert "```python" in question["description"]  # the code, readable in the inbox
    assert request["contents"]["solution.py"] in question["description"]
    assert request["kind"] == "approval_request"
    assert request["action"] == "deliver"
    assert request["files"] == ["solution.py"]
    assert request["destination"] == str(server.delivered(thread_id))
    assert request["tests"] == "goal examples 1/1, team tests 2/2"

    state = await client.threads.get_state(thread_id)
    assert state["next"] == ["approval"]
    [task] = state["tasks"]
    assert task["name"] == "approval"
    assert [i["value"] for i in task["interrupts"]] == [value]
    assert not (server.delivered(thread_id) / "solution.py").exists(), "delivered before approval"
    return state


async def assert_ledgered(
    server: Server, thread_id: str, answers: list[EventKind], who: str = "human (local)"
) -> None:
    """Two test runs, one question per answer, each answered once by `who`, one delivery."""
    scheduled = await server.events(thread_id, ["ActivityScheduled"])
    tools = [event.data.get("tool") for event in scheduled]
    assert tools.count("run_tests") == 2, tools
    assert tools.count("deliver_files") == 1, tools
    asked = await server.events(thread_id, ["ApprovalRequested"])
    answered = await server.events(thread_id, ["ApprovalGiven", "ApprovalRejected"])
    assert [event.kind for event in answered] == answers
    assert [event.data.get("approver") for event in answered] == [who] * len(answers)
    assert sorted(str(event.key) for event in asked) == sorted(str(e.key) for e in answered)


async def test_reject_then_approve_delivers_the_reworked_code(
    client: LangGraphClient, server: Server, thread_id: str
) -> None:
    # 1. The team works until it asks a human to approve the delivery.
    first = await stream_run(client, server, thread_id, input={"goal": GOAL})
    roles = {event.get("role") for event in custom(first)}
    assert {"supervisor", "coder", "tester", "reviewer"} <= roles, roles
    assert [u["files"] for u in node_updates(first, "coder")] == [{"solution.py": PLAIN_ADD}]
    state = await assert_waiting_for_approval(client, server, thread_id, first)
    assert values_of(state)["files"] == {"solution.py": PLAIN_ADD}

    # 2. A rejection sends the comment back to the coder; the team asks again.
    second = await stream_run(
        client,
        server,
        thread_id,
        command={"resume": {"approved": False, "comment": COMMENT}},
    )
    assert {"role": "approval", "event": "rejected", "comment": COMMENT} in custom(second)
    assert node_updates(second, "approval")[0]["approval"] == {
        "approved": False,
        "comment": COMMENT,
    }
    assert [u["files"] for u in node_updates(second, "coder")] == [{"solution.py": DOCUMENTED_ADD}]
    assert node_updates(second, "tester"), "the reworked code was not tested"
    assert node_updates(second, "reviewer"), "the reworked code was not reviewed"
    state = await assert_waiting_for_approval(client, server, thread_id, second)
    assert values_of(state)["files"] == {"solution.py": DOCUMENTED_ADD}
    assert values_of(state)["iteration"] == 2

    # 3. Approval delivers the reworked version into the task's own folder.
    third = await stream_run(
        client, server, thread_id, command={"resume": {"approved": True, "comment": "ship it"}}
    )
    assert not interrupts(third)
    assert {"role": "deliver", "event": "delivered", "files": ["solution.py"]} in custom(third)

    state = await client.threads.get_state(thread_id)
    assert state["next"] == []
    assert state["tasks"] == []
    values = values_of(state)
    assert values["delivered"] == ["solution.py"]
    report = values["report"]
    assert report["status"] == "delivered"
    assert report["files"] == ["solution.py"]
    assert report["destination"] == str(server.delivered(thread_id))
    assert report["approval"] == {"approved": True, "comment": "ship it"}
    assert report["iterations"] == 2

    delivered = server.delivered(thread_id) / "solution.py"
    assert delivered.read_text() == DOCUMENTED_ADD
    assert json.loads((server.delivered(thread_id) / "REPORT.json").read_text()) == report
    # The ledger is the record: two sandboxed test runs, one question per version, answered
    # once each by the (anonymous, local) human, and one delivery.
    await assert_ledgered(server, thread_id, answers=["ApprovalRejected", "ApprovalGiven"])

    history = await client.threads.get_history(thread_id, limit=100)
    assert len(history) >= 10
    assert [h["next"] for h in history].count(["approval"]) == 2
    assert history[0]["next"] == []
    assert history[-1]["next"] == ["__start__"]


async def test_graph_and_schemas_are_served(client: LangGraphClient) -> None:
    [assistant] = await client.assistants.search(graph_id=GRAPH_ID)
    assistant_id = assistant["assistant_id"]

    graph = await client.assistants.get_graph(assistant_id, xray=True)
    node_ids = {node["id"] for node in graph["nodes"]}
    assert set(NODES) <= node_ids, node_ids
    edges = {(edge["source"], edge["target"]) for edge in graph["edges"]}
    assert {("supervisor", worker) for worker in NODES[1:]} <= edges, edges
    assert ("__start__", "supervisor") in edges
    assert ("deliver", "__end__") in edges

    schemas = await client.assistants.get_schemas(assistant_id)
    input_schema = schemas["input_schema"]
    assert input_schema is not None
    assert input_schema["properties"]["goal"]["type"] == "string"
    # A goal or a chat: Studio offers its chat view, Agent Chat UI sends `messages`.
    assert not input_schema.get("required"), input_schema.get("required")
    assert "messages" in input_schema["properties"]
    assert "entry_point" in input_schema["properties"]
    context_schema = schemas["context_schema"]
    assert context_schema is not None
    assert context_schema["properties"]["approve"]["enum"] == ["ask", "auto", "deny"]
    assert "delivery_path" in context_schema["properties"]
    # Who the run acts for and where it writes are the server's to decide, never the caller's.
    hidden = {"tenant", "out_dir", "run_log", "model", "sandbox", "memory", "gateway"}
    assert not hidden & set(context_schema["properties"]), context_schema["properties"]
