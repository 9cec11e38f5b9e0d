"""The coder of the execution-first team: candidates answered as fenced code.

A batch is two calls in parallel (`Send`): the greedy answer, and the round's samples at a
higher temperature drawn by one call, which the local server decodes together on its parallel
slots after reading the prompt once. A repair call gets one failing candidate with its failure
verbatim. The answer is plain text with one fenced code block: wrapping code in JSON costs a
small model accuracy.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graphs.context import TeamContext
from graphs.deps import ModelOutputError, Node, TeamDeps
from graphs.selection_state import PooledCandidate
from nodes.candidates import Candidate, Origin, Rejected, make_candidate
from nodes.route import RepairTask, SampleTask
from nodes.team_prompt import messages

LESSONS_TITLE = "Lessons from earlier similar tasks"
FEEDBACK_TITLE = "A human rejected the last delivery with this comment"


def _pooled(found: list[Candidate | Rejected], batch: int) -> dict[str, PooledCandidate]:
    """The batch's new candidates by id; the same program twice is one candidate, two votes."""
    pool: dict[str, PooledCandidate] = {}
    for item in found:
        if isinstance(item, Rejected):
            continue
        known = pool.get(item["id"])
        votes = known["votes"] + 1 if known else 1
        pool[item["id"]] = {
            "id": item["id"],
            "code": item["code"],
            "origin": item["origin"],
            "batch": batch,
            "votes": votes,
        }
    return pool


def _sections(task: SampleTask) -> list[str]:
    sections = []
    if task["lessons"]:
        sections.append(f"{LESSONS_TITLE}:\n" + "\n".join(f"- {x}" for x in task["lessons"]))
    if task["feedback"]:
        sections.append(f"{FEEDBACK_TITLE}:\n{task['feedback']}")
    return sections


async def _candidates(
    deps: TeamDeps,
    runtime: Runtime[TeamContext],
    prompt: tuple[str, str],
    origin: Origin,
    *,
    seed: int,
    batch: int,
    entry_point: str,
    count: int = 1,
) -> dict[str, Any]:
    """Draw `count` candidates with one call (greedy at temperature 0, the others hotter)."""
    ctx = deps.run_context(runtime.context)
    model = await deps.model(ctx)
    system, user = prompt
    temperature = 0.0 if origin == "greedy" else deps.sampling.temperature
    try:
        if count > 1:
            texts, usage = await deps.ask_texts(
                model, system, user, n=count, temperature=temperature, seed=seed
            )
        else:
            text, usage = await deps.ask_text(
                model, system, user, temperature=temperature, seed=seed
            )
            texts = [text]
    except ModelOutputError as exc:  # refused by the budget: no candidates; the guard stops
        runtime.stream_writer({"role": "coder", "event": "failed", "error": str(exc)[:300]})
        return {"pool": {}, "batch": batch, "usage": exc.usage, "steps": 1}
    found = [make_candidate(text, origin, entry_point or None) for text in texts]
    for item in found:
        event = "rejected" if isinstance(item, Rejected) else "wrote"
        runtime.stream_writer({"role": "coder", "event": event, "origin": origin, "batch": batch})
    return {"pool": _pooled(found, batch), "batch": batch, "usage": usage, "steps": 1}


def make_sample(deps: TeamDeps) -> Node[SampleTask]:
    """The node that draws one candidate of a batch."""

    async def sample(state: SampleTask, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Write one whole solution (greedy or sampled) for the goal."""
        prompt = messages("coder", state["goal"], _sections(state), None, 2)
        update = await _candidates(
            deps,
            runtime,
            prompt,
            state["origin"],
            seed=state["seed"],
            batch=state["batch"],
            entry_point=state["entry_point"],
            count=state.get("count", 1),
        )
        if state.get("widen", False):
            update["widened"] = [state["batch"]]
        return update

    return sample


def make_repair(deps: TeamDeps) -> Node[RepairTask]:
    """The node that repairs one failing candidate from its failure."""

    async def repair(state: RepairTask, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Fix one candidate, shown its failing call, expected and actual value verbatim."""
        code = f"The solution:\n```python\n{state['code']}\n```"
        failure = f"What happened when it ran:\n{state['failure']}"
        prompt = messages("coder_repair", state["goal"], [code, failure])
        return await _candidates(
            deps,
            runtime,
            prompt,
            "repair",
            seed=state["seed"],
            batch=state["batch"],
            entry_point=state["entry_point"],
        )

    return repair
