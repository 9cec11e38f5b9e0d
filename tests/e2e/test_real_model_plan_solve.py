"""Plan-and-Solve on the real local model: one tiny goal, planned, solved by a worker, checked.

The planner's answer is decoded under the `Plan` schema and validated; a goal this small should
be one subtask (one planner call, one worker). The worker fixes the package through tool calls
and the subtask's check runs the package's test in the real sandbox.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from graphs.context import TeamContext
from graphs.plan_state import PlanInput
from service.team_deps import compile_plan_solve_agent
from tests.integration.react.scripted_loop import GOAL, PACKAGE
from tests.integration.test_team_scripted import gateway_in

pytestmark = [pytest.mark.model, pytest.mark.slow]

MAX_STEPS = 8


async def test_the_real_model_plans_and_solves_a_tiny_goal(tmp_path: Path) -> None:
    ctx = TeamContext(gateway=await gateway_in(tmp_path), use_memory=False, max_steps=MAX_STEPS)
    graph = compile_plan_solve_agent(InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "plan-real"}, "recursion_limit": 100}
    task: PlanInput = {"goal": GOAL, "files": dict(PACKAGE)}
    state: dict[str, Any] = await graph.ainvoke(task, config, context=ctx)

    print(json.dumps({"plan": state.get("plan"), "outcome": state["outcome"]})[:3000])
    print(json.dumps({"usage": state["usage"], "steps": state["steps"]}))
    assert state.get("plan"), state["outcome"]  # a plan that validated
    assert state["outcome"]["status"] == "finished", state["outcome"]
    assert state["files"]["calc.py"].count("a + b") == 1, state["files"]["calc.py"]
