"""The ReAct worker on a scripted model: the real graph, gateway, ledger and sandbox.

Each test drives the loop the way a model would and checks what a user of the worker sees:
the files it leaves, how the loop ended and why, and what the model was shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langgraph.checkpoint.memory import InMemorySaver

from graphs.context import TeamContext
from service.llm.scripted import ScriptedChatModel
from service.settings import Settings
from service.team_deps import compile_react
from tests.conftest import scripted
from tests.integration.react.scripted_loop import FIXED, GOAL, PACKAGE, call, fixing_rules
from tests.integration.test_team_scripted import gateway_in
from tools.gateway import ToolGateway


async def run_worker(
    model: ScriptedChatModel, tmp_path: Path, settings: Settings | None = None, **options: Any
) -> tuple[dict[str, Any], ToolGateway]:
    gateway = await gateway_in(tmp_path)
    ctx = TeamContext(model=model, gateway=gateway, use_memory=False, **options)
    graph = compile_react(InMemorySaver(), settings)
    config: dict[str, Any] = {"configurable": {"thread_id": "react-t"}, "recursion_limit": 200}
    state = await graph.ainvoke({"goal": GOAL, "files": dict(PACKAGE)}, config, context=ctx)
    return state, gateway


def tool_messages(state: dict[str, Any]) -> list[ToolMessage]:
    return [m for m in state["messages"] if isinstance(m, ToolMessage)]


@pytest.mark.parametrize("decoding", ["native", "json_schema"])
async def test_the_worker_reads_patches_tests_and_finishes(tmp_path: Path, decoding: str) -> None:
    """Either way of decoding a call (the bundled server's is `json_schema`) runs the same loop."""
    model = scripted(fixing_rules())
    model.record = True
    settings = Settings(tool_calls=decoding)  # type: ignore[arg-type]
    state, gateway = await run_worker(model, tmp_path, settings)

    assert state["outcome"] == {
        "status": "finished",
        "reason": "the agent finished",
        "summary": "Fixed add: it subtracted.",
    }
    assert state["files"]["calc.py"] == FIXED
    assert [m.name for m in tool_messages(state)] == [
        "read_file",
        "apply_patch",
        "run_tests",
        "finish",
    ]
    assert '"passed": 1, "failed": 0' in str(tool_messages(state)[2].content)
    assert state["steps"] == 4 and len(state["turns"]) == 4
    ran = await gateway.ledger.events("react-t", 0, 100, kinds=["ActivityScheduled"])
    assert sorted(e.data.get("tool") for e in ran) == ["apply_patch", "read_file", "run_tests"]
    listed = "- apply_patch(" in model.recorded[0][0]  # the tools, in the system message
    assert listed == (decoding == "json_schema")


async def test_invalid_arguments_come_back_from_the_gateway_and_the_loop_goes_on(
    tmp_path: Path,
) -> None:
    rules = [
        {
            "role": "react",
            "when": ["Invalid arguments for read_file"],
            "tool_calls": [call("finish", summary="gave up")],
        },
        {"role": "react", "tool_calls": [call("read_file", file="calc.py")]},
    ]
    state, _ = await run_worker(scripted(rules), tmp_path)

    first = tool_messages(state)[0]
    assert first.status == "error" and "Invalid arguments for read_file" in str(first.content)
    assert "path" in str(first.content)  # the model is told which field is required
    assert state["outcome"]["status"] == "finished" and state["steps"] == 2


async def test_the_step_limit_stops_the_loop_with_a_stated_reason(tmp_path: Path) -> None:
    rules = [{"role": "react", "tool_calls": [call("list_files")]}]
    model = scripted(rules)
    state, _ = await run_worker(model, tmp_path, max_steps=3)

    assert state["outcome"]["status"] == "stopped"
    assert state["outcome"]["reason"] == "step limit reached: 3 model turns (max_steps 3)"
    assert model.calls == 3 and state["steps"] == 3
    assert state["messages"][-1].content.startswith("Stopped: step limit reached")


async def test_a_tool_not_offered_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    rules = [
        {
            "role": "react",
            "when": ["There is no tool 'deliver_files' here"],
            "tool_calls": [call("finish", summary="cannot deliver from here")],
        },
        {
            "role": "react",
            "tool_calls": [call("deliver_files", files=[], summary="ship it")],
        },
    ]
    state, gateway = await run_worker(scripted(rules), tmp_path)

    assert state["outcome"]["status"] == "finished"
    assert await gateway.ledger.events("react-t", 0, 100) == []


async def test_a_repeating_agent_is_sent_back_once_then_stopped(tmp_path: Path) -> None:
    rules = [{"role": "react", "tool_calls": [call("list_files")]}]
    model = scripted(rules)
    model.record = True
    state, _ = await run_worker(model, tmp_path)

    assert state["backtracks"] == 1
    assert state["outcome"]["status"] == "stopped"
    assert state["outcome"]["reason"] == (
        "stopped: repeated the same call 4 times with the same result, again after a backtrack"
    )
    assert state["steps"] == 8  # four turns, the backtrack, four more: then the stop
    after_backtrack = "\n".join(model.recorded[4])
    assert "You repeated the same call 4 times" in after_backtrack
    assert after_backtrack.count('"ok": true') == 0  # the repeating turns were removed


async def test_replies_without_a_tool_call_are_nudged_then_stopped(tmp_path: Path) -> None:
    rules = [{"role": "react", "reply": "I think the bug is in add."}]
    state, _ = await run_worker(scripted(rules), tmp_path)

    assert state["outcome"]["status"] == "stopped"
    assert "without calling a tool" in state["outcome"]["reason"]
    assert state["steps"] == 6 and state["backtracks"] == 1
