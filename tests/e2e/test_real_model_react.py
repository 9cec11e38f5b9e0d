"""The ReAct worker on the real local model: a failing test in a small package, fixed by tools.

The model works only through tool calls (`tool_choice="required"`): llama-server decodes each
call under the grammar of the tools' JSON schemas, so every turn is a call that parses. The
package is two files, a function and its failing test; the worker reads, patches, runs the
tests and finishes, every call through the gateway and the real sandbox.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver

from graphs.context import TeamContext
from service.team_deps import compile_react
from tests.integration.react.scripted_loop import GOAL, PACKAGE
from tests.integration.test_team_scripted import gateway_in

pytestmark = [pytest.mark.model, pytest.mark.slow]

MAX_STEPS = 10


async def test_the_real_model_fixes_a_failing_test_through_tool_calls(tmp_path: Path) -> None:
    gateway = await gateway_in(tmp_path)
    ctx = TeamContext(gateway=gateway, use_memory=False, max_steps=MAX_STEPS)
    graph = compile_react(InMemorySaver())
    config: dict[str, Any] = {"configurable": {"thread_id": "react-real"}, "recursion_limit": 100}
    state = await graph.ainvoke({"goal": GOAL, "files": dict(PACKAGE)}, config, context=ctx)

    turns = [m for m in state["messages"] if isinstance(m, AIMessage) and m.name == "react"]
    results = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    print(json.dumps([[c["name"], c["args"]] for t in turns for c in t.tool_calls])[:3000])
    assert turns and all(len(t.tool_calls) == 1 for t in turns)  # every turn: one parsed call
    assert not any("not valid JSON" in str(m.content) for m in results)
    assert "outcome" in state and state["steps"] <= MAX_STEPS
    assert state["files"]["calc.py"].count("a + b") == 1, state["files"]["calc.py"]
    names = [t.tool_calls[0]["name"] for t in turns]
    assert "apply_patch" in names or "write_file" in names
