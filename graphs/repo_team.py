"""The repository agent: a ReAct worker on a copy of a repository, its tests, a human, a patch.

```
START → prepare → worker (the ReAct subgraph) → repo_tests ─► approval (interrupt) ─► deliver → END
                    ▲                               └─► deliver     │   (auto, deny, unchanged)
                    └──────────── rework ◄──────────────────────────┘   (rejected with a comment)
```

The input is a goal and the repository's files (`service/repos.py` builds it: `repo_files`,
the original, and `files`, the working copy). The worker is the compiled ReAct graph added as a
node: it takes `goal`, `files`, `messages` and `scope` from this graph (`ReactInput`), returns
into them and `usage`, `steps` and `outcome`, keeps its own turns, and is checkpointed under
this graph's thread (a resumed task resumes it mid-loop). Then the repository's test suite runs
(`run_repo_tests`); with the `ask` policy a human sees the diff and the test result, and
`deliver_patch` writes `patch.diff` and the changed files to the run's delivery folder through
the gateway. A rejection with a comment goes to `rework`: the comment as a new message, a fresh
ledger scope, and the worker again on the current working copy (its turns, step count and
loop-guard memory start afresh, as every run of a subgraph node does), then the tests and the
human again, about the new patch. Without a comment, past `max_iterations` reworks, or with the
same patch again, nothing is delivered (`nodes/repo_rework.py`). Served as `repo_agent`.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from graphs.context import TeamContext
from graphs.deps import TeamDeps
from graphs.react import build_react_worker
from graphs.react_state import RepoInput, RepoState
from nodes.react_support import CATALOGUE
from nodes.repo_rework import after_approval_answer
from nodes.repo_steps import (
    after_tests,
    make_repo_approval,
    make_repo_deliver,
    make_repo_prepare,
    make_repo_rework,
    make_repo_tests,
)

REPO_TOOLS = tuple(name for name in CATALOGUE if name != "run_tests")
"""The worker's tools on a repository: its own test suite (`run_repo_tests`) replaces the
checks-or-file runner, whose long schema would only take prompt room from the repository."""


def build_repo_team(deps: TeamDeps) -> StateGraph[RepoState, TeamContext, RepoInput, RepoState]:
    """The uncompiled graph on `deps`; the worker is compiled as its subgraph."""

    async def to_human_or_delivery(
        state: RepoState, runtime: Runtime[TeamContext]
    ) -> Literal["approval", "deliver"]:
        return after_tests(state, deps.run_context(runtime.context).approve)

    async def to_worker_or_delivery(
        state: RepoState, runtime: Runtime[TeamContext]
    ) -> Literal["worker", "deliver"]:
        return after_approval_answer(state, deps.limits(deps.run_context(runtime.context)))

    builder = StateGraph(RepoState, context_schema=TeamContext, input_schema=RepoInput)
    builder.add_node("prepare", make_repo_prepare(deps))
    worker = build_react_worker(deps, REPO_TOOLS).compile(name="react-worker")
    builder.add_node("worker", worker)
    builder.add_node("repo_tests", make_repo_tests(deps))
    builder.add_node("approval", make_repo_approval(deps))
    builder.add_node("rework", make_repo_rework(deps))
    builder.add_node("deliver", make_repo_deliver(deps))
    builder.add_edge(START, "prepare")
    builder.add_edge("prepare", "worker")
    builder.add_edge("worker", "repo_tests")
    builder.add_conditional_edges("repo_tests", to_human_or_delivery, ["approval", "deliver"])
    builder.add_conditional_edges(
        "approval", to_worker_or_delivery, {"worker": "rework", "deliver": "deliver"}
    )
    builder.add_edge("rework", "worker")
    builder.add_edge("deliver", END)
    return builder


def compile_repo_team(
    deps: TeamDeps, checkpointer: BaseCheckpointSaver[Any] | None = None
) -> CompiledStateGraph[RepoState, TeamContext, RepoInput, RepoState]:
    """Compile with the given checkpointer (the server supplies its own when None)."""
    return build_repo_team(deps).compile(checkpointer=checkpointer, name="repo-agent")
