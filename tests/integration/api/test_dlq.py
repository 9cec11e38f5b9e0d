"""The dead-letter queue end to end under `langgraph dev`: record, replay, resolve, CLI.

The server's script has no reviewer reply unless the goal carries `DLQ_FIX`, so every run fails
at the reviewer (a `ScriptMismatchError`, which the node's retry policy does not retry) after the
coder and the tester have finished — until a replay edits the goal. Since usage is summed into
the checkpointed state, a replay that resumed at the reviewer ends with 3 model calls, one that
started over with more.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from service.dlq import DeadLetterStore, PostgresDeadLetterStore, SqliteDeadLetterStore
from tests.conftest import cases_reply, cli_env, coder_reply, review_reply
from tests.integration.api.conftest import BACKENDS, KEYS, ApiServer, run_api_server
from tests.integration.api.test_facade import gauge_settles, wait_for_status
from tests.integration.test_langgraph_server import GOAL, PLAIN_ADD

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FIX = "DLQ_FIX"
RULES: list[dict[str, Any]] = [
    {"role": "coder", "reply": coder_reply(PLAIN_ADD, "first version")},
    {"role": "tester", "reply": cases_reply(("add(1, 1)", 2), ("add(0, 0)", 0))},
    {"role": "reviewer", "when": [FIX], "reply": review_reply()},
]


@pytest.fixture(scope="module", params=BACKENDS)
def dlq_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    backend = str(request.param)
    with run_api_server(tmp_path_factory.mktemp(f"dlq_{backend}"), RULES, backend) as server:
        yield server


@pytest.fixture
async def http(dlq_server: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=dlq_server.url, timeout=60.0) as client:
        yield client


async def failed_task(http: httpx.AsyncClient, server: ApiServer, goal: str = GOAL) -> str:
    """Create a task for alice and wait until its run failed."""
    created = await http.post(
        "/v1/tasks",
        json={"goal": goal, "options": {"approve": "auto", "use_memory": False}},
        headers=server.headers("alice"),
    )
    assert created.status_code == 201, created.text
    task_id: str = created.json()["task_id"]
    await wait_for_status(http, server, task_id, "alice", {"failed"})
    return task_id


async def letters_of(
    http: httpx.AsyncClient, server: ApiServer, task_id: str, count: int
) -> list[dict[str, Any]]:
    """Alice's dead letters of the task (newest first), once there are `count` of them."""
    deadline = time.monotonic() + 30
    while True:
        page = await http.get(
            "/v1/dead-letters", params={"limit": 100}, headers=server.headers("alice")
        )
        assert page.status_code == 200, page.text
        found = [d for d in page.json()["dead_letters"] if d["task_id"] == task_id]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{len(found)} dead letters of {task_id}, not {count}:\n{server.tail()}")
        await asyncio.sleep(0.3)


async def test_failed_run_is_recorded_replayed_from_its_checkpoint(
    http: httpx.AsyncClient, dlq_server: ApiServer
) -> None:
    alice, bob = dlq_server.headers("alice"), dlq_server.headers("bob")
    task_id = await failed_task(http, dlq_server)
    [letter] = await letters_of(http, dlq_server, task_id, 1)
    assert letter["status"] == "open"
    assert letter["attempts"] == 1
    assert "no scripted reply" in letter["error"] or "ScriptMismatch" in letter["error"]
    assert letter["input"] == {"goal": GOAL}
    if dlq_server.backend == "aegra":  # the open letter shows on /metrics
        await gauge_settles(
            dlq_server, "strategos_dead_letters_open", lambda n: n >= 1, tenant="alice"
        )
    async with get_client(url=dlq_server.url, api_key=KEYS["alice"]) as sdk:
        state = await sdk.threads.get_state(task_id)
    assert letter["checkpoint_id"] == state["checkpoint"]["checkpoint_id"]
    assert state["next"] == ["reviewer"]  # the failed step is still pending there

    # Another tenant sees nothing of it.
    others = await http.get("/v1/dead-letters", headers=bob)
    assert all(d["id"] != letter["id"] for d in others.json()["dead_letters"])
    for method, suffix in (("GET", ""), ("POST", "/replay"), ("POST", "/resolve")):
        response = await http.request(
            method, f"/v1/dead-letters/{letter['id']}{suffix}", headers=bob
        )
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"

    # Replaying as it was fails again: a second letter, one more attempt.
    replay = await http.post(f"/v1/dead-letters/{letter['id']}/replay", headers=alice)
    assert replay.status_code == 200, replay.text
    assert replay.json()["dead_letter"]["status"] == "replayed"
    again = await http.post(f"/v1/dead-letters/{letter['id']}/replay", headers=alice)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "dead_letter_closed"
    second, first = await letters_of(http, dlq_server, task_id, 2)
    assert first["id"] == letter["id"] and first["status"] == "replayed"
    assert second["run_id"] == replay.json()["run_id"]
    assert second["attempts"] == 2 and second["input"] is None
    await wait_for_status(http, dlq_server, task_id, "alice", {"failed"})

    # With the goal edited, the reviewer answers: the task completes from the checkpoint.
    fixed = await http.post(
        f"/v1/dead-letters/{second['id']}/replay",
        json={"input": {"goal": f"{GOAL}\n{FIX}"}},
        headers=alice,
    )
    assert fixed.status_code == 200, fixed.text
    task = await wait_for_status(http, dlq_server, task_id, "alice", {"completed"})
    assert task["usage"]["model_calls"] == 3, task["usage"]  # coder, tester once; reviewer
    async with get_client(url=dlq_server.url, api_key=KEYS["alice"]) as sdk:
        history = await sdk.threads.get_history(task_id, limit=100)
    ids = [h["checkpoint"]["checkpoint_id"] for h in history]
    assert letter["checkpoint_id"] in ids
    coder_steps = [h for h in history if h["next"] == ["coder"]]
    assert len(coder_steps) == 1, "the coder ran once: the replays did not start over"

    bad = await http.post(
        f"/v1/dead-letters/{second['id']}/replay", json={"input": {"messages": []}}, headers=alice
    )
    assert bad.status_code == 422


def _cli(server: ApiServer, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(tmp, STRATEGOS_API_KEY=KEYS["alice"], STRATEGOS_API_URL=server.url)
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "dlq", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_cli_lists_and_resolves(
    http: httpx.AsyncClient, dlq_server: ApiServer, tmp_path: Path
) -> None:
    task_id = await failed_task(http, dlq_server)
    [letter] = await letters_of(http, dlq_server, task_id, 1)

    listed = await asyncio.to_thread(_cli, dlq_server, tmp_path, "list")
    assert listed.returncode == 0, listed.stderr
    assert letter["id"] in listed.stdout and task_id in listed.stdout, listed.stdout

    as_json = await asyncio.to_thread(_cli, dlq_server, tmp_path, "list", "--json")
    assert letter["id"] in [d["id"] for d in json.loads(as_json.stdout)["dead_letters"]]

    resolved = await asyncio.to_thread(
        _cli, dlq_server, tmp_path, "resolve", letter["id"], "--note", "not worth it"
    )
    assert resolved.returncode == 0, resolved.stderr
    view = await http.get(f"/v1/dead-letters/{letter['id']}", headers=dlq_server.headers("alice"))
    assert view.json()["status"] == "resolved" and view.json()["note"] == "not worth it"

    twice = await asyncio.to_thread(_cli, dlq_server, tmp_path, "resolve", letter["id"])
    assert twice.returncode == 1
    assert "dead_letter_closed" in twice.stderr

    missing = await asyncio.to_thread(
        _cli, dlq_server, tmp_path, "replay", "00000000-0000-0000-0000-000000000000"
    )
    assert missing.returncode == 1 and "not_found" in missing.stderr


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DeadLetterStore]:
    """Each backend, fresh (PostgreSQL in a schema of its own)."""
    backend: DeadLetterStore = (
        SqliteDeadLetterStore(tmp_path / "dlq.sqlite")
        if request.param == "sqlite"
        else PostgresDeadLetterStore(request.getfixturevalue("pg_url"))
    )
    await backend.setup()
    try:
        yield backend
    finally:
        await backend.close()


async def test_the_store_is_idempotent_per_run_and_scoped_by_tenant(
    store: DeadLetterStore,
) -> None:
    common: dict[str, Any] = {"task_id": "t1", "error": "boom", "checkpoint_id": "c1"}
    first = await store.record(tenant="alice", run_id="r1", input={"goal": "g"}, **common)
    same = await store.record(tenant="alice", run_id="r1", input=None, **common)
    assert same == first and first.attempts == 1 and first.input == {"goal": "g"}
    second = await store.record(tenant="alice", run_id="r2", input=None, **common)
    assert second.attempts == 2
    await store.record(tenant="bob", run_id="r3", input=None, **common)

    assert await store.get("bob", first.id) is None
    page = await store.list("alice", "open", limit=1, offset=0)
    rest = await store.list("alice", "open", limit=1, offset=1)
    assert {page[0].id, rest[0].id} == {first.id, second.id}
    assert not await store.transition("bob", first.id, from_status=("open",), to_status="resolved")
    assert await store.transition(
        "alice", first.id, from_status=("open",), to_status="resolved", note="n"
    )
    assert not await store.transition(
        "alice", first.id, from_status=("open",), to_status="replayed"
    )
    resolved = await store.get("alice", first.id)
    assert resolved is not None and resolved.status == "resolved" and resolved.note == "n"
    assert [d.id for d in await store.list("alice", "open", 10, 0)] == [second.id]
