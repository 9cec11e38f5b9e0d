"""Reflexion on a repository: attempts by the ReAct worker, a critique after each failed one.

```
START → prepare → attempt → repo_tests ─after_attempt─► approval (interrupt) → deliver → END
                     ▲                     ├──► deliver                               (auto, deny)
                     │                     ├──► reflect ─after_reflect─► attempt …
                     │                     └──► give_up → END   (no attempt left, or a budget)
                     └───────────────────────────┘
```

The repository agent (`graphs/repo_team.py`) runs its worker once; here a failed run is not the
end. `attempt` runs the worker on the original repository with the critiques so far in its
opening message; the repository's own tests decide (`repo_tests`, ledgered by the files).
When they fail, `reflect` asks the model what failed and what to do differently (structured,
bounded), keeps it in `reflections` and stores it as a lesson when the run uses memory; then
the next attempt starts, up to `max_attempts` (the context's `max_iterations`, else 3). A passing
attempt is approved and delivered exactly as by the repository agent; when none passes,
`give_up` delivers nothing and reports why, with the last test output. Served as `reflexion`.
"""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from graphs.context import TeamContext
from graphs.deps import TeamDeps
from graphs.react import build_react_worker
from graphs.react_state import RepoInput
from graphs.repo_team import REPO_TOOLS
from graphs.retries import MODEL_RETRY
from nodes.reflect import (
    DEFAULT_MAX_ATTEMPTS,
    ReflexionState,
    after_attempt,
    after_reflect,
    make_attempt,
    make_give_up,
    make_reflect,
)
from nodes.repo_steps import (
    make_repo_approval,
    make_repo_deliver,
    make_repo_prepare,
    make_repo_tests,
)


def build_reflexion(
    deps: TeamDeps, max_attempts: int = DEFAULT_MAX_ATTEMPTS
) -> StateGraph[ReflexionState, TeamContext, RepoInput, ReflexionState]:
    """The uncompiled graph on `deps`; each attempt runs the compiled ReAct worker."""
    worker = build_react_worker(deps, REPO_TOOLS).compile(name="react-worker")
    builder = StateGraph(ReflexionState, context_schema=TeamContext, input_schema=RepoInput)
    builder.add_node("prepare", make_repo_prepare(deps))
    builder.add_node("attempt", make_attempt(deps, worker, max_attempts))
    builder.add_node("repo_tests", make_repo_tests(deps))
    builder.add_node("reflect", make_reflect(deps), retry_policy=MODEL_RETRY)
    builder.add_node("approval", make_repo_approval(deps))
    builder.add_node("deliver", make_repo_deliver(deps))
    builder.add_node("give_up", make_give_up(deps))
    builder.add_edge(START, "prepare")
    builder.add_edge("prepare", "attempt")
    builder.add_edge("attempt", "repo_tests")
    builder.add_conditional_edges(
        "repo_tests", after_attempt, ["reflect", "approval", "deliver", "give_up"]
    )
    builder.add_conditional_edges("reflect", after_reflect, ["attempt", "give_up"])
    builder.add_edge("approval", "deliver")
    builder.add_edge("deliver", END)
    builder.add_edge("give_up", END)
    return builder


def compile_reflexion(
    deps: TeamDeps,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> CompiledStateGraph[ReflexionState, TeamContext, RepoInput, ReflexionState]:
    """Compile with the given checkpointer (the server supplies its own when None)."""
    return build_reflexion(deps, max_attempts).compile(checkpointer=checkpointer, name="reflexion")
