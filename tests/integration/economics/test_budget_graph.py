"""A team that runs out of budget ends with the reason, and no call goes past the budget."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from graphs.context import TeamContext
from graphs.deps import ModelOutputError
from graphs.selection_team import compile_selection_team
from graphs.team import compile_team
from service.settings import Settings, get_settings
from service.team_deps import PIPELINE_ROLES, SELECTION_ROLES, ServiceDeps
from tests.conftest import cases_reply, coder_reply, scripted
from tests.integration.test_team_scripted import ADD_GOAL, WRONG_ADD, gateway_in

BUDGET = 4000


def tokens(usage: dict[str, int]) -> int:
    return usage["prompt_tokens"] + usage["completion_tokens"]


async def test_pipeline_stops_at_the_hard_budget_with_the_reason(tmp_path: Path) -> None:
    rules: list[dict[str, Any]] = [
        {"role": "coder", "reply": coder_reply(WRONG_ADD + "# padding\n" * 40)},
        {"role": "tester", "reply": cases_reply(("add(1, 1)", 2))},
        {"role": "supervisor", "reply": {"next": "coder", "reason": "keep trying"}},
    ]
    model = scripted(rules)
    deps = ServiceDeps(get_settings(), PIPELINE_ROLES)
    graph = compile_team(deps, InMemorySaver())
    ctx = TeamContext(
        model=model,
        out_dir=str(tmp_path / "out"),
        gateway=await gateway_in(tmp_path),
        use_memory=False,
        approve="auto",
        token_budget=BUDGET,
        max_iterations=50,
        max_steps=200,
    )
    config: Any = {"configurable": {"thread_id": "budget-pipeline"}, "recursion_limit": 400}
    state = await graph.ainvoke({"goal": ADD_GOAL}, config, context=ctx)

    reason = state["report"]["stop_reason"]
    assert reason.startswith("token budget spent: a ") and f"of the task's {BUDGET}" in reason
    spent = await deps.budget.spent_by_role("budget-pipeline")
    assert sum(spent.values()) <= BUDGET  # nothing was sent past the budget
    assert tokens(state["usage"]) <= BUDGET
    assert {"coder", "tester"} <= set(spent)
    # the refused call was never sent: every call the model answered is in the usage
    assert model.calls == state["usage"]["model_calls"]


async def test_selection_team_stops_at_the_hard_budget_with_the_reason(tmp_path: Path) -> None:
    rules: list[dict[str, Any]] = [
        {"role": "coder", "reply": "```python\n" + WRONG_ADD + "```"},
        {"role": "coder_repair", "reply": "```python\n" + WRONG_ADD + "```"},
    ]
    model = scripted(rules)
    deps = ServiceDeps(get_settings(), SELECTION_ROLES)
    graph = compile_selection_team(deps, InMemorySaver())
    ctx = TeamContext(
        model=model,
        out_dir=str(tmp_path / "out"),
        gateway=await gateway_in(tmp_path),
        use_memory=False,
        approve="auto",
        token_budget=1500,
    )
    config: Any = {"configurable": {"thread_id": "budget-selection"}, "recursion_limit": 200}
    state = await graph.ainvoke({"goal": ADD_GOAL}, config, context=ctx)

    assert state["report"]["stop_reason"].startswith("token budget spent")
    assert sum((await deps.budget.spent_by_role("budget-selection")).values()) <= 1500
    assert model.calls == state["usage"]["model_calls"]


class Turns(TypedDict, total=False):
    refused: str


async def test_a_role_cannot_take_more_than_its_capped_share(tmp_path: Path) -> None:
    """With the cap at half the budget, a coder alone in a loop stops at half, not at all."""
    deps = ServiceDeps(Settings(budget_role_max_fraction=0.5), PIPELINE_ROLES)
    model = scripted([{"role": "coder", "reply": "x" * 2000}])

    async def coder(state: Turns) -> Turns:
        try:
            await deps.ask_text(model, "# role: coder", "write", temperature=0.0, seed=0)
        except ModelOutputError as exc:
            return {"refused": str(exc)}
        return {}

    graph = StateGraph(Turns, context_schema=TeamContext)
    graph.add_node("coder", coder)
    graph.add_edge(START, "coder")
    graph.add_conditional_edges("coder", lambda s: END if s.get("refused") else "coder")
    config: Any = {"configurable": {"thread_id": "role-cap"}, "recursion_limit": 100}
    ctx = TeamContext(token_budget=4000)
    state = await graph.compile().ainvoke({}, config, context=ctx)

    assert "the coder role used its share of the task's 4000 tokens" in state["refused"]
    spent = await deps.budget.spent_by_role("role-cap")
    assert 1000 < spent["coder"] <= 2000  # more than its fair quarter, at most half


async def test_tasks_of_a_tenant_share_its_hourly_quota(tmp_path: Path) -> None:
    """Two tasks of one tenant, each with budget to spare: the second stops at the quota."""
    tenant = f"acme:{uuid.uuid4().hex[:6]}"
    deps = ServiceDeps(Settings(quota_tokens_per_hour=2500), PIPELINE_ROLES)
    model = scripted([{"role": "coder", "reply": "x" * 2000}])

    async def coder(state: Turns) -> Turns:
        try:
            await deps.ask_text(model, "# role: coder", "write", temperature=0.0, seed=0)
        except ModelOutputError as exc:
            return {"refused": str(exc)}
        return {}

    graph = StateGraph(Turns, context_schema=TeamContext)
    graph.add_node("coder", coder)
    graph.add_edge(START, "coder")
    graph.add_conditional_edges("coder", lambda s: END if s.get("refused") else "coder")
    ctx = TeamContext(token_budget=100_000, tenant=tenant)
    reasons = []
    for task in ("first", "second"):
        config: Any = {"configurable": {"thread_id": f"{tenant}-{task}"}, "recursion_limit": 50}
        reasons.append((await graph.compile().ainvoke({}, config, context=ctx))["refused"])

    assert reasons[0].startswith(f"tenant {tenant}'s token quota for this hour (2500 tokens)")
    assert reasons[1].startswith(f"tenant {tenant}'s token quota for this hour")
    first = await deps.budget.spent_by_role(f"{tenant}-first")
    second = await deps.budget.spent_by_role(f"{tenant}-second")
    assert first["coder"] + second.get("coder", 0) <= 2500
