"""The ReAct worker: a tool-calling loop over the registry's tools, every call through the gateway.

```
START → agent ─after_agent─► tools ─after_tools─► agent …
          └──► END (a limit)    └──► END (finish, or the loop guard stops it)
```

`agent` asks the model for one call of the offered tools (`finish` included); `tools` runs it
through `ToolGateway.call` and lets the loop guard judge the turns. Not LangGraph's prebuilt
`ToolNode`/`create_react_agent`: their tools are LangChain tools validated and run by the node
(in parallel), where here the gateway validates, applies the policy, asks for approval and
ledgers each call, the calls of a turn must run in order over the state's files, and the ledger
key must come from the checkpointed turn. The routers are pure (`nodes/react_support.py`).
Served as `react_worker` (`langgraph.json`), and a subgraph of the repository agent
(`graphs/repo_team.py`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from graphs.context import TeamContext
from graphs.deps import TeamDeps
from graphs.react_state import ReactInput, ReactState
from graphs.retries import MODEL_RETRY
from nodes.react_agent import make_react_agent
from nodes.react_support import CATALOGUE, after_agent, after_tools
from nodes.react_tools import make_react_tools


def build_react_worker(
    deps: TeamDeps, tools: Collection[str] = CATALOGUE
) -> StateGraph[ReactState, TeamContext, ReactInput, ReactState]:
    """The uncompiled loop on `deps`, offering the `tools` the tenant's policy allows."""
    builder = StateGraph(ReactState, context_schema=TeamContext, input_schema=ReactInput)
    builder.add_node("agent", make_react_agent(deps, tools), retry_policy=MODEL_RETRY)
    builder.add_node("tools", make_react_tools(deps, tools))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", after_agent, ["tools", "__end__"])
    builder.add_conditional_edges("tools", after_tools, ["agent", "__end__"])
    return builder


def compile_react_worker(
    deps: TeamDeps,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    tools: Collection[str] = CATALOGUE,
) -> CompiledStateGraph[ReactState, TeamContext, ReactInput, ReactState]:
    """Compile with the given checkpointer (the server's when None; a parent's as a subgraph)."""
    return build_react_worker(deps, tools).compile(checkpointer=checkpointer, name="react-worker")
