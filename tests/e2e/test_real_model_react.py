"""The ReAct worker on the real local model: a failing test in a small package, worked by tools.

The model works only through tool calls, decoded on the bundled server under a JSON schema with
one branch per tool (`service.llm.tool_calls`), so a turn is one call that parses and names an
offered tool, unless the reply was cut at the token limit: that is asserted. Whether the 1.5B
model fixes the package is measured in the benchmarks, not asserted (it often does not); what a
user relies on either way is asserted: the loop ends with a stated outcome within its step
limit, and every call went through the gateway.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver

from graphs.context import TeamContext
from nodes.react_support import CATALOGUE
from service.team_deps import compile_react
from tests.integration.react.scripted_loop import GOAL, PACKAGE
from tests.integration.test_team_scripted import gateway_in

pytestmark = [pytest.mark.model, pytest.mark.slow]

MAX_STEPS = 6


async def test_the_real_model_fixes_a_failing_test_through_tool_calls(tmp_path: Path) -> None:
    gateway = await gateway_in(tmp_path)
    ctx = TeamContext(gateway=gateway, use_memory=False, max_steps=MAX_STEPS)
    graph = compile_react(InMemorySaver())
    config: dict[str, Any] = {"configurable": {"thread_id": "react-real"}, "recursion_limit": 100}
    state = await graph.ainvoke({"goal": GOAL, "files": dict(PACKAGE)}, config, context=ctx)

    turns = [m for m in state["messages"] if isinstance(m, AIMessage) and m.name == "react"]
    results = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    print(json.dumps([[c["name"], c["args"]] for t in turns for c in t.tool_calls])[:3000])
    # one parsed call per turn; a reply cut at the token limit is a turn without one
    assert turns and all(len(t.tool_calls) <= 1 for t in turns)
    assert any(t.tool_calls for t in turns)
    assert not any("not valid JSON" in str(m.content) for m in results)
    assert state["outcome"]["status"] in ("finished", "stopped") and state["outcome"]["reason"]
    assert state["steps"] <= MAX_STEPS
    ran = await gateway.ledger.events("react-real", 0, 1000, kinds=["ActivityScheduled"])
    assert ran and len(ran) <= state["steps"], "every call ran through the gateway, once"
    assert {str(e.data["tool"]) for e in ran} <= set(CATALOGUE)
    print(f"\noutcome: {state['outcome']}; calc.py fixed: {'a + b' in state['files']['calc.py']}")
