"""The team's questions in Agent Inbox's shape, and a human's answers read back from it.

LangChain's Agent Inbox, Agent Chat UI and LangGraph Studio render an interrupt whose value is a
list of one `HumanInterrupt` (`action_request {action, args}`, `config {allow_*}`, a markdown
`description`) and resume it with a list of one `HumanResponse` (`{type, args}`). The team's own
typed request travels whole as `action_request.args`, so the task API, the CLI and the ledger
read the same fields as before through `request_of`. The TypedDicts mirror langgraph's
(`langgraph.prebuilt.interrupt`), which warn as deprecated when used.

Editing is not offered: an approval is bound to exactly the files shown (`nodes.approvers`), so
an edited delivery would need a new question. A human who wants changes responds with a comment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from typing_extensions import TypedDict

from graphs.state import ApprovalResume, DeliveryApprovalRequest
from tools.gateway import ApprovalRequest

ResponseType = Literal["accept", "ignore", "response", "edit"]
RESPONSE_TYPES: frozenset[str] = frozenset({"accept", "ignore", "response", "edit"})
EDIT_REFUSED = (
    "editing is not allowed: the approval is bound to the files shown; respond with a comment "
    "to ask for changes"
)
"""The rejection an `edit` answer becomes: nothing edited is ever delivered unasked."""


class ActionRequest(TypedDict):
    """What the human is asked to allow: an action's name and its arguments."""

    action: str
    args: dict[str, Any]


class HumanInterruptConfig(TypedDict):
    """Which answers the inbox offers."""

    allow_ignore: bool
    allow_respond: bool
    allow_edit: bool
    allow_accept: bool


class HumanInterrupt(TypedDict):
    """One question, as Agent Inbox renders it."""

    action_request: ActionRequest
    config: HumanInterruptConfig
    description: str | None


ALLOWED = HumanInterruptConfig(
    allow_ignore=True, allow_respond=True, allow_edit=False, allow_accept=True
)


def question_for(action: str, args: Mapping[str, Any], description: str) -> list[HumanInterrupt]:
    """The interrupt value: a list of one question (the prebuilt `interrupt([request])[0]`)."""
    request = ActionRequest(action=action, args=dict(args))
    return [HumanInterrupt(action_request=request, config=ALLOWED, description=description)]


def request_of(value: Any) -> dict[str, Any] | None:
    """The team's own request inside an interrupt value (None for a value of another shape).

    Accepts the inbox shape (a list of one `HumanInterrupt`, or one alone) and the plain
    request threads paused before it carry.
    """
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, dict):
        return None
    action = value.get("action_request")
    if isinstance(action, dict):
        args = action.get("args")
        return args if isinstance(args, dict) else None
    return value


def single(value: Any) -> Any:
    """A resume value with the inbox's list of one answer unwrapped."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def human_answer(value: Any) -> ApprovalResume | None:
    """A `HumanResponse` as the team's answer; None when `value` is not one.

    `accept` approves; `ignore` rejects; `response` rejects with the text as the comment (the
    human asks for changes); `edit` rejects, saying why.
    """
    if not isinstance(value, Mapping) or value.get("type") not in RESPONSE_TYPES:
        return None
    kind, args = value["type"], value.get("args")
    if kind == "accept":
        return ApprovalResume(approved=True)
    if kind == "ignore":
        return ApprovalResume(approved=False)
    if kind == "edit":
        return ApprovalResume(approved=False, comment=EDIT_REFUSED)
    if not isinstance(args, str):
        return ApprovalResume(approved=False, comment="invalid approval answer ignored: no text")
    text = args.strip()
    if len(text) > 4000:
        return ApprovalResume(approved=False, comment="invalid approval answer ignored: too long")
    return ApprovalResume(approved=False, comment=text)


def fenced(text: str, language: str) -> str:
    """`text` in a code fence longer than any backtick run inside it."""
    longest, run = 0, 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text.rstrip()}\n{fence}"


def _bullets(title: str, items: list[str]) -> list[str]:
    return [f"**{title}**", "", *(f"- {item}" for item in items), ""] if items else []


def delivery_markdown(request: DeliveryApprovalRequest) -> str:
    """What the inbox shows for the delivery: where, the checks, the flags, then the code."""
    lines = [
        f"## Deliver {len(request.files)} file(s) to `{request.destination}`",
        "",
        f"{request.summary}. Tests: {request.tests}.",
        "",
        *_bullets("Failing checks", request.failing),
        *_bullets("Flags (review these)", request.flags),
    ]
    for path, text in request.contents.items():
        language = "python" if path.endswith(".py") else ""
        lines += [f"### `{path}`", "", fenced(text, language), ""]
    lines.append(
        "Accept to deliver these files; respond with a comment to ask for changes; "
        "ignore to reject."
    )
    return "\n".join(lines)


def tool_markdown(request: ApprovalRequest) -> str:
    """What the inbox shows for a tool call the policy holds for a human."""
    arguments = json.dumps(request.args, indent=2, ensure_ascii=False)[:20_000]
    return "\n".join(
        [
            f"## Allow `{request.tool}` ({request.side_effect})?",
            "",
            f"Why: {request.reason}",
            "",
            fenced(arguments, "json"),
            "",
            "Accept to allow the call; respond or ignore to refuse it.",
        ]
    )
