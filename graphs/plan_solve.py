"""Plan-and-Solve: a validated DAG of subtasks, run in waves of ReAct workers, merged per hunk.

```
START → plan ─after_plan─► schedule ─dispatch─► solve × N (Send) → merge ─after_merge─► schedule
          └──► finish ◄──────────┘ (nothing ready)                   ├──► replan → schedule
                 ▲                                                   └──► finish
```

`plan` asks for the DAG once (and once more with its problems when it cannot run). Each wave
sends every subtask whose dependencies are done to `solve`, which runs the ReAct worker
(`graphs/react.py`) on its own copy of the merged files under its own ledger scope, then the
subtask's check; results come back through the `results` reducer. `merge` merges the wave's
passing subtasks hunk by hunk; two that changed the same lines are a conflict: the later one is
re-planned (`replan`) and runs again on the merged files, and a second clash stops the task
with the reason. The input is the repository agent's (a goal and the files); the output is the
merged `files`, the `results` per subtask and the `outcome`. Served as `plan_and_solve`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from graphs.context import TeamContext
from graphs.deps import TeamDeps
from graphs.plan_state import PlanInput, PlanState
from graphs.react import build_react_worker
from graphs.retries import MODEL_RETRY
from nodes.plan_dag import DEFAULT_MAX_SUBTASKS
from nodes.plan_steps import (
    after_merge,
    after_plan,
    dispatch,
    make_finish,
    make_merge,
    make_schedule,
    make_solve,
)
from nodes.planner import make_planner, make_replanner
from nodes.react_support import CATALOGUE

PLAN_TOOLS = tuple(name for name in CATALOGUE if name != "run_tests")
"""The workers' tools on a repository, as the repository agent offers them."""


def build_plan_solve(
    deps: TeamDeps,
    max_subtasks: int = DEFAULT_MAX_SUBTASKS,
    tools: Collection[str] = PLAN_TOOLS,
) -> StateGraph[PlanState, TeamContext, PlanInput, PlanState]:
    """The uncompiled graph on `deps`; each subtask's worker is the compiled ReAct graph."""
    worker = build_react_worker(deps, tools).compile(name="react-worker")
    builder = StateGraph(PlanState, context_schema=TeamContext, input_schema=PlanInput)
    builder.add_node("plan", make_planner(deps, max_subtasks), retry_policy=MODEL_RETRY)
    builder.add_node("schedule", make_schedule(deps))
    builder.add_node("solve", make_solve(deps, worker))
    builder.add_node("merge", make_merge(deps))
    builder.add_node("replan", make_replanner(deps), retry_policy=MODEL_RETRY)
    builder.add_node("finish", make_finish(deps))
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", after_plan, ["schedule", "finish"])
    builder.add_conditional_edges("schedule", dispatch, ["solve", "finish"])
    builder.add_edge("solve", "merge")
    builder.add_conditional_edges("merge", after_merge, ["replan", "schedule", "finish"])
    builder.add_edge("replan", "schedule")
    builder.add_edge("finish", END)
    return builder


def compile_plan_solve(
    deps: TeamDeps,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    max_subtasks: int = DEFAULT_MAX_SUBTASKS,
) -> CompiledStateGraph[PlanState, TeamContext, PlanInput, PlanState]:
    """Compile with the given checkpointer (the server supplies its own when None)."""
    return build_plan_solve(deps, max_subtasks).compile(
        checkpointer=checkpointer, name="plan-and-solve"
    )
