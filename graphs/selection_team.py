"""The execution-first coding team: candidates sampled in parallel, chosen by running them.

```
START → prepare ─Send×2─────► sample ─┐
                 └─Send─────► probe ──┴─► judge ─decide─► referee ─decide─► …
                                           │  ├─Send×k─► repair ─► judge
                                           │  ├─Send───► sample (widen: same batch) ─► judge
                                           │  └─Send×2─────► sample (a fresh round)
                                           └─► conclude ─► approval ─► deliver → END
                                                      └──────────────► deliver
```

One greedy answer and N sampled ones (one request with N choices) are decoded together on the
model server's parallel slots; when no cluster stands out, N more are drawn into the same batch
(widen), and the tester proposes inputs once if it is switched on. `judge` runs every candidate
on the goal's examples and those inputs in one sandboxed run and picks the largest agreeing
cluster; `decide` (pure, `nodes/route.py`) routes from its verdict. Approval and delivery are
the pipeline team's own steps (`nodes/approval.py`, `nodes/deliver.py`). Nodes get their
dependencies as one typed `TeamDeps` at build time; `service.team_deps` builds the real one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from graphs.context import TeamContext
from graphs.deps import TeamDeps
from graphs.retries import MODEL_RETRY
from graphs.selection_state import SelectionState
from graphs.state import TeamInput
from nodes.approval import make_approval
from nodes.deliver import make_deliver
from nodes.framing import make_conclude, make_prepare
from nodes.judge import make_judge
from nodes.probe import make_probe
from nodes.referee import make_referee
from nodes.route import (
    after_approval,
    after_conclude,
    decide,
    repair_sends,
    sample_sends,
    widen_sends,
)
from nodes.sample import make_repair, make_sample


def _routes(deps: TeamDeps) -> dict[str, Callable[..., Any]]:
    """The conditional edges, closing over the deps for limits and sampling.

    They are `async` although they never await: LangGraph runs a plain function of an async
    graph in a worker thread, and a thread hop per edge costs more than deciding the route.
    """

    async def after_prepare(state: SelectionState) -> list[Send]:
        return sample_sends(state, deps.sampling)

    async def after_judging(state: SelectionState, runtime: Runtime[TeamContext]) -> Any:
        ctx = deps.run_context(runtime.context)
        route = decide(state, deps.limits(ctx), deps.sampling)
        if route == "repair":
            return repair_sends(state, deps.sampling) or sample_sends(state, deps.sampling)
        if route == "sample":
            return sample_sends(state, deps.sampling)
        if route == "widen":
            return widen_sends(state, deps.sampling)
        return route

    async def to_human_or_delivery(state: SelectionState, runtime: Runtime[TeamContext]) -> str:
        return after_conclude(deps.run_context(runtime.context))

    async def after_human(state: SelectionState) -> Any:
        if after_approval(state) == "deliver":
            return "deliver"
        return sample_sends(state, deps.sampling)

    return {
        "prepare": after_prepare,
        "judge": after_judging,
        "conclude": to_human_or_delivery,
        "approval": after_human,
    }


def _destination(deps: TeamDeps) -> Callable[[TeamContext, str], str]:
    """Where a run delivers by default (the folder `conclude` fixes before approval)."""

    def destination(ctx: TeamContext, thread_id: str) -> str:
        return str(deps.destination(ctx, thread_id))

    return destination


def build_selection_team(
    deps: TeamDeps,
) -> StateGraph[SelectionState, TeamContext, TeamInput, SelectionState]:
    """The uncompiled graph on `deps`; approval and delivery are the teams' shared steps."""
    builder = StateGraph(SelectionState, context_schema=TeamContext, input_schema=TeamInput)
    builder.add_node("prepare", make_prepare(deps))
    builder.add_node("sample", make_sample(deps), retry_policy=MODEL_RETRY)
    builder.add_node("probe", make_probe(deps), retry_policy=MODEL_RETRY)
    builder.add_node("repair", make_repair(deps), retry_policy=MODEL_RETRY)
    builder.add_node("judge", make_judge(deps))
    builder.add_node("referee", make_referee(deps), retry_policy=MODEL_RETRY)
    builder.add_node("conclude", make_conclude(deps, _destination(deps)))
    builder.add_node("approval", make_approval(deps))
    builder.add_node("deliver", make_deliver(deps))
    routes = _routes(deps)
    builder.add_edge(START, "prepare")
    builder.add_conditional_edges("prepare", routes["prepare"], ["sample"])
    for worker in ("sample", "probe", "repair"):
        builder.add_edge(worker, "judge")
    targets = ["sample", "repair", "probe", "referee", "conclude"]
    builder.add_conditional_edges("judge", routes["judge"], targets)
    builder.add_conditional_edges("referee", routes["judge"], targets)
    builder.add_conditional_edges("conclude", routes["conclude"], ["approval", "deliver"])
    builder.add_conditional_edges("approval", routes["approval"], ["deliver", "sample"])
    builder.add_edge("deliver", END)
    return builder


def compile_selection_team(
    deps: TeamDeps, checkpointer: BaseCheckpointSaver[Any] | None = None
) -> CompiledStateGraph[SelectionState, TeamContext, TeamInput, SelectionState]:
    """Compile with the given checkpointer (the server supplies its own when None)."""
    builder = build_selection_team(deps)
    return builder.compile(checkpointer=checkpointer, name="coding-team-selection")
