"""The tester of the execution-first team: it proposes inputs, never expected outputs.

Small models are good at inputs and bad at expected values, so the candidates' outputs on these
inputs are compared with each other (agreement), never checked against the tester's opinion.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime
from typing_extensions import TypedDict

from graphs.context import TeamContext
from graphs.deps import ModelOutputError, Node, TeamDeps
from nodes.candidates import ProposedInputs, accept_inputs
from nodes.team_prompt import messages
from tools.checks import entry_point_of, extract_spec_checks


class ProbeTask(TypedDict):
    """What the tester gets (a `Send` payload)."""

    goal: str
    entry_point: str


def make_probe(deps: TeamDeps) -> Node[ProbeTask]:
    """The node that proposes the inputs the candidates are compared on."""

    async def probe(state: ProbeTask, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Ask for inputs once per task; an invalid answer means no extra inputs, not a stop."""
        ctx = deps.run_context(runtime.context)
        entry = state["entry_point"] or entry_point_of(state["goal"]) or ""
        limit = deps.sampling.inputs
        system, user = messages("tester", state["goal"], (), {"max_calls": limit}, 3)
        runtime.stream_writer({"role": "tester", "event": "proposing inputs"})
        try:
            proposed, usage = await deps.ask_json(
                await deps.model(ctx), system, user, ProposedInputs
            )
        except ModelOutputError as exc:
            return {"inputs": [], "usage": exc.usage, "steps": 1}
        known = [c.call for c in extract_spec_checks(state["goal"], entry)] if entry else []
        inputs = accept_inputs(proposed.calls, entry, limit=limit, known=known) if entry else []
        runtime.stream_writer({"role": "tester", "event": "inputs", "count": len(inputs)})
        return {"inputs": inputs, "usage": usage, "steps": 1}

    return probe
