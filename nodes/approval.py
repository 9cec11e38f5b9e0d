"""Approval: pauses the graph with `interrupt()` until a human approves or rejects.

Two kinds of question reach a human: the team's delivery (the `approval` node, whose answer the
supervisor acts on) and any tool call the gateway's policy holds (`interrupt_approver`, passed
to the gateway as the call's approver). Both are typed payloads a terminal or UI renders.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.config import get_config
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import ValidationError

from graphs.context import TeamContext, principal_of
from graphs.state import ApprovalRequest, ApprovalResume, TeamState
from service import deps
from tools.gateway import ApprovalDecision, Approver, CallContext
from tools.gateway import ApprovalRequest as ToolApprovalRequest
from tools.registry import MemoryWorkspace


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


def approval_key(thread_id: str, destination: str, files: dict[str, str]) -> str:
    """What an approval is bound to: this task, this folder and exactly these files.

    The approval step records the human's answer under it and the deliver step looks it up,
    so an answer is worth nothing for other files, another folder, or state a client edited.
    """
    body = json.dumps([thread_id, destination, sorted(files.items())], ensure_ascii=False)
    return "approval:" + hashlib.sha256(body.encode()).hexdigest()


def delivery_args(files: dict[str, str], summary: str) -> dict[str, Any]:
    """The `deliver_files` arguments the human is asked about (the report is added later)."""
    return {
        "files": [{"path": p, "content": c} for p, c in sorted(files.items())],
        "summary": summary,
    }


def answered_by(config: Any) -> str:
    """Who gave the answer this run resumed with; refused if their key may not approve.

    The server's auth handler already refuses such a resume (`service.run_guard`); this holds
    when a run reaches the graph another way. Raising fails the run before anything is
    ledgered, so the question stays open for a human.
    """
    principal = principal_of(config)
    if principal is not None and not principal.can_approve:
        raise PermissionError(
            f"an answer from a key of {principal.tenant!r} that may not approve was ignored"
        )
    return deps.approver_of(config)


def ask_human(request: ApprovalRequest, who: str) -> Approver:
    """An approver that pauses the graph with the team's payload and reads the answer."""

    async def ask(_request: ToolApprovalRequest) -> ApprovalDecision:
        answer = parse_resume(interrupt(request.model_dump()))
        answered_by(get_config())
        return ApprovalDecision(approved=answer.approved, comment=answer.comment, approver=who)

    return ask


async def approval(state: TeamState, runtime: Runtime[TeamContext]) -> dict[str, Any]:
    """Ask a human to approve the sensitive delivery step; the answer is ledgered.

    The question goes through the gateway (`request_approval`), so the ledger holds one
    `ApprovalRequested` and one answer, by whom, bound to the files and folder shown.
    """
    ctx = deps.run_context(runtime.context)
    config = get_config()
    thread_id = str(config.get("configurable", {}).get("thread_id", "local"))
    destination = str(deps.destination(ctx, thread_id, state.get("destination")))
    best = state.get("best")
    files = best["files"] if best else state.get("files", {})
    request = describe(state, destination)
    gateway = await deps.get_gateway(ctx)
    answer = await gateway.request_approval(
        "deliver_files",
        delivery_args(files, request.summary),
        CallContext(
            thread_id=thread_id,
            tool_call_id="deliver",
            workspace=MemoryWorkspace(),
            tenant_id=ctx.tenant,
            approver=ask_human(request, deps.approver_of(config)),
            approval_key=approval_key(thread_id, destination, files),
        ),
        reason="the team asks before delivering",
    )
    verdict = "approved" if answer.approved else "rejected"
    runtime.stream_writer({"role": "approval", "event": verdict, "comment": answer.comment})
    note = f"human {verdict} delivery" + (f": {answer.comment}" if answer.comment else "")
    return {
        "approval": {"approved": answer.approved, "comment": answer.comment},
        "destination": destination,
        "steps": 1,
        "messages": [AIMessage(note, name="approval")],
    }


async def interrupt_approver(request: ToolApprovalRequest) -> ApprovalDecision:
    """Ask a human about one tool call: pauses the graph until `Command(resume=...)`.

    On resume the node runs again from its start and the gateway reaches this point again;
    `interrupt()` then returns the answer instead of pausing.
    """
    answer = parse_resume(interrupt(request.model_dump(mode="json")))
    who = answered_by(get_config())
    return ApprovalDecision(approved=answer.approved, comment=answer.comment, approver=who)


def recorded_approver(decision: ApprovalResume, approver: str) -> Approver:
    """An approver that answers with a decision the graph already has (no second question)."""

    async def answer(_request: ToolApprovalRequest) -> ApprovalDecision:
        return ApprovalDecision(
            approved=decision.approved, comment=decision.comment, approver=approver
        )

    return answer
