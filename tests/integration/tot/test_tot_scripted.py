"""Tree of Thoughts end to end on the scripted model, the real sandbox, gateway and ledger.

Children differ by their seed: round r's calls use seeds r*100 + parent*10 + 1 …, so a rule
with a seed scripts one child. A revision's prompt shows its parent and the parent's failing
check, which the rules match on, so a revision that was not shown its failure gets the wrong
program and the test fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from graphs.context import ApproveMode, TeamContext
from graphs.state import TeamInput
from nodes.tot import PARENT_TITLE
from nodes.tot_search import TotConfig
from service.team_deps import compile_tot_agent
from tests.conftest import scripted
from tests.integration.test_team_scripted import gateway_in

GOAL = "Write add(a, b) that returns the sum of a and b.\nExamples:\nadd(2, 3) == 5\nadd(0, 4) == 4"
RIGHT = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"
HALF = "def add(a, b):\n    return a + b if a else 0\n"
HALF2 = "def add(a, b):\n    if a == 0:\n        return 0\n    return a + b\n"
CONFIG = TotConfig(beam_width=2, branching=2, max_depth=3, max_backtracks=2)


def fenced(code: str) -> str:
    return f"Here it is:\n```python\n{code}```\n"


def fresh(code: str, seed: int | None = None) -> dict[str, Any]:
    """A program from the goal alone (no parent shown)."""
    rule: dict[str, Any] = {"role": "tot_expand", "unless": [PARENT_TITLE], "reply": fenced(code)}
    return rule | ({"seed": seed} if seed is not None else {})


def revision(code: str, *when: str, seed: int | None = None) -> dict[str, Any]:
    """A revision, given only when the prompt shows a parent (and `when`)."""
    rule = {"role": "tot_expand", "when": [PARENT_TITLE, *when], "reply": fenced(code)}
    return rule | ({"seed": seed} if seed is not None else {})


async def run(
    tmp_path: Path, rules: list[dict[str, Any]], approve: ApproveMode = "auto"
) -> tuple[Any, dict[str, Any], TeamContext]:
    graph = compile_tot_agent(InMemorySaver(), config=CONFIG)
    ctx = TeamContext(
        model=scripted(rules),
        out_dir=str(tmp_path / "out"),
        approve=approve,
        use_memory=False,
        gateway=await gateway_in(tmp_path),
    )
    config: RunnableConfig = {"configurable": {"thread_id": "tot"}, "recursion_limit": 100}
    updates: list[dict[str, Any]] = []
    async for chunk in graph.astream(
        TeamInput(goal=GOAL), config, context=ctx, stream_mode="updates"
    ):
        updates.append(chunk)
    return graph, {"updates": updates, "config": config}, ctx


async def sandbox_runs(ctx: TeamContext, kind: str) -> int:
    """run_candidates calls the ledger saw scheduled (really run) or replayed."""
    assert ctx.gateway is not None
    events = await ctx.gateway.ledger.events("tot", 0, 10_000, kinds=[kind])
    return sum(1 for event in events if event.data.get("tool") == "run_candidates")


async def final_state(graph: Any, run_info: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = (await graph.aget_state(run_info["config"])).values
    return values


async def test_a_revision_shown_its_failure_is_delivered(tmp_path: Path) -> None:
    rules = [
        revision(RIGHT, "Failing call: add(2, 3)", "Expected: 5", "Actual: -1"),
        fresh(WRONG, seed=101),
        fresh(HALF, seed=102),
        revision(WRONG),
    ]
    graph, info, _ = await run(tmp_path, rules)
    state = await final_state(graph, info)
    assert state["report"]["status"] == "delivered"
    assert (tmp_path / "out" / "solution.py").read_text().strip() == RIGHT.strip()
    assert state["report"]["tests"]["spec_passed"] == 2
    assert state["found"]["level"] == 2  # found by a revision, not by the goal's round
    assert state["backtracks"] == []
    assert state["usage"]["model_calls"] == 6  # 2 fresh programs, 2 revisions of each


async def test_a_level_worse_than_its_parents_backtracks_and_is_recorded(tmp_path: Path) -> None:
    rules = [
        fresh(HALF, seed=101),
        fresh(HALF2, seed=102),
        *(revision(WRONG, seed=seed) for seed in (201, 202, 211, 212)),  # round 2: worse
        revision(RIGHT, "Failing call: add(0, 4)", "Expected: 4", "Actual: 0"),  # round 3
    ]
    graph, info, _ = await run(tmp_path, rules)
    state = await final_state(graph, info)
    [backtrack] = state["backtracks"]
    assert backtrack["round"] == 2 and backtrack["level"] == 2
    assert (backtrack["child_best"], backtrack["parent_best"]) == (0, 1)
    level_one = {node["id"] for node in state["frontiers"][0]["nodes"]}
    assert set(backtrack["restart"]) == level_one  # back to the best of level 1
    assert [f["level"] for f in state["frontiers"]] == [1, 2]  # round 2's level never kept
    assert state["report"]["status"] == "delivered"
    assert (tmp_path / "out" / "solution.py").read_text().strip() == RIGHT.strip()
    assert state["usage"]["model_calls"] == 10  # 2, then 4 dropped, then 4 again


async def test_a_program_proposed_again_is_not_run_again(tmp_path: Path) -> None:
    # The model repeats its first program as a "revision" in round 2, then fixes it in round 3.
    rules = [
        revision(RIGHT, "Failing call: add(0, 4)", seed=301),
        revision(HALF),
        fresh(HALF),
    ]
    graph, info, ctx = await run(tmp_path, rules)
    state = await final_state(graph, info)
    assert (tmp_path / "out" / "solution.py").read_text().strip() == RIGHT.strip()
    assert state["round"] == 3
    cached = [
        u for u in info["updates"] if "evaluate" in u and u.get("__metadata__", {}).get("cached")
    ]
    assert cached, "the repeated program's run should come from the cache"
    # HALF and RIGHT ran once each in the sandbox; HALF again cost neither a run nor a replay.
    assert await sandbox_runs(ctx, "ActivityScheduled") == 2
    assert await sandbox_runs(ctx, "ActivityReplayed") == 0


async def test_ask_pauses_for_a_human_before_delivering(tmp_path: Path) -> None:
    graph, info, ctx = await run(tmp_path, [fresh(RIGHT)], approve="ask")
    assert not (tmp_path / "out").exists()
    state = await final_state(graph, info)
    assert state["usage"]["model_calls"] == 2  # one round: a fresh program passes
    await graph.ainvoke(Command(resume={"approved": True}), info["config"], context=ctx)
    state = await final_state(graph, info)
    assert state["report"]["status"] == "delivered"
    assert (tmp_path / "out" / "solution.py").read_text().strip() == RIGHT.strip()
