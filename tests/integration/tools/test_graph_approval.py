"""A tool the policy holds for a human pauses the graph with `interrupt()` and runs once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command
from typing_extensions import TypedDict

from nodes.approvers import interrupt_approver
from nodes.inbox import request_of
from tools.builtin import default_registry
from tools.gateway import CallContext, ToolGateway
from tools.ledger import Ledger
from tools.workspaces import DirWorkspace


class State(TypedDict, total=False):
    observation: dict[str, Any]


def build(gateway: ToolGateway, out: Path) -> Any:
    async def act(state: State, config: RunnableConfig) -> State:
        observation = await gateway.call(
            "deliver_files",
            {"files": [{"path": "notes.md", "content": "hello\n"}], "summary": "notes"},
            CallContext(
                thread_id=str(config["configurable"]["thread_id"]),
                tool_call_id="deliver-notes",
                workspace=DirWorkspace.create(out),
                approver=interrupt_approver,
            ),
        )
        return {"observation": observation.model_dump(mode="json")}

    builder = StateGraph(State)
    builder.add_node("act", act)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    return builder.compile(checkpointer=InMemorySaver())


async def test_the_call_waits_for_a_human_then_runs_once(ledger: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "out"
    graph = build(ToolGateway(default_registry(), ledger), out)
    config: RunnableConfig = {"configurable": {"thread_id": "approve-me"}}

    paused = await graph.ainvoke({}, config)
    (question,) = paused["__interrupt__"]
    [inbox] = question.value  # Agent Inbox's shape: one HumanInterrupt, the request as its args
    assert inbox["action_request"]["action"] == "deliver_files"
    assert "notes.md" in inbox["description"]
    request = request_of(question.value)
    assert request is not None and request["kind"] == "tool_approval"
    assert request["tool"] == "deliver_files"
    assert request["args"]["files"][0]["path"] == "notes.md"
    assert "always requires approval" in str(request["reason"])
    assert not (out / "notes.md").exists()

    done = await graph.ainvoke(Command(resume={"approved": True, "comment": "ship it"}), config)
    assert done["observation"]["ok"] is True
    assert (out / "notes.md").read_text() == "hello\n"
    kinds = [e.kind for e in await ledger.events("approve-me", 0, 100)]
    assert kinds.count("ApprovalRequested") == 1
    assert kinds.count("ApprovalGiven") == 1
    assert kinds.count("ActivityCompleted") == 1
    given = await ledger.events("approve-me", 0, 10, kinds=["ApprovalGiven"])
    assert given[0].data["approver"] == "human" and given[0].data["comment"] == "ship it"


async def test_a_rejection_reaches_the_agent_and_nothing_runs(
    ledger: Ledger, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    graph = build(ToolGateway(default_registry(), ledger), out)
    config: RunnableConfig = {"configurable": {"thread_id": "reject-me"}}
    await graph.ainvoke({}, config)

    done = await graph.ainvoke(
        Command(resume={"approved": False, "comment": "not to that folder"}), config
    )
    observation = done["observation"]
    assert observation["ok"] is False and observation["error"]["code"] == "rejected"
    assert "not to that folder" in observation["error"]["message"]
    assert not (out / "notes.md").exists()
    kinds = [e.kind for e in await ledger.events("reject-me", 0, 100)]
    assert "ApprovalRejected" in kinds and "ActivityScheduled" not in kinds


async def test_a_malformed_answer_counts_as_a_rejection_that_says_why(
    ledger: Ledger, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    graph = build(ToolGateway(default_registry(), ledger), out)
    config: RunnableConfig = {"configurable": {"thread_id": "garbled"}}
    await graph.ainvoke({}, config)

    done = await graph.ainvoke(Command(resume={"approve": "yes please"}), config)
    assert done["observation"]["error"]["code"] == "rejected"
    assert "invalid approval answer" in done["observation"]["error"]["message"]
    assert not (out / "notes.md").exists()
