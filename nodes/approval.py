"""Approval: pauses the graph with `interrupt()` until a human approves or rejects.

Two kinds of question reach a human: the team's delivery (the `approval` node, whose answer the
supervisor acts on) and any tool call the gateway's policy holds (`interrupt_approver`, passed
to the gateway as the call's approver). Both are typed payloads a terminal or UI renders.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage
from langgraph.config import get_config
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import ValidationError

from graphs.context import TeamContext
from graphs.state import ApprovalRequest, ApprovalResume, TeamState
from service import deps
from tools.gateway import ApprovalDecision, Approver
from tools.gateway import ApprovalRequest as ToolApprovalRequest


def describe(state: TeamState, destination: str) -> ApprovalRequest:
    """The typed payload a terminal or UI renders for the human."""
    best = state.get("best")
    files = best["files"] if best else state.get("files", {})
    runs = state.get("test_runs", [])
    tests = "no tests ran"
    if runs:
        run = runs[-1]
        tests = (
            f"goal examples {run['spec_passed']}/{run['spec_total']}, "
            f"team tests {run['model_passed']}/{run['model_total']}"
        )
    summary = state.get("stop_reason") or "the team finished and the reviewer approved"
    return ApprovalRequest(
        action="deliver",
        summary=summary,
        files=sorted(files),
        destination=destination,
        tests=tests,
    )


def parse_resume(value: Any) -> ApprovalResume:
    """Validate the resume value; anything malformed counts as a rejection that says why."""
    if isinstance(value, bool):
        return ApprovalResume(approved=value)
    try:
        return ApprovalResume.model_validate(value)
    except ValidationError as exc:
        return ApprovalResume(approved=False, comment=f"invalid approval answer ignored: {exc}")


async def approval(state: TeamState, runtime: Runtime[TeamContext]) -> dict[str, Any]:
    """Ask a human to approve the sensitive delivery step."""
    ctx = deps.context_of(runtime.context)
    thread_id = str(get_config().get("configurable", {}).get("thread_id", "local"))
    request = describe(state, str(deps.out_dir(ctx, thread_id)))
    answer = parse_resume(interrupt(request.model_dump()))
    verdict = "approved" if answer.approved else "rejected"
    runtime.stream_writer({"role": "approval", "event": verdict, "comment": answer.comment})
    note = f"human {verdict} delivery" + (f": {answer.comment}" if answer.comment else "")
    return {
        "approval": {"approved": answer.approved, "comment": answer.comment},
        "steps": 1,
        "messages": [AIMessage(note, name="approval")],
    }


async def interrupt_approver(request: ToolApprovalRequest) -> ApprovalDecision:
    """Ask a human about one tool call: pauses the graph until `Command(resume=...)`.

    On resume the node runs again from its start and the gateway reaches this point again;
    `interrupt()` then returns the answer instead of pausing.
    """
    answer = parse_resume(interrupt(request.model_dump(mode="json")))
    return ApprovalDecision(approved=answer.approved, comment=answer.comment, approver="human")


def recorded_approver(decision: ApprovalResume, approver: str) -> Approver:
    """An approver that answers with a decision the graph already has (no second question)."""

    async def answer(_request: ToolApprovalRequest) -> ApprovalDecision:
        return ApprovalDecision(
            approved=decision.approved, comment=decision.comment, approver=approver
        )

    return answer
