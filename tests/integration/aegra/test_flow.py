"""The coding team served by Aegra, driven through the official LangGraph SDK.

The same approval flow as `tests/integration/test_langgraph_server.py` under `langgraph dev`:
stream to the approval interrupt, reject with a comment, approve, check history and the report.
The runs are started on one instance and resumed on the other, since both share the database.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError

from tests.integration.aegra.conftest import Deployment
from tests.integration.test_langgraph_server import (
    COMMENT,
    DOCUMENTED_ADD,
    GOAL,
    GRAPH_ID,
    PLAIN_ADD,
    Server,
    assert_ledgered,
    assert_waiting_for_approval,
    custom,
    interrupts,
    node_updates,
    stream_run,
    values_of,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def as_server(deployment: Deployment, which: str) -> Server:
    """The `langgraph dev` test's Server record, so its helpers work unchanged."""
    instance = deployment.a if which == "a" else deployment.b
    return Server(
        url=instance.url,
        data_dir=deployment.tmp / "data",
        log=instance.log,
        ledger_url=deployment.database_url,
    )


@pytest.fixture
async def clients(aegra: Deployment) -> AsyncIterator[tuple[LangGraphClient, LangGraphClient]]:
    async with get_client(url=aegra.a.url) as a, get_client(url=aegra.b.url) as b:
        yield a, b


async def test_reject_then_approve_across_instances(
    aegra: Deployment, clients: tuple[LangGraphClient, LangGraphClient]
) -> None:
    client_a, client_b = clients
    server_a = as_server(aegra, "a")
    server_b = as_server(aegra, "b")
    thread_id = (await client_a.threads.create())["thread_id"]

    # 1. Through instance a: the team works until it asks a human to approve the delivery.
    first = await stream_run(client_a, server_a, thread_id, input={"goal": GOAL})
    roles = {event.get("role") for event in custom(first)}
    assert {"supervisor", "coder", "tester", "reviewer"} <= roles, roles
    assert [u["files"] for u in node_updates(first, "coder")] == [{"solution.py": PLAIN_ADD}]
    state = await assert_waiting_for_approval(client_a, server_a, thread_id, first)
    assert values_of(state)["files"] == {"solution.py": PLAIN_ADD}

    # 2. Through instance b: a rejection sends the comment back to the coder; the team asks again.
    second = await stream_run(
        client_b, server_b, thread_id, command={"resume": {"approved": False, "comment": COMMENT}}
    )
    assert {"role": "approval", "event": "rejected", "comment": COMMENT} in custom(second)
    assert [u["files"] for u in node_updates(second, "coder")] == [{"solution.py": DOCUMENTED_ADD}]
    state = await assert_waiting_for_approval(client_b, server_b, thread_id, second)
    assert values_of(state)["iteration"] == 2

    # 3. Approval delivers the reworked version into the task's own folder.
    third = await stream_run(
        client_a, server_a, thread_id, command={"resume": {"approved": True, "comment": "ship it"}}
    )
    assert not interrupts(third)
    assert {"role": "deliver", "event": "delivered", "files": ["solution.py"]} in custom(third)

    state = await client_b.threads.get_state(thread_id)
    assert state["next"] == []
    report = values_of(state)["report"]
    assert report["status"] == "delivered"
    assert report["approval"] == {"approved": True, "comment": "ship it"}
    assert report["iterations"] == 2
    delivered = server_a.delivered(thread_id)
    assert (delivered / "solution.py").read_text() == DOCUMENTED_ADD
    assert json.loads((delivered / "REPORT.json").read_text()) == report
    await assert_ledgered(server_a, thread_id, answers=["ApprovalRejected", "ApprovalGiven"])

    history = await client_a.threads.get_history(thread_id, limit=100)
    assert [h["next"] for h in history].count(["approval"]) == 2
    assert history[0]["next"] == []
    assert history[-1]["next"] == ["__start__"]

    runs = await client_b.runs.list(thread_id)
    assert sorted(r["status"] for r in runs) == ["interrupted", "interrupted", "success"]


async def test_second_run_on_a_busy_thread_is_rejected(
    aegra: Deployment, clients: tuple[LangGraphClient, LangGraphClient]
) -> None:
    client_a, client_b = clients
    thread_id = (await client_a.threads.create())["thread_id"]
    context = {"approve": "auto"}  # the deployment's policy (STRATEGOS_AUTO_APPROVE) allows it
    first = await client_a.runs.create(thread_id, GRAPH_ID, input={"goal": GOAL}, context=context)

    # On either instance, whatever strategy is asked for: one writer per thread.
    for client, strategy in ((client_a, "reject"), (client_b, "enqueue"), (client_b, None)):
        with pytest.raises(ConflictError):
            await client.runs.create(
                thread_id,
                GRAPH_ID,
                input={"goal": GOAL},
                context=context,
                multitask_strategy=strategy,  # type: ignore[arg-type]
            )

    async with asyncio.timeout(120):
        while (await client_a.runs.get(thread_id, first["run_id"]))["status"] in (
            "pending",
            "running",
        ):
            await asyncio.sleep(0.25)
    assert [r["run_id"] for r in await client_b.runs.list(thread_id)] == [first["run_id"]]
    # Once idle, the thread takes a new run again.
    again = await client_b.runs.create(thread_id, GRAPH_ID, input={"goal": GOAL}, context=context)
    assert again["status"] == "pending"


async def test_racing_submissions_start_one_run(
    aegra: Deployment, clients: tuple[LangGraphClient, LangGraphClient]
) -> None:
    client_a, client_b = clients
    thread_id = (await client_a.threads.create())["thread_id"]
    context = {"approve": "auto"}
    outcomes = await asyncio.gather(
        *(
            client.runs.create(thread_id, GRAPH_ID, input={"goal": GOAL}, context=context)
            for client in (client_a, client_b) * 4
        ),
        return_exceptions=True,
    )
    started = [o for o in outcomes if isinstance(o, dict)]
    assert len(started) == 1, outcomes
    assert all(isinstance(o, ConflictError) for o in outcomes if not isinstance(o, dict))
