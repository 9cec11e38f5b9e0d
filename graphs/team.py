"""The coding-team graph: supervisor → coder → tester → reviewer, with approval and delivery.

Workers always report back to the supervisor, which routes with `Command(goto=...)`; the
`destinations` make those edges visible to Studio and `?xray=true`.
"""

from __future__ import annotations

from typing import Any

import psycopg
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import RetryPolicy

from graphs.context import TeamContext
from graphs.state import TeamInput, TeamState
from nodes.approval import approval
from nodes.coder import coder
from nodes.deliver import deliver
from nodes.reviewer import reviewer
from nodes.supervisor import WORKERS, supervisor
from nodes.tester import tester

MODEL_RETRY = RetryPolicy(max_attempts=3, initial_interval=1.0, retry_on=(ConnectionError,))
DB_RETRY = RetryPolicy(
    max_attempts=5, initial_interval=0.5, max_interval=8.0, retry_on=(psycopg.OperationalError,)
)
"""A dropped PostgreSQL connection (a restart, a failover) in a node's ledger or store call:
retried for ~8 s; every side effect goes through the idempotent ledger, so a retry is safe."""


def build_team_graph() -> StateGraph[TeamState, TeamContext, TeamInput, TeamState]:
    """The uncompiled graph, so callers choose the checkpointer."""
    builder = StateGraph(TeamState, context_schema=TeamContext, input_schema=TeamInput)
    builder.add_node("supervisor", supervisor, destinations=WORKERS, retry_policy=DB_RETRY)
    builder.add_node("coder", coder, retry_policy=[MODEL_RETRY, DB_RETRY])
    builder.add_node("tester", tester, retry_policy=[MODEL_RETRY, DB_RETRY])
    builder.add_node("reviewer", reviewer, retry_policy=[MODEL_RETRY, DB_RETRY])
    builder.add_node("approval", approval)
    builder.add_node("deliver", deliver, retry_policy=DB_RETRY)
    builder.add_edge(START, "supervisor")
    for worker in ("coder", "tester", "reviewer", "approval"):
        builder.add_edge(worker, "supervisor")
    builder.add_edge("deliver", END)
    return builder


def compile_team(
    checkpointer: BaseCheckpointSaver[Any] | None = None,
) -> CompiledStateGraph[TeamState, TeamContext, TeamInput, TeamState]:
    """Compile with the given checkpointer (the server supplies its own when None)."""
    return build_team_graph().compile(checkpointer=checkpointer, name="coding-team")


graph = compile_team()
"""Entry point for `langgraph.json`: compiled without a checkpointer."""
