"""Asking a human: the answer's validation, who gave it, and what it is bound to.

Shared by the `approval` node (the team's delivery question) and the `deliver` node (the
`deliver_files` call's approver), which as node modules may not import each other. Two kinds
of question reach a human: the team's delivery and any tool call the gateway's policy holds
(`interrupt_approver`, passed to the gateway as the call's approver). Both are typed payloads a
terminal or UI renders, sent in Agent Inbox's `HumanInterrupt` shape (`nodes.inbox`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from langgraph.config import get_config
from langgraph.types import interrupt
from pydantic import ValidationError

from graphs.context import principal_of
from graphs.state import ApprovalResume
from nodes.inbox import human_answer, question_for, single, tool_markdown
from tools.gateway import ApprovalDecision, ApprovalRequest, Approver


def parse_resume(value: Any) -> ApprovalResume:
    """Validate the resume value; anything malformed counts as a rejection that says why.

    Accepted: the inbox's `HumanResponse` (`nodes.inbox.human_answer`), `{"approved": bool,
    "comment": str}` or a bool, each alone or as a list of one (how Agent Inbox resumes).
    """
    value = single(value)
    if (answer := human_answer(value)) is not None:
        return answer
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


def approver_of(config: Any) -> str:
    """Who answered an approval in this run: the authenticated user, else the local user.

    Derived from the run's config alone (the server puts the authenticated user there), so the
    ledger names the same approver whichever process resumes the run.
    """
    principal = principal_of(config)
    return f"human ({principal.tenant})" if principal else "human"


def answered_by(config: Any) -> str:
    """Who gave the answer this run resumed with; refused if their key may not approve.

    The server's auth handler already refuses such a resume (`service.api.run_guard`); this holds
    when a run reaches the graph another way. Raising fails the run before anything is
    ledgered, so the question stays open for a human.
    """
    principal = principal_of(config)
    if principal is not None and not principal.can_approve:
        raise PermissionError(
            f"an answer from a key of {principal.tenant!r} that may not approve was ignored"
        )
    return approver_of(config)


async def interrupt_approver(request: ApprovalRequest) -> ApprovalDecision:
    """Ask a human about one tool call: pauses the graph until `Command(resume=...)`.

    On resume the node runs again from its start and the gateway reaches this point again;
    `interrupt()` then returns the answer instead of pausing.
    """
    question = question_for(request.tool, request.model_dump(mode="json"), tool_markdown(request))
    answer = parse_resume(interrupt(question))
    who = answered_by(get_config())
    return ApprovalDecision(approved=answer.approved, comment=answer.comment, approver=who)


def recorded_approver(decision: ApprovalResume, approver: str) -> Approver:
    """An approver that answers with a decision the graph already has (no second question)."""

    async def answer(_request: ApprovalRequest) -> ApprovalDecision:
        return ApprovalDecision(
            approved=decision.approved, comment=decision.comment, approver=approver
        )

    return answer
