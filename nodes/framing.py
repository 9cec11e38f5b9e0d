"""The first and last steps of the execution-first team: prepare the task, conclude it.

`prepare` spends no model call: it finds the function to write, extracts the goal's own
examples (ground truth for every batch) and pages in lessons of earlier similar tasks.
`conclude` writes why the team stopped and, unless a human is asked, the approval policy's
answer; the delivery folder is fixed here, so the human approves the folder it goes to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime

from graphs.context import TeamContext
from graphs.deps import Node, TeamDeps
from graphs.selection_state import SelectionState
from graphs.state import task_goal
from nodes.route import stop_reason
from nodes.search_support import policy_answer
from tools.checks import encode, entry_point_of, extract_spec_checks


def make_prepare(deps: TeamDeps) -> Node[SelectionState]:
    """The node that reads the goal before any model call."""

    async def prepare(state: SelectionState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Entry point, the goal's examples and lessons, once per task."""
        goal = task_goal(state)  # checked; a chat's goal is taken from its last message
        update: dict[str, Any] = {"steps": 1, "goal": goal}
        state = {**state, "goal": goal}
        ctx = deps.run_context(runtime.context)
        entry = state.get("entry_point") or entry_point_of(state["goal"]) or ""
        if entry:
            update["entry_point"] = entry
        if "spec_checks" not in state and entry:
            found = extract_spec_checks(state["goal"], entry)
            update["spec_checks"] = [encode(check) for check in found]
        if "lessons" not in state:
            update["lessons"] = await deps.lessons(ctx, state["goal"])
        examples = len(update.get("spec_checks", state.get("spec_checks", [])))
        note = f"team: writing `{entry or '?'}`; {examples} example(s) in the goal"
        runtime.stream_writer({"role": "supervisor", "event": "prepared", "examples": examples})
        return {**update, "messages": [AIMessage(note, name="supervisor")]}

    return prepare


def make_conclude(
    deps: TeamDeps, destination: Callable[[TeamContext, str], str]
) -> Node[SelectionState]:
    """The node that settles the stop reason, the approval policy and the destination."""

    async def conclude(state: SelectionState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Why the team stops; `auto`/`deny` answer here, `ask` goes to the human next."""
        ctx = deps.run_context(runtime.context)
        reason = stop_reason(state, deps.limits(ctx))
        update: dict[str, Any] = {"steps": 1, "stop_reason": reason}
        update |= policy_answer(ctx, state.get("destination"), destination, deps.thread_id())
        note = f"team: done ({reason})" if reason else "team: a candidate passes every example"
        runtime.stream_writer({"role": "supervisor", "event": "concluded", "reason": reason})
        return {**update, "messages": [AIMessage(note, name="supervisor")]}

    return conclude
