"""The gateway's approval step: ask a human once per call, and remember the answer.

A decision already recorded under the call's approval key is reused, so a resumed graph does
not ask twice. Otherwise `ApprovalRequested` is logged (once) and the approver is awaited: in
the graph it calls `interrupt()`, which works by raising, so exceptions from the approver
propagate. The answer is logged as `ApprovalGiven`/`ApprovalRejected`, where the next ask finds
it.
"""

from __future__ import annotations

from tools.call_ledger import CallLedger
from tools.ledger import EventKind, LedgerEvent
from tools.tool_call import ApprovalDecision, ApprovalRequest, Approver, PreparedCall

__all__ = ["decide"]

_DECISIONS: tuple[EventKind, ...] = ("ApprovalGiven", "ApprovalRejected")


async def decide(
    book: CallLedger, call: PreparedCall, reason: str, approver: Approver | None
) -> ApprovalDecision:
    """The decision on `call`: the recorded one, else the approver's (`reason` says why)."""
    ctx = call.ctx
    approval_key = ctx.approval_key or call.key
    # One read answers both questions: was this call decided already, and was it asked.
    logged = await book.ledger.events(
        ctx.thread_id, 0, 1000, kinds=[*_DECISIONS, "ApprovalRequested"], key=approval_key
    )
    recorded = _recorded(logged)
    if recorded is not None:
        return recorded
    request = _request(call, reason, approval_key)
    if not any(event.kind == "ApprovalRequested" for event in logged):
        await book.event(
            ctx, "ApprovalRequested", approval_key, call.spec, request.model_dump(mode="json")
        )
    decision = await _ask(approver, request)
    kind: EventKind = "ApprovalGiven" if decision.approved else "ApprovalRejected"
    await book.event(
        ctx,
        kind,
        approval_key,
        call.spec,
        {"comment": decision.comment, "approver": decision.approver},
    )
    return decision


def _recorded(logged: list[LedgerEvent]) -> ApprovalDecision | None:
    """The last decision among the events logged under the call's approval key, if any."""
    recorded = [event for event in logged if event.kind in _DECISIONS]
    if not recorded:
        return None
    data = recorded[-1].data
    return ApprovalDecision(
        approved=recorded[-1].kind == "ApprovalGiven",
        comment=str(data.get("comment", "")),
        approver=str(data.get("approver", "")),
    )


def _request(call: PreparedCall, reason: str, approval_key: str) -> ApprovalRequest:
    """What the human is shown: the tool, its class, the arguments and why it needs a yes."""
    return ApprovalRequest(
        tool=call.spec.name,
        version=call.spec.version,
        description=call.spec.description,
        side_effect=call.spec.side_effect,
        args=call.args_json,
        reason=reason,
        thread_id=call.ctx.thread_id,
        task_id=call.task_id,
        tenant_id=call.ctx.tenant_id,
        tool_call_id=call.ctx.tool_call_id,
        key=approval_key,
    )


async def _ask(approver: Approver | None, request: ApprovalRequest) -> ApprovalDecision:
    """The approver's answer as a decision; without an approver nothing is approved."""
    if approver is None:
        return ApprovalDecision(
            approved=False, comment="no approver is configured for this deployment"
        )
    answer = await approver(request)
    if isinstance(answer, ApprovalDecision):
        return answer
    return ApprovalDecision.model_validate(dict(answer))
