"""The reviewer of the execution-first team: one concrete question instead of a critique.

When the two largest clusters of passing candidates are about as large, the reviewer sees the
goal, the first input on which they disagree and both outputs, and says which one the goal
requires. A small model cannot critique code reliably, but it can often compare two values
against a specification. "Neither" or an invalid answer keeps the larger cluster's winner.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime

from graphs.context import TeamContext
from graphs.deps import ModelOutputError, Node, TeamDeps
from graphs.selection_state import SelectionState
from nodes.candidates import SOLUTION
from nodes.route import question_key
from nodes.selection import ReviewerAnswer
from nodes.team_prompt import messages


def _facts(question: dict[str, str]) -> str:
    return (
        f"Input: {question['call']}\nOutput A: {question['output_a']}\n"
        f"Output B: {question['output_b']}"
    )


def make_referee(deps: TeamDeps) -> Node[SelectionState]:
    """The node that settles a close call between two clusters."""

    async def referee(state: SelectionState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Ask which output the goal requires; switch the winner if the answer is B."""
        ctx = deps.run_context(runtime.context)
        verdict = state["verdict"]
        question = verdict.get("question") or {}
        update: dict[str, Any] = {"steps": 1, "asked": [question_key(question)]}
        system, user = messages("reviewer", state["goal"], [_facts(question)], None, 3)
        runtime.stream_writer({"role": "reviewer", "event": "question", "input": question["call"]})
        try:
            answer, usage = await deps.ask_json(await deps.model(ctx), system, user, ReviewerAnswer)
        except ModelOutputError as exc:
            note = "reviewer: no valid answer; the larger cluster stays the winner"
            return {**update, "usage": exc.usage, "messages": [AIMessage(note, name="reviewer")]}
        update["usage"] = usage
        note = f"reviewer: for {question['call']} the goal requires {answer.answer}"
        update["messages"] = [AIMessage(note, name="reviewer")]
        chosen = question["b"] if answer.answer == "B" else ""
        if chosen and chosen in state.get("pool", {}):
            files = {SOLUTION: state["pool"][chosen]["code"]}
            best = state.get("best")
            iteration = best["iteration"] if best else state.get("iteration", 0)
            score = (verdict["spec_passed"], verdict["cluster_sizes"][0] + 1)
            update |= {
                "files": files,
                "best": {"files": files, "iteration": iteration, "score": score},
                "verdict": {**verdict, "winner": chosen},
            }
        return update

    return referee
