"""What Agent Chat UI, Agent Inbox and LangGraph Studio do to a served team, through the SDK.

The same `langgraph dev` server as `test_langgraph_server` (the repo's langgraph.json, a scripted
model): a chat message starts a task, the approval arrives as one `HumanInterrupt` and an inbox
`accept` delivers; Studio edits a paused thread's state and forks from an earlier checkpoint.
An approval is bound to the files it showed: files edited after it are never delivered unasked.
"""

from __future__ import annotations

from typing import Any

import pytest
from langgraph_sdk.client import LangGraphClient

from tests.integration.test_langgraph_server import (
    GOAL,
    GRAPH_ID,
    PLAIN_ADD,
    Server,
    client,
    inbox_question,
    interrupts,
    node_updates,
    server,
    stream_run,
    thread_id,
    values_of,
)

__all__ = ["client", "server", "thread_id"]  # the module's fixtures, shared

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ACCEPT = [{"type": "accept", "args": None}]
EVIL_ADD = 'import os\n\n\ndef add(a, b):\n    os.remove("data")\n    return a + b\n'


async def paused_on_chat(client: LangGraphClient, server: Server, thread_id: str) -> dict[str, Any]:
    """Start the task as Agent Chat UI does and return the approval question it pauses on."""
    chat = {"messages": [{"type": "human", "content": [{"type": "text", "text": GOAL}]}]}
    events = await stream_run(client, server, thread_id, input=chat)
    [value] = interrupts(events)
    return inbox_question(value)


async def delivered_files(server: Server, thread_id: str) -> dict[str, str]:
    folder = server.delivered(thread_id)
    return {p.name: p.read_text() for p in folder.glob("*.py")} if folder.exists() else {}


async def test_a_chat_starts_the_task_and_an_inbox_accept_delivers(
    client: LangGraphClient, server: Server, thread_id: str
) -> None:
    question = await paused_on_chat(client, server, thread_id)
    request = question["action_request"]["args"]
    assert question["action_request"]["action"] == "deliver"
    assert request["contents"] == {"solution.py": PLAIN_ADD} and request["failing"] == []
    assert request["destination"] == str(server.delivered(thread_id))
    assert PLAIN_ADD in question["description"]
    assert values_of(await client.threads.get_state(thread_id))["goal"] == GOAL

    done = await stream_run(client, server, thread_id, command={"resume": ACCEPT})
    assert not interrupts(done)
    assert await delivered_files(server, thread_id) == {"solution.py": PLAIN_ADD}
    values = values_of(await client.threads.get_state(thread_id))
    assert values["report"]["status"] == "delivered"
    reply = values["messages"][-1]
    assert reply["type"] == "ai" and reply["content"].startswith("deliver: wrote solution.py")
    assert PLAIN_ADD.strip() in reply["content"]  # the chat's last answer shows the code
    given = await server.events(thread_id, ["ApprovalGiven"])
    assert [e.data.get("approver") for e in given] == ["human (local)"]


async def test_a_bad_chat_input_fails_the_run_with_a_clear_error(
    client: LangGraphClient, server: Server, thread_id: str
) -> None:
    chat = {"messages": [{"type": "human", "content": "   "}]}
    events = [
        (part.event, part.data)
        async for part in client.runs.stream(
            thread_id, GRAPH_ID, input=chat, context=server.context(), stream_mode="updates"
        )
    ]
    errors = [data for event, data in events if event == "error"]
    assert errors and "the last human message has no text" in str(errors[0]), events
    assert not server.delivered(thread_id).exists()


async def test_editing_the_goal_at_the_pause_asks_again_about_the_edited_task(
    client: LangGraphClient, server: Server, thread_id: str
) -> None:
    await paused_on_chat(client, server, thread_id)
    edited = GOAL + "\nNote: keep the signature."
    await client.threads.update_state(thread_id, {"goal": edited})
    state = await client.threads.get_state(thread_id)
    assert state["next"] == ["approval"], "the edit keeps the team on its way to the approval"
    assert values_of(state)["goal"] == edited

    again = await stream_run(client, server, thread_id, input=None)
    question = inbox_question(interrupts(again)[0])
    assert question["action_request"]["args"]["files"] == ["solution.py"]
    assert not server.delivered(thread_id).exists(), "an edit is no approval"

    await stream_run(client, server, thread_id, command={"resume": ACCEPT})
    assert await delivered_files(server, thread_id) == {"solution.py": PLAIN_ADD}
    values = values_of(await client.threads.get_state(thread_id))
    assert values["goal"] == edited and values["report"]["status"] == "delivered"


async def test_files_edited_after_the_approval_are_not_delivered_unasked(
    client: LangGraphClient, server: Server, thread_id: str
) -> None:
    await paused_on_chat(client, server, thread_id)
    # Studio: accept, but stop before delivery, then edit the code the human approved.
    await stream_run(
        client, server, thread_id, command={"resume": ACCEPT}, interrupt_before=["deliver"]
    )
    state = await client.threads.get_state(thread_id)
    assert state["next"] == ["deliver"] and values_of(state)["approval"]["approved"] is True
    candidate = {"files": {"solution.py": EVIL_ADD}, "iteration": 9, "score": [99, 99]}
    await client.threads.update_state(
        thread_id, {"files": {"solution.py": EVIL_ADD}, "best": candidate}
    )
    assert (await client.threads.get_state(thread_id))["next"] == ["deliver"]

    # The approval was for other files: delivery asks a human again, showing the edited code.
    asked = await stream_run(client, server, thread_id, input=None)
    question = inbox_question(interrupts(asked)[0])
    assert question["action_request"]["action"] == "deliver_files"
    assert question["action_request"]["args"]["kind"] == "tool_approval"
    assert 'os.remove(\\"data\\")' in question["description"]
    assert await delivered_files(server, thread_id) == {}, "delivered files nobody approved"

    await stream_run(client, server, thread_id, command={"resume": [{"type": "ignore"}]})
    assert await delivered_files(server, thread_id) == {}
    report = values_of(await client.threads.get_state(thread_id))["report"]
    assert report["status"] == "not_delivered"


async def test_a_fork_from_an_earlier_checkpoint_runs_from_there_and_keeps_the_history(
    client: LangGraphClient, server: Server, thread_id: str
) -> None:
    await paused_on_chat(client, server, thread_id)
    history = await client.threads.get_history(thread_id, limit=100)
    [before_review] = [h for h in history if h["next"] == ["reviewer"]]
    latest = history[0]

    fork = await stream_run(
        client,
        server,
        thread_id,
        input=None,
        checkpoint_id=before_review["checkpoint"]["checkpoint_id"],
    )
    assert not node_updates(fork, "coder"), "the fork re-ran steps before its checkpoint"
    assert node_updates(fork, "reviewer"), "the fork did not run from its checkpoint"
    inbox_question(interrupts(fork)[0])

    # The original branch is intact: its checkpoints and state are still there as they were.
    kept = await client.threads.get_state(thread_id, checkpoint=latest["checkpoint"])
    assert kept["values"] == latest["values"] and kept["next"] == ["approval"]
    after = await client.threads.get_history(thread_id, limit=200)
    ids = {h["checkpoint"]["checkpoint_id"] for h in after}
    assert {h["checkpoint"]["checkpoint_id"] for h in history} <= ids
    forked = after[0]
    assert forked["checkpoint"]["checkpoint_id"] != latest["checkpoint"]["checkpoint_id"]
    assert forked["next"] == ["approval"]
