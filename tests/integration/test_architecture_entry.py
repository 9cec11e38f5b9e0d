"""The served entry graph `strategos` routes a task to its architecture and keeps approvals working.

Real graphs, gateway, ledger and sandbox on the scripted model: a function goal goes to the
execution-first team, a repository to Plan-and-Solve, and the repository agent's approval
question pauses the entry run and is answered through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from graphs.context import TeamContext
from nodes.inbox import request_of
from service.architecture_entry import (
    EntryInput,
    available_graphs,
    build_entry,
    compile_entry,
    strategos_graph,
)
from service.settings import Settings
from tests.conftest import scripted
from tests.integration.plan_solve.test_plan_solve_scripted import FILES, FIX_ADD, WORKERS
from tests.integration.plan_solve.test_plan_solve_scripted import GOAL as PLAN_GOAL
from tests.integration.react.scripted_loop import REPO_FILES, REPO_GOAL, REPO_RULES
from tests.integration.test_selection_team import GOAL, RIGHT, coder
from tests.integration.test_team_scripted import gateway_in


async def run(
    tmp_path: Path,
    task: EntryInput,
    rules: list[dict[str, Any]],
    settings: Settings | None = None,
    **options: Any,
) -> tuple[Any, TeamContext, RunnableConfig]:
    ctx = TeamContext(
        model=scripted(rules),
        gateway=await gateway_in(tmp_path),
        use_memory=False,
        out_dir=str(tmp_path / "out"),
        **options,
    )
    graph = compile_entry(InMemorySaver(), settings)
    config: RunnableConfig = {"configurable": {"thread_id": "entry"}, "recursion_limit": 100}
    await graph.ainvoke(task, config, context=ctx)
    return graph, ctx, config


async def test_a_function_goal_goes_to_the_execution_first_team(tmp_path: Path) -> None:
    graph, _, config = await run(tmp_path, {"goal": GOAL}, [coder(RIGHT)], approve="auto")

    state = (await graph.aget_state(config)).values
    assert state["architecture"] == "selection"
    assert state["report"]["status"] == "delivered"
    assert (tmp_path / "out" / "solution.py").read_text().strip() == RIGHT.strip()


async def test_a_repository_goes_to_plan_and_solve(tmp_path: Path) -> None:
    rules = [{"role": "planner", "reply": {"subtasks": [FIX_ADD]}}, *WORKERS]
    task: EntryInput = {"goal": PLAN_GOAL, "repo_files": dict(FILES)}
    graph, _, config = await run(tmp_path, task, rules, approve="auto")

    state = (await graph.aget_state(config)).values
    assert state["architecture"] == "plan_and_solve"
    assert state["outcome"]["status"] == "finished", state["outcome"]
    assert "return a + b" in state["files"]["pkg/calc.py"].split("def mul")[0]


async def test_the_repository_agents_approval_is_asked_and_answered_through_the_entry(
    tmp_path: Path,
) -> None:
    task: EntryInput = {"goal": REPO_GOAL, "files": dict(REPO_FILES)}
    graph, ctx, config = await run(
        tmp_path, task, REPO_RULES, approve="ask", architecture="repo_agent"
    )
    paused = await graph.aget_state(config)
    assert paused.next == ("repo_agent",)
    question = request_of(paused.interrupts[0].value)
    assert question is not None and "+    return a + b" in question["patch"]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("patch.diff"))

    await graph.ainvoke(Command(resume={"type": "accept"}), config, context=ctx)

    state = (await graph.aget_state(config)).values
    assert state["architecture"] == "repo_agent"
    assert state["report"]["status"] == "delivered"
    assert state["repo_files"] == REPO_FILES  # the original, handed on from `files`
    delivered = Path(str(state["report"]["destination"]))
    assert (delivered / "files" / "pkg" / "calc.py").read_text().endswith("return a + b\n")


async def test_a_request_the_operator_does_not_allow_or_that_does_not_fit_fails_first(
    tmp_path: Path,
) -> None:
    capped = Settings(architectures_allowed=["team", "repo_agent"])
    with pytest.raises(ValueError, match="'selection' is not allowed here"):
        await run(tmp_path / "a", {"goal": GOAL}, [], capped, architecture="selection")
    with pytest.raises(ValueError, match="'repo_agent' takes a repository"):
        await run(tmp_path / "b", {"goal": GOAL}, [], capped, architecture="repo_agent")


def test_studio_draws_the_router_and_every_served_architecture() -> None:
    drawn = strategos_graph.get_graph()
    assert set(drawn.nodes) >= {"route", "team", "selection", "react", "plan_and_solve"}
    routes = {edge.target for edge in drawn.edges if edge.source == "route"}
    assert routes >= {"team", "selection", "react", "plan_and_solve", "repo_agent"}
    five = available_graphs(("team", "selection", "react", "plan_and_solve", "repo_agent"))
    inner = build_entry(five, list(five)).compile().get_graph(xray=1).nodes
    assert "repo_agent:approval" in inner  # the subgraph's nodes, as Studio expands them
