"""The ReAct worker's model turn: one tool call, decided by the model, under the task's limits.

The model sees the goal, the files, and its own earlier calls with their observations, and must
answer with exactly one call of the offered tools (`TeamDeps.ask_tools`: on the bundled server
the call is decoded under the tools' JSON schemas). The step limit and the token budget are
checked before the call, and a call the hard budget refuses ends the loop the same way: with a
stated reason, not an error.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, SystemMessage
from langgraph.runtime import Runtime

from graphs.context import TeamContext
from graphs.deps import ModelOutputError, Node, TeamDeps
from graphs.react_state import ReactState
from graphs.state import task_goal
from nodes.prompts import load_prompt
from nodes.react_support import (
    CATALOGUE,
    GOAL,
    offered,
    opening,
    over_limits,
    reserved,
    visible,
)

ROLE = "react"


def _stopped(reason: str, added: list[AnyMessage]) -> dict[str, Any]:
    note = AIMessage(f"Stopped: {reason}.", name=ROLE)
    return {
        "outcome": {"status": "stopped", "reason": reason, "summary": ""},
        "messages": [*added, note],
    }


def make_react_agent(deps: TeamDeps, tools: Collection[str] = CATALOGUE) -> Node[ReactState]:
    """The node that asks the model for the next tool call."""

    async def agent(state: ReactState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """One model turn, or the stated stop when a limit is reached."""
        ctx = deps.run_context(runtime.context)
        goal = task_goal(state)
        messages = list(state.get("messages") or [])
        added: list[AnyMessage] = []
        if not any(m.name == GOAL for m in messages):
            added.append(opening(goal, state.get("files") or {}))
        reason = over_limits(state, deps.limits(ctx))
        if reason is not None:
            return {"goal": goal, **_stopped(reason, added)}
        gateway = await deps.gateway(ctx)
        definitions = offered(gateway.tool_definitions(ctx.tenant), tools)
        model = await deps.model(ctx)
        system = SystemMessage(load_prompt(ROLE).text)
        budget = deps.prompt_budget - reserved(system, definitions)
        prompt = [system, *visible([*messages, *added], budget)]
        try:
            reply, usage = await deps.ask_tools(model, prompt, definitions)
        except ModelOutputError as exc:  # refused by the budget: a stated stop, not a crash
            return {"goal": goal, "usage": exc.usage, **_stopped(str(exc), added)}
        reply.name = ROLE
        runtime.stream_writer(
            {"role": ROLE, "event": "turn", "calls": [c["name"] for c in reply.tool_calls]}
        )
        return {"goal": goal, "messages": [*added, reply], "steps": 1, "usage": usage}

    return agent
