"""The coder of the execution-first team: one candidate per call, answered as fenced code.

A batch is several of these calls in parallel (`Send`): one greedy answer and a few sampled at
a higher temperature, which the local server decodes together on its parallel slots. A repair
call gets one failing candidate with its failure verbatim. The answer is plain text with one
fenced code block: wrapping code in JSON costs a small model accuracy.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graphs.context import TeamContext
from graphs.deps import Node, TeamDeps
from graphs.selection_state import PooledCandidate
from nodes.candidates import Candidate, Origin, Rejected, make_candidate
from nodes.route import RepairTask, SampleTask
from nodes.team_prompt import messages

LESSONS_TITLE = "Lessons from earlier similar tasks"
FEEDBACK_TITLE = "A human rejected the last delivery with this comment"


def _pooled(found: Candidate | Rejected, batch: int) -> dict[str, PooledCandidate]:
    if isinstance(found, Rejected):
        return {}
    return {
        found["id"]: {
            "id": found["id"],
            "code": found["code"],
            "origin": found["origin"],
            "batch": batch,
            "votes": 1,
        }
    }


def _sections(task: SampleTask) -> list[str]:
    sections = []
    if task["lessons"]:
        sections.append(f"{LESSONS_TITLE}:\n" + "\n".join(f"- {x}" for x in task["lessons"]))
    if task["feedback"]:
        sections.append(f"{FEEDBACK_TITLE}:\n{task['feedback']}")
    return sections


async def _one_candidate(
    deps: TeamDeps,
    runtime: Runtime[TeamContext],
    prompt: tuple[str, str],
    origin: Origin,
    *,
    seed: int,
    batch: int,
    entry_point: str,
) -> dict[str, Any]:
    ctx = deps.run_context(runtime.context)
    temperature = 0.0 if origin == "greedy" else deps.sampling.temperature
    system, user = prompt
    text, usage = await deps.ask_text(
        await deps.model(ctx), system, user, temperature=temperature, seed=seed
    )
    found = make_candidate(text, origin, entry_point or None)
    event = "rejected" if isinstance(found, Rejected) else "wrote"
    runtime.stream_writer({"role": "coder", "event": event, "origin": origin, "batch": batch})
    return {"pool": _pooled(found, batch), "batch": batch, "usage": usage, "steps": 1}


def make_sample(deps: TeamDeps) -> Node[SampleTask]:
    """The node that draws one candidate of a batch."""

    async def sample(state: SampleTask, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Write one whole solution (greedy or sampled) for the goal."""
        prompt = messages("coder", state["goal"], _sections(state), None, 2)
        return await _one_candidate(
            deps,
            runtime,
            prompt,
            state["origin"],
            seed=state["seed"],
            batch=state["batch"],
            entry_point=state["entry_point"],
        )

    return sample


def make_repair(deps: TeamDeps) -> Node[RepairTask]:
    """The node that repairs one failing candidate from its failure."""

    async def repair(state: RepairTask, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Fix one candidate, shown its failing call, expected and actual value verbatim."""
        code = f"The solution:\n```python\n{state['code']}\n```"
        failure = f"What happened when it ran:\n{state['failure']}"
        prompt = messages("coder_repair", state["goal"], [code, failure])
        return await _one_candidate(
            deps,
            runtime,
            prompt,
            "repair",
            seed=state["seed"],
            batch=state["batch"],
            entry_point=state["entry_point"],
        )

    return repair
