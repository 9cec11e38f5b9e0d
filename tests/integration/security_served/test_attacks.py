"""Hostile served inputs against `langgraph dev` and two Aegra instances (docs/security.md).

Every input a client sends a served run is hostile. Each attack of the "Served inputs" audit goes
through the native LangGraph API (`langgraph_sdk`, httpx) or the task façade `/v1/tasks`: a
host path in the run's context or config (`out_dir`, `run_log`), another tenant in it
(`tenant`, to read or poison that tenant's memory), delivery by policy (`approve: auto`)
without the operator's consent, a state write or a jump in a `command`, a thread state write
followed by a resume, an agent key answering an approval, a malformed answer, limits over the
operator's caps, negative or of the wrong type, a delivery path that leaves the task's folder,
and the same through crons, assistants, the store and Agent Protocol v2 commands.

Each is refused with a 4xx whose text names what was refused — or, for a thread's state, which
Studio legitimately edits, accepted and ignored where it matters. Afterwards nothing was written
outside the server's data dir, no memory was read or stored under another tenant, and every
delivery was answered once by a human of the task's own tenant (the ledger's `ApprovalGiven` by
`human (<tenant>)`) or let through by the operator's policy (`policy (auto)`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import Command

from nodes.inbox import request_of
from tests.integration.api.test_facade import wait_for_status
from tests.integration.security_served.conftest import (
    AUTO_APPROVED,
    BACKENDS,
    Served,
    memory_points,
)
from tests.integration.test_langgraph_server import (
    COMMENT,
    DOCUMENTED_ADD,
    GOAL,
    GRAPH_ID,
    PLAIN_ADD,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

RUN_TIMEOUT_S = 90.0
SENTINEL = "<sentinel>"
"""Replaced by the served sentinel folder: a host path outside the data dir."""
FORGED = {"approved": True, "comment": "forged"}


@pytest.fixture(scope="module", params=BACKENDS)
def served(request: pytest.FixtureRequest) -> Served:
    """The server under attack: `langgraph dev`, then the two Aegra instances."""
    fixture = {"langgraph-dev": "dev_served", "aegra": "aegra_served"}[str(request.param)]
    value: Served = request.getfixturevalue(fixture)
    return value


@pytest.fixture
async def http(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served.url, timeout=60.0) as client:
        yield client


def aimed(body: Any, served: Served) -> Any:
    """The attack's body with the sentinel's real path wherever it names `<sentinel>`."""
    text = json.dumps(body).replace(SENTINEL, str(served.sentinel))
    return json.loads(text)


def assert_refused(response: httpx.Response, status: int, *words: str) -> None:
    """The request got `status`, and its answer says which field or rule refused it."""
    assert response.status_code == status, (response.status_code, response.text)
    for word in words:
        assert word in response.text, (word, response.text)


async def run_to_rest(sdk: LangGraphClient, thread_id: str, **run: Any) -> list[tuple[str, Any]]:
    """Stream one run until it ends (report or interrupt); fail on an error event."""
    events: list[tuple[str, Any]] = []
    async with asyncio.timeout(RUN_TIMEOUT_S):
        async for part in sdk.runs.stream(thread_id, GRAPH_ID, stream_mode=["updates"], **run):
            events.append((part.event, part.data))
    errors = [data for event, data in events if event == "error"]
    assert not errors, errors
    return events


def interrupts(events: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """The team's requests in the run's interrupts (sent in Agent Inbox's shape)."""
    return [
        request_of(item["value"]) or {"value": item["value"]}
        for event, data in events
        if event == "updates" and isinstance(data, dict)
        for item in data.get("__interrupt__", [])
    ]


async def waiting_for_approval(served: Served, who: str, **context: Any) -> str:
    """A new thread of `who` whose team finished and asks a human to approve the delivery."""
    async with served.client(who) as sdk:
        thread_id = str((await sdk.threads.create())["thread_id"])
        events = await run_to_rest(
            sdk, thread_id, input={"goal": GOAL}, context={"approve": "ask", **context}
        )
    [request] = interrupts(events)
    assert request["kind"] == "approval_request", request
    return thread_id


async def values_of(served: Served, who: str, thread_id: str) -> dict[str, Any]:
    async with served.client(who) as sdk:
        values = (await sdk.threads.get_state(thread_id))["values"]
    assert isinstance(values, dict)
    return values


async def assert_every_delivery_answered(served: Served, owners: Mapping[str, str]) -> None:
    """Per thread: every ledgered call acted for its owner, and a delivery happened at most once,
    answered once by a human of the owner's tenant, or by the operator's policy for that tenant.
    """
    for thread_id, owner in owners.items():
        events = await served.events(thread_id)
        acted_for = {e.data["tenant_id"] for e in events if "tenant_id" in e.data}
        assert acted_for <= {owner}, (thread_id, acted_for)
        delivered = [
            e
            for e in events
            if e.kind == "ActivityCompleted" and e.data.get("tool") == "deliver_files"
        ]
        answers = [
            e.data["approver"] for e in events if e.kind == "ApprovalGiven" and "approver" in e.data
        ]
        assert len(delivered) <= 1, (thread_id, delivered)
        if delivered:
            by_policy = f"{owner}:deliver_files" in AUTO_APPROVED
            assert answers == ["policy (auto)" if by_policy else f"human ({owner})"], answers
        else:
            assert answers == [], (thread_id, answers)


async def runs_of(served: Served, who: str, thread_id: str) -> list[str]:
    async with served.client(who) as sdk:
        return [str(run["run_id"]) for run in await sdk.runs.list(thread_id)]


# --------------------------------------------------------------------------- run requests

REFUSED_RUNS: list[tuple[str, dict[str, Any], int, str]] = [
    ("out_dir", {"context": {"out_dir": SENTINEL}}, 403, "out_dir"),
    ("run_log", {"context": {"run_log": f"{SENTINEL}/runs.jsonl"}}, 403, "run_log"),
    ("configurable_out_dir", {"config": {"configurable": {"out_dir": SENTINEL}}}, 403, "out_dir"),
    ("other_tenant", {"context": {"tenant": "bob"}}, 403, "tenant"),
    ("configurable_tenant", {"config": {"configurable": {"tenant": "bob"}}}, 403, "tenant"),
    ("injected_sandbox", {"context": {"sandbox": {"kind": "none"}}}, 403, "sandbox"),
    ("auto_approval", {"context": {"approve": "auto"}}, 403, "approve"),
    ("approve_as_list", {"context": {"approve": ["auto"]}}, 422, "approve"),
    ("unknown_option", {"context": {"workdir": "/"}}, 422, "workdir"),
    ("max_steps_over_cap", {"context": {"max_steps": 10**9}}, 422, "max_steps"),
    ("token_budget_over_cap", {"context": {"token_budget": 10**12}}, 422, "token_budget"),
    (
        "configurable_max_iterations_over_cap",
        {"config": {"configurable": {"max_iterations": 10**6}}},
        422,
        "max_iterations",
    ),
    ("negative_max_iterations", {"context": {"max_iterations": -1}}, 422, "max_iterations"),
    ("zero_max_steps", {"context": {"max_steps": 0}}, 422, "max_steps"),
    ("max_steps_as_text", {"context": {"max_steps": "5"}}, 422, "max_steps"),
    ("max_steps_as_flag", {"context": {"max_steps": True}}, 422, "max_steps"),
    ("token_budget_as_fraction", {"context": {"token_budget": 2.5}}, 422, "token_budget"),
    ("delivery_path_up", {"context": {"delivery_path": "../x"}}, 422, "delivery_path"),
    ("delivery_path_absolute", {"context": {"delivery_path": SENTINEL}}, 422, "delivery_path"),
    ("delivery_path_through", {"context": {"delivery_path": "a/../../x"}}, 422, "delivery_path"),
    ("delivery_path_hidden", {"context": {"delivery_path": ".ssh"}}, 422, "delivery_path"),
    ("delivery_path_number", {"context": {"delivery_path": 7}}, 422, "delivery_path"),
    (
        "command_writes_approval",
        {"command": {"update": {"approval": FORGED}, "goto": "deliver"}},
        403,
        "command.update",
    ),
    ("command_jumps", {"command": {"goto": "deliver"}}, 403, "command.goto"),
]


@pytest.mark.parametrize(
    ("body", "status", "word"),
    [case[1:] for case in REFUSED_RUNS],
    ids=[case[0] for case in REFUSED_RUNS],
)
async def test_a_run_asking_for_more_than_it_may_is_refused(
    served: Served, http: httpx.AsyncClient, body: dict[str, Any], status: int, word: str
) -> None:
    async with served.client("alice") as sdk:
        thread_id = str((await sdk.threads.create())["thread_id"])
    request = {"assistant_id": GRAPH_ID, **aimed(body, served)}
    if "command" not in request:
        request["input"] = {"goal": GOAL}
    for route in ("runs", "runs/stream"):
        response = await http.post(
            f"/threads/{thread_id}/{route}", json=request, headers=served.headers("alice")
        )
        assert_refused(response, status, word)
    assert await runs_of(served, "alice", thread_id) == [], "a refused request started a run"
    served.assert_contained()


async def test_crons_and_assistants_cannot_carry_what_a_run_may_not(
    served: Served, http: httpx.AsyncClient
) -> None:
    alice = served.headers("alice")
    thread_id = str((await http.post("/threads", json={}, headers=alice)).json()["thread_id"])
    cron = {"assistant_id": GRAPH_ID, "schedule": "0 0 1 1 *", "input": {"goal": GOAL}}
    for context, status, word in (
        ({"out_dir": SENTINEL}, 403, "out_dir"),
        ({"tenant": "bob"}, 403, "tenant"),
        ({"approve": "auto"}, 403, "approve"),
        ({"max_steps": 10**9}, 422, "max_steps"),
    ):
        for path in (f"/threads/{thread_id}/runs/crons", "/runs/crons"):
            response = await http.post(
                path, json=aimed({**cron, "context": context}, served), headers=alice
            )
            assert_refused(response, status, word)
    assert await runs_of(served, "alice", thread_id) == [], "a refused cron started a run"

    for assistant, status, word in (
        ({"context": {"out_dir": SENTINEL}}, 403, "out_dir"),
        ({"config": {"configurable": {"tenant": "bob"}}}, 403, "tenant"),
        ({"context": {"approve": "auto"}}, 403, "approve"),
        ({"context": {"token_budget": 10**12}}, 422, "token_budget"),
        ({"context": {"delivery_path": "../x"}}, 422, "delivery_path"),
    ):
        body = aimed({"graph_id": GRAPH_ID, **assistant}, served)
        response = await http.post("/assistants", json=body, headers=alice)
        assert_refused(response, status, word)
    served.assert_contained()


async def test_store_namespaces_belong_to_their_tenant(
    served: Served, http: httpx.AsyncClient
) -> None:
    alice, bob = served.headers("alice"), served.headers("bob")
    item = {"namespace": ["alice", "notes"], "key": "plan", "value": {"text": "alice's"}}
    assert (await http.put("/store/items", json=item, headers=alice)).status_code in (200, 204)
    poison = {**item, "value": {"text": "bob was here"}}
    assert_refused(await http.put("/store/items", json=poison, headers=bob), 403, "tenant")
    read = {"namespace": "alice.notes", "key": "plan"}
    assert_refused(await http.get("/store/items", params=read, headers=bob), 403, "tenant")
    mine = await http.get("/store/items", params=read, headers=alice)
    assert mine.status_code == 200 and mine.json()["value"] == {"text": "alice's"}, mine.text


# --------------------------------------------------------------------------- the façade

REFUSED_TASKS: list[tuple[str, dict[str, Any], int, str]] = [
    ("out_dir", {"options": {"out_dir": SENTINEL}}, 422, "out_dir"),
    ("run_log", {"options": {"run_log": f"{SENTINEL}/runs.jsonl"}}, 422, "run_log"),
    ("tenant", {"options": {"tenant": "bob"}}, 422, "tenant"),
    ("raw_context", {"context": {"out_dir": SENTINEL}}, 422, "context"),
    ("auto_approval", {"options": {"approve": "auto"}}, 403, "approve"),
    ("max_steps_over_cap", {"options": {"max_steps": 10**9}}, 422, "max_steps"),
    ("token_budget_over_cap", {"options": {"token_budget": 600_000}}, 422, "token_budget"),
    ("negative_max_iterations", {"options": {"max_iterations": -1}}, 422, "max_iterations"),
    ("max_steps_as_text", {"options": {"max_steps": "many"}}, 422, "max_steps"),
]


async def test_the_facade_refuses_what_a_run_would_refuse(
    served: Served, http: httpx.AsyncClient
) -> None:
    alice = served.headers("alice")
    before = (await http.get("/v1/tasks", headers=alice)).json()["tasks"]
    for name, body, status, word in REFUSED_TASKS:
        response = await http.post(
            "/v1/tasks", json={"goal": GOAL, **aimed(body, served)}, headers=alice
        )
        assert response.status_code == status, (name, response.text)
        assert word in response.text, (name, response.text)
    after = (await http.get("/v1/tasks", headers=alice)).json()["tasks"]
    assert after == before, "a refused request created a task"
    served.assert_contained()


async def test_an_agent_key_submits_and_watches_but_cannot_approve(
    served: Served, http: httpx.AsyncClient
) -> None:
    # A header naming another tenant changes nothing: the key says who calls.
    created = await http.post(
        "/v1/tasks",
        json={"goal": GOAL},
        headers={**served.headers("agent"), "x-tenant-id": "bob"},
    )
    assert created.status_code == 201, (created.text, served.tail())
    task_id = created.json()["task_id"]
    waiting = await wait_for_status(http, served.api, task_id, "alice", {"waiting_for_approval"})
    assert waiting["pending_approval"]["files"] == ["solution.py"]
    bobs = await http.get(f"/v1/tasks/{task_id}", headers=served.headers("bob"))
    assert bobs.status_code == 404, bobs.text

    watched = await http.get(f"/v1/tasks/{task_id}", headers=served.headers("agent"))
    assert watched.status_code == 200 and watched.json()["status"] == "waiting_for_approval"
    answer = {"approved": True, "comment": "the agent says yes"}
    refused = await http.post(
        f"/v1/tasks/{task_id}/approve", json=answer, headers=served.headers("agent")
    )
    assert_refused(refused, 403, "not approve")
    async with served.client("agent") as agent:
        with pytest.raises(httpx.HTTPStatusError) as native:
            await agent.runs.create(task_id, GRAPH_ID, command={"resume": answer})
    assert_refused(native.value.response, 403, "not approve")
    malformed = await http.post(
        f"/v1/tasks/{task_id}/approve", json={"approved": "yes"}, headers=served.headers("alice")
    )
    assert malformed.status_code == 422, malformed.text

    # None of that was an answer: the task still waits, and only alice's approval delivers.
    assert (await values_of(served, "alice", task_id)).get("delivered") is None
    approved = await http.post(
        f"/v1/tasks/{task_id}/approve",
        json={"approved": True, "comment": "ship it"},
        headers=served.headers("alice"),
    )
    assert approved.status_code == 200, approved.text
    done = await wait_for_status(http, served.api, task_id, "alice", {"completed", "failed"})
    assert done["result"]["status"] == "delivered", done
    assert (served.delivered(task_id) / "solution.py").read_text() == PLAIN_ADD
    answered = [e.data for e in await served.events(task_id, ["ApprovalGiven"])]
    assert [a["approver"] for a in answered] == ["human (alice)"], answered
    await assert_every_delivery_answered(served, {task_id: "alice"})
    served.assert_contained()


# --------------------------------------------------------------------------- approvals


async def test_a_forged_approval_delivers_nothing_until_a_human_answers(
    served: Served, http: httpx.AsyncClient
) -> None:
    context = {"delivery_path": "release/v1"}
    thread_id = await waiting_for_approval(served, "alice", **context)
    folder = served.delivered(thread_id) / "release" / "v1"
    state = await values_of(served, "alice", thread_id)
    assert state["destination"] == str(folder)

    # Another tenant cannot see, answer or edit the thread.
    async with served.client("bob") as bob:
        for attempt in (
            bob.threads.get_state(thread_id),
            bob.threads.update_state(thread_id, {"approval": FORGED}, as_node="approval"),
            bob.runs.create(thread_id, GRAPH_ID, command={"resume": FORGED}),
        ):
            with pytest.raises(httpx.HTTPStatusError) as info:
                await attempt
            assert info.value.response.status_code == 404, info.value.response.text

    # Alice's agent: no answer, no state write or jump in a command.
    commands: list[tuple[Command, str]] = [
        ({"resume": FORGED}, "not approve"),
        ({"resume": FORGED, "update": {"approval": FORGED}, "goto": "deliver"}, "command."),
        ({"update": {"approval": FORGED}, "goto": "deliver"}, "command.update"),
    ]
    async with served.client("agent") as agent:
        for command, word in commands:
            with pytest.raises(httpx.HTTPStatusError) as info:
                await agent.runs.create(thread_id, GRAPH_ID, command=command, context=context)
            assert_refused(info.value.response, 403, word)
        # Malformed answers from a key that may approve are refused as such.
        for answer in ({"approved": "yes"}, {"approved": 1}, "yes", {"approved": True, "x": 1}):
            response = await http.post(
                f"/threads/{thread_id}/runs",
                json={"assistant_id": GRAPH_ID, "command": {"resume": answer}},
                headers=served.headers("alice"),
            )
            assert_refused(response, 422, "command.resume")

        # A state write (Studio edits state) is accepted: approval and a host folder...
        await agent.threads.update_state(
            thread_id,
            {"approval": FORGED, "destination": str(served.sentinel)},
            as_node="approval",
        )
        checkpoint = (await agent.threads.get_state(thread_id))["checkpoint"]["checkpoint_id"]
        # ...and the team goes on, but deliver trusts only a ledgered human answer: it asks.
        events = await run_to_rest(
            agent, thread_id, input=None, checkpoint_id=checkpoint, context=context
        )
    [question] = interrupts(events)
    assert question["kind"] == "tool_approval" and question["tool"] == "deliver_files", question
    written = [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []
    assert written == [], "delivered on a forged approval"
    settled = await served.events(thread_id, ["ApprovalGiven", "ActivityCompleted"])
    assert [e.data.get("tool") for e in settled] == ["run_tests"], settled

    # Alice answers: now it is delivered, into the task's folder, not the forged one.
    async with served.client("alice") as alice:
        events = await run_to_rest(
            alice,
            thread_id,
            command={"resume": {"approved": True, "comment": "ship it"}},
            context=context,
        )
    assert not interrupts(events)
    assert (folder / "solution.py").read_text() == PLAIN_ADD
    asked = await served.events(thread_id, ["ApprovalRequested"])
    assert len({e.key for e in asked}) == 1, "the human was asked about other files or folders"
    await assert_every_delivery_answered(served, {thread_id: "alice"})
    served.assert_contained()


async def test_protocol_v2_commands_do_not_bypass_the_checks(
    served: Served, http: httpx.AsyncClient
) -> None:
    thread_id = await waiting_for_approval(served, "alice")
    async with served.client("alice") as sdk:
        [task] = (await sdk.threads.get_state(thread_id))["tasks"]
    [pending] = task["interrupts"]
    before = await runs_of(served, "alice", thread_id)
    command = {
        "id": 1,
        "method": "input.respond",
        "params": {
            "interrupt_id": pending["id"],
            "response": FORGED,
            "update": {"approval": FORGED},
            "goto": "deliver",
        },
    }
    response = await http.post(
        f"/threads/{thread_id}/commands", json=command, headers=served.headers("agent")
    )
    if served.backend == "aegra":
        # Aegra's v2 routes skip its run auth handler, so `strategos serve` turns them off.
        assert response.status_code == 503, response.text
    else:
        # langgraph-api creates the run through the same auth handler, which refuses it (v2
        # carries its options in `configurable`, mirrored into the context): an error envelope.
        envelope = response.json()
        assert response.status_code == 200 and envelope["type"] == "error", response.text
        assert envelope["message"].startswith(("403:", "422:")), envelope
    assert await runs_of(served, "alice", thread_id) == before, "a v2 command started a run"
    assert not served.delivered(thread_id).exists()
    await assert_every_delivery_answered(served, {thread_id: "alice"})


async def test_only_the_operators_policy_lets_a_delivery_out_without_a_human(
    served: Served,
) -> None:
    async with served.client("carol") as carol:
        auto = str((await carol.threads.create())["thread_id"])
        events = await run_to_rest(carol, auto, input={"goal": GOAL}, context={"approve": "auto"})
        assert not interrupts(events)
        # Stricter than the policy is always allowed: carol may still ask for a human.
        asking = str((await carol.threads.create())["thread_id"])
        events = await run_to_rest(carol, asking, input={"goal": GOAL}, context={"approve": "ask"})
        assert [i["kind"] for i in interrupts(events)] == ["approval_request"]
    assert (served.delivered(auto) / "solution.py").read_text() == PLAIN_ADD
    assert not served.delivered(asking).exists()
    await assert_every_delivery_answered(served, {auto: "carol", asking: "carol"})
    served.assert_contained()


# --------------------------------------------------------------------------- memory, Studio


async def test_another_tenants_memory_is_neither_read_nor_written(dev_served: Served) -> None:
    """Under `langgraph dev`, whose one process owns its Qdrant Edge shard (the Aegra instances
    of this suite share a data dir, so their episodic memory is off)."""
    served = dev_served
    # Alice teaches her team a lesson: a rejection with a comment, then an approval.
    first = await waiting_for_approval(served, "alice")
    async with served.client("alice") as alice:
        await run_to_rest(alice, first, command={"resume": {"approved": False, "comment": COMMENT}})
        await run_to_rest(alice, first, command={"resume": {"approved": True, "comment": ""}})
    assert (served.delivered(first) / "solution.py").read_text() == DOCUMENTED_ADD

    # Bob cannot ask for alice's memories (or store his under her name)...
    async with served.client("bob") as bob:
        thread_id = str((await bob.threads.create())["thread_id"])
        with pytest.raises(httpx.HTTPStatusError) as info:
            await bob.runs.create(
                thread_id, GRAPH_ID, input={"goal": GOAL}, context={"tenant": "alice"}
            )
        assert_refused(info.value.response, 403, "tenant")
    # ...and his own task on the same goal recalls none of them; his lesson stays his.
    second = await waiting_for_approval(served, "bob")
    state = await values_of(served, "bob", second)
    assert state["lessons"] == [] and state["files"] == {"solution.py": PLAIN_ADD}
    bobs_comment = f"{COMMENT} (bob)"
    async with served.client("bob") as bob:
        await run_to_rest(
            bob, second, command={"resume": {"approved": False, "comment": bobs_comment}}
        )
        await run_to_rest(bob, second, command={"resume": {"approved": True, "comment": ""}})

    # Alice's next task on the goal recalls her lesson, and only hers.
    third = await waiting_for_approval(served, "alice")
    lessons = (await values_of(served, "alice", third))["lessons"]
    assert any(COMMENT in lesson for lesson in lessons), lessons
    assert not any("(bob)" in lesson for lesson in lessons), lessons

    points = memory_points(served)
    assert {p["tenant"] for p in points} == {"alice", "bob"}, points
    assert {p["tenant"] for p in points if "(bob)" in p["text"]} == {"bob"}
    assert {p["task_id"] for p in points if p["tenant"] == "alice"} == {first}
    await assert_every_delivery_answered(served, {first: "alice", second: "bob", third: "alice"})
    served.assert_contained()


async def test_studio_scheme_is_a_tenant_of_its_own(
    served: Served, http: httpx.AsyncClient
) -> None:
    """`langgraph dev` lets Studio in without a key (`x-auth-scheme: langsmith`), as a user of
    its own: it sees no tenant's threads, answers no approval and reads no tenant's store.
    Aegra has no such scheme: without a key, the request is unauthenticated."""
    thread_id = await waiting_for_approval(served, "alice")
    studio = {"x-auth-scheme": "langsmith"}
    seen = await http.get(f"/threads/{thread_id}/state", headers=studio)
    if served.backend == "aegra":
        assert seen.status_code == 401, seen.text
        return
    assert seen.status_code == 404, seen.text
    answer = {"assistant_id": GRAPH_ID, "command": {"resume": FORGED}}
    resumed = await http.post(f"/threads/{thread_id}/runs", json=answer, headers=studio)
    assert resumed.status_code in (403, 404), resumed.text
    read = {"namespace": "alice.notes", "key": "plan"}
    assert_refused(await http.get("/store/items", params=read, headers=studio), 403, "tenant")
    await assert_every_delivery_answered(served, {thread_id: "alice"})
