"""Approval: pauses the graph with `interrupt()` until a human approves or rejects the delivery.

The supervisor (or the execution-first team's router) acts on the answer. The question goes
through the gateway, so the ledger holds it and the answer, bound to the files and folder shown;
what an answer is bound to and who gave it live in `nodes.approvers`, shared with `deliver`.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage
from langgraph.config import get_config
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from graphs.context import TeamContext
from graphs.deps import Node, TeamDeps
from graphs.state import (
    DeliveryApprovalRequest,
    TeamState,
    TestRun,
    failed_checks,
    files_to_deliver,
    run_of_delivered,
)
from nodes.approvers import (
    answered_by,
    approval_key,
    approver_of,
    delivery_args,
    parse_resume,
)
from nodes.inbox import delivery_markdown, question_for
from tools.gateway import ApprovalDecision, ApprovalRequest, Approver, CallContext
from tools.workspaces import MemoryWorkspace

SHOWN_CHARS = 20_000
"""A file's text the approval request carries at most (the rest is cut, with a note)."""
SHOWN_FAILURES = 10


def _shown(text: str) -> str:
    if len(text) <= SHOWN_CHARS:
        return text
    return text[:SHOWN_CHARS] + f"\n… ({len(text) - SHOWN_CHARS} more characters not shown)"


def _failures(run: TestRun) -> list[str]:
    failed = failed_checks(run, len(run["checks"]))
    lines = [f"{c['name']}: {c['error'] or 'failed'}"[:500] for c in failed[:SHOWN_FAILURES]]
    if len(failed) > SHOWN_FAILURES:
        lines.append(f"… and {len(failed) - SHOWN_FAILURES} more")
    if run["error"] and not lines:
        lines.append(run["error"][:500])
    return lines


def describe(state: TeamState, destination: str) -> DeliveryApprovalRequest:
    """The typed payload a terminal or UI renders for the human.

    It carries what would be delivered, where, and the checks it fails: a person approves the
    code itself, not a summary of it.
    """
    files = files_to_deliver(state)
    run = run_of_delivered(state)
    tests = "no tests ran"
    if run is not None:
        tests = (
            f"goal examples {run['spec_passed']}/{run['spec_total']}, "
            f"team tests {run['model_passed']}/{run['model_total']}"
        )
    summary = state.get("stop_reason") or "the team finished and the reviewer approved"
    return DeliveryApprovalRequest(
        action="deliver",
        summary=summary,
        files=sorted(files),
        destination=destination,
        tests=tests,
        contents={path: _shown(files[path]) for path in sorted(files)},
        failing=_failures(run) if run is not None else [],
    )


def ask_human(request: DeliveryApprovalRequest, who: str) -> Approver:
    """An approver that pauses the graph with the team's payload and reads the answer.

    The payload goes out in Agent Inbox's shape: the request whole as `action_request.args`, the
    code and failing checks as the markdown `description`.
    """

    async def ask(_request: ApprovalRequest) -> ApprovalDecision:
        question = question_for(request.action, request.model_dump(), delivery_markdown(request))
        answer = parse_resume(interrupt(question))
        answered_by(get_config())
        return ApprovalDecision(approved=answer.approved, comment=answer.comment, approver=who)

    return ask


def make_approval(deps: TeamDeps) -> Node[TeamState]:
    """The node that asks a human before the sensitive delivery step."""

    async def approval(state: TeamState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Ask a human to approve the sensitive delivery step; the answer is ledgered.

        The question goes through the gateway (`request_approval`), so the ledger holds one
        `ApprovalRequested` and one answer, by whom, bound to the files and folder shown.
        """
        ctx = deps.run_context(runtime.context)
        config = get_config()
        thread_id = deps.thread_id()
        destination = str(deps.destination(ctx, thread_id, state.get("destination")))
        files = files_to_deliver(state)
        gateway = await deps.gateway(ctx)
        request = describe(state, destination)
        request.flags = await gateway.flags(thread_id)
        answer = await gateway.request_approval(
            "deliver_files",
            delivery_args(files, request.summary),
            CallContext(
                thread_id=thread_id,
                tool_call_id="deliver",
                workspace=MemoryWorkspace(),
                tenant_id=ctx.tenant,
                approver=ask_human(request, approver_of(config)),
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

    return approval
