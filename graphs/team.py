"""The coding-team graph: supervisor → coder → tester → reviewer, with approval and delivery.

Workers always report back to the supervisor, which decides who works next (`next` in the
state); a conditional edge on `next` routes there. Routing from the state, rather than from the
supervisor's `Command(goto=...)`, is what makes a Studio edit work: `threads.update_state` on a
paused thread is applied as the supervisor's output, and the edge routes it on (to the approval,
which asks again about the edited state); a `Command` would not be replayed. Nodes get their
dependencies as one typed `TeamDeps` at build time; `service.team_deps` builds the real one
(and the graph `langgraph.json` serves as `coding_team`).
"""

from __future__ import annotations

from typing import Any, cast

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from graphs.context import TeamContext
from graphs.deps import Node, TeamDeps
from graphs.retries import DB_RETRY, MODEL_RETRY
from graphs.state import TeamInput, TeamState
from nodes.approval import make_approval
from nodes.coder import make_coder
from nodes.deliver import make_deliver
from nodes.reviewer import make_reviewer
from nodes.supervisor import WORKERS, Worker, make_supervisor
from nodes.tester import make_tester


def _supervisor_node(deps: TeamDeps) -> Node[TeamState]:
    """The supervisor as a node: its decision's state update (`next` included), no goto."""
    decide = make_supervisor(deps)

    async def supervisor(state: TeamState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Decide who works next; the `next` edge routes there."""
        command = await decide(state, runtime=runtime)
        return dict(cast(dict[str, Any], command.update))

    return supervisor


async def _next_worker(state: TeamState) -> Worker:
    """Where the supervisor sent the team (async: no thread hop for a lookup)."""
    return cast(Worker, state["next"])


def build_team_graph(deps: TeamDeps) -> StateGraph[TeamState, TeamContext, TeamInput, TeamState]:
    """The uncompiled graph on `deps`, so callers choose the checkpointer."""
    builder = StateGraph(TeamState, context_schema=TeamContext, input_schema=TeamInput)
    builder.add_node("supervisor", _supervisor_node(deps), retry_policy=DB_RETRY)
    builder.add_conditional_edges("supervisor", _next_worker, list(WORKERS))
    builder.add_node("coder", make_coder(deps), retry_policy=[MODEL_RETRY, DB_RETRY])
    builder.add_node("tester", make_tester(deps), retry_policy=[MODEL_RETRY, DB_RETRY])
    builder.add_node("reviewer", make_reviewer(deps), retry_policy=[MODEL_RETRY, DB_RETRY])
    builder.add_node("approval", make_approval(deps))
    builder.add_node("deliver", make_deliver(deps), retry_policy=DB_RETRY)
    builder.add_edge(START, "supervisor")
    for worker in ("coder", "tester", "reviewer", "approval"):
        builder.add_edge(worker, "supervisor")
    builder.add_edge("deliver", END)
    return builder


def compile_team(
    deps: TeamDeps, checkpointer: BaseCheckpointSaver[Any] | None = None
) -> CompiledStateGraph[TeamState, TeamContext, TeamInput, TeamState]:
    """Compile with the given checkpointer (the server supplies its own when None)."""
    return build_team_graph(deps).compile(checkpointer=checkpointer, name="coding-team")
