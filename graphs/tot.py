"""Tree of Thoughts: a beam search over candidate programs, scored by running them.

```
START → prepare ─Send×k─► expand ─► collect ─Send×n─► evaluate ─► prune ─┐
                  ▲                                                       │
                  └──────────── Send×(beam·k) (next round or backtrack) ──┤
                                                                          └─► conclude
conclude ─► approval (interrupt) ─► deliver → END      (`ask`)
        └─────────────────────────► deliver → END      (`auto`/`deny`)
```

The input is the execution-first team's: a goal (and an entry point). `expand` proposes one
program per `Send` (fresh from the goal in round 1, then revisions of each beam node shown its
failing check); `evaluate` runs each distinct program on the goal's examples under a
`CachePolicy` keyed by the program's text, so a program proposed again costs no second run;
`prune` keeps the best `beam_width` or backtracks to the previous level. The search stops when
a program passes every example, at `max_depth`, or when the limits run out. Preparing,
approval and delivery are the execution-first team's own steps, so the report is the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from langgraph.cache.base import BaseCache
from langgraph.cache.memory import InMemoryCache
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import CachePolicy, Send

from graphs.context import TeamContext
from graphs.deps import Limits, TeamDeps
from graphs.retries import MODEL_RETRY
from graphs.selection_state import SelectionState
from graphs.state import TeamInput
from graphs.tot_state import TotState
from nodes.approval import make_approval
from nodes.deliver import make_deliver
from nodes.framing import make_prepare
from nodes.route import after_conclude, guard_reason
from nodes.tot import make_collect, make_conclude, make_evaluate, make_expand, make_prune
from nodes.tot_search import (
    TotConfig,
    evaluate_sends,
    evaluation_key,
    expand_sends,
    next_step,
)

EVALUATION_TTL_S = 3600
"""How long a program's run is reused: a task's search is over long before."""


def guard(state: Any, limits: Limits) -> str:
    """Why the search must stop now ("" when it may go on): steps, tokens, a refused call.

    `guard_reason` reads only `TeamState`'s counters, which this state has too.
    """
    return guard_reason(cast(SelectionState, state), limits)


def _routes(deps: TeamDeps, config: TotConfig) -> dict[str, Callable[..., Any]]:
    """The conditional edges (async: a plain function would cost a thread hop per edge)."""

    def expansion(state: TotState, beam: list[Any]) -> list[Send]:
        entry = state.get("entry_point", "")
        return expand_sends(state["goal"], entry, beam, state.get("round", 0) + 1, config.branching)

    async def after_prepare(state: TotState) -> list[Send]:
        return expansion(state, [])

    async def after_collect(state: TotState) -> list[Send] | str:
        children = list(state.get("children", {}).values())
        entry = state.get("entry_point", "")
        checks = state.get("spec_checks", [])
        return evaluate_sends(children, state["goal"], entry, checks) or "prune"

    async def after_prune(state: TotState, runtime: Runtime[TeamContext]) -> list[Send] | str:
        limits = deps.limits(deps.run_context(runtime.context))
        room = 0 if guard(state, limits) else limits.max_steps - state.get("steps", 0)
        beam = state.get("beam", [])
        if next_step(state.get("found"), beam, state.get("round", 0), config, room) == "expand":
            return expansion(state, beam)
        return "conclude"

    async def to_human_or_delivery(state: TotState, runtime: Runtime[TeamContext]) -> str:
        return after_conclude(deps.run_context(runtime.context))

    return {
        "prepare": after_prepare,
        "collect": after_collect,
        "prune": after_prune,
        "conclude": to_human_or_delivery,
    }


def build_tot(
    deps: TeamDeps, config: TotConfig | None = None
) -> StateGraph[TotState, TeamContext, TeamInput, TotState]:
    """The uncompiled graph on `deps`."""
    config = config or TotConfig()

    def destination(ctx: TeamContext, thread_id: str) -> str:
        return str(deps.destination(ctx, thread_id))

    cache = CachePolicy(key_func=evaluation_key, ttl=EVALUATION_TTL_S)
    builder = StateGraph(TotState, context_schema=TeamContext, input_schema=TeamInput)
    builder.add_node("prepare", make_prepare(deps))
    builder.add_node("expand", make_expand(deps), retry_policy=MODEL_RETRY)
    builder.add_node("collect", make_collect())
    builder.add_node("evaluate", make_evaluate(deps), cache_policy=cache)
    builder.add_node("prune", make_prune(config))
    builder.add_node("conclude", make_conclude(deps, guard, destination))
    builder.add_node("approval", make_approval(deps))
    builder.add_node("deliver", make_deliver(deps))
    routes = _routes(deps, config)
    builder.add_edge(START, "prepare")
    builder.add_conditional_edges("prepare", routes["prepare"], ["expand"])
    builder.add_edge("expand", "collect")
    builder.add_conditional_edges("collect", routes["collect"], ["evaluate", "prune"])
    builder.add_edge("evaluate", "prune")
    builder.add_conditional_edges("prune", routes["prune"], ["expand", "conclude"])
    builder.add_conditional_edges("conclude", routes["conclude"], ["approval", "deliver"])
    builder.add_edge("approval", "deliver")  # a rejection is delivered as a refusal, with why
    builder.add_edge("deliver", END)
    return builder


def compile_tot(
    deps: TeamDeps,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    config: TotConfig | None = None,
    cache: BaseCache[Any] | None = None,
) -> CompiledStateGraph[TotState, TeamContext, TeamInput, TotState]:
    """Compile with the given checkpointer (the server's when None) and the runs' cache."""
    builder = build_tot(deps, config)
    return builder.compile(
        checkpointer=checkpointer, cache=cache or InMemoryCache(), name="tree-of-thoughts"
    )
