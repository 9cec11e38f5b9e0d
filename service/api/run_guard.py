"""What a served request may ask of a run: checked before the server accepts it.

Every served input is hostile. The server's auth handlers (`service.api.auth`) call these checks on
each run, cron and assistant a caller creates, on the native LangGraph API and the task façade
alike, and turn a `Refused` into a 4xx that names the field. The graph applies the same policy
again when it runs (`service.deps.served_context`), so a request that got past here still
cannot reach a host path, another tenant or a delivery no human approved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from graphs.architectures import ARCHITECTURE_NAMES, AUTO
from graphs.context import IN_PROCESS_ONLY, STRICTNESS, ApproveMode, safe_relative_path
from graphs.state import MAX_GOAL_CHARS, TASK_FIELDS
from nodes.inbox import RESPONSE_TYPES
from service.deps import effective_approve
from service.repos import REPO_INPUT_KEYS, RepoCaps, RepoError, check_files
from service.settings import Settings

SERVED_FIELDS = frozenset(
    {
        "approve",
        "delivery_path",
        "max_steps",
        "max_iterations",
        "token_budget",
        "use_memory",
        "architecture",
    }
)
"""The run context a served request may set (TeamContext's served schema)."""
INPUT_FIELDS = TASK_FIELDS
"""What `command.update` may edit: the task's input, which the caller gave in the first place."""

_CAPS = {
    "max_steps": "max_steps_cap",
    "max_iterations": "max_iterations_cap",
    "token_budget": "token_budget_cap",
}


@dataclass(frozen=True)
class Refused(Exception):
    """A request the server will not run: the status to answer and why, in one line."""

    status: int
    reason: str

    def __str__(self) -> str:
        return self.reason


def run_kwargs(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """The run's own fields: langgraph-api nests them under `kwargs`, Aegra does not."""
    kwargs = value.get("kwargs")
    return kwargs if isinstance(kwargs, Mapping) else value


def check_context(context: Any, *, tenant: str, settings: Settings, where: str = "context") -> None:
    """Refuse in-process-only fields, unknown fields, values over a cap and looser approval."""
    if context is None:
        return
    if not isinstance(context, Mapping):
        raise Refused(422, f"{where} must be an object")
    for name, value in context.items():
        if name in IN_PROCESS_ONLY:
            raise Refused(
                403,
                f"{where}.{name} is decided by the server for a served run, not by the request "
                "(the tenant comes from your API key; deliveries go to the task's own folder)",
            )
        if name in SERVED_FIELDS:
            _check_field(name, value, tenant=tenant, settings=settings, where=where)
        elif where == "context":
            raise Refused(422, f"context.{name} is not a run option ({_served_list()})")


def _served_list() -> str:
    return "one of " + ", ".join(sorted(SERVED_FIELDS))


def _check_field(name: str, value: Any, *, tenant: str, settings: Settings, where: str) -> None:
    if value is None:
        return
    if name == "approve":
        if not isinstance(value, str) or value not in STRICTNESS:  # a list is unhashable
            raise Refused(422, f"{where}.approve must be 'ask', 'auto' or 'deny'")
        if effective_approve(cast(ApproveMode, value), tenant, settings) != value:
            raise Refused(
                403,
                f"{where}.approve={value!r} is looser than this deployment's approval policy "
                "for your tenant (a human approves deliveries); ask for 'ask' or 'deny'",
            )
    elif name == "delivery_path":
        if not isinstance(value, str):
            raise Refused(422, f"{where}.delivery_path must be a string")
        try:
            safe_relative_path(value)
        except ValueError as exc:
            raise Refused(422, f"{where}.delivery_path {exc}") from None
    elif name == "use_memory":
        if not isinstance(value, bool):
            raise Refused(422, f"{where}.use_memory must be true or false")
    elif name == "architecture":
        _check_architecture(value, settings=settings, where=where)
    else:
        cap = int(getattr(settings, _CAPS[name]))
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= cap:
            raise Refused(422, f"{where}.{name} must be a whole number from 1 to {cap}")


def _check_architecture(value: Any, *, settings: Settings, where: str) -> None:
    """`auto` or an architecture the operator allows (whether it fits the input: the router)."""
    allowed = [name for name in ARCHITECTURE_NAMES if name in settings.architectures_allowed]
    if value == AUTO or (isinstance(value, str) and value in allowed):
        return
    raise Refused(
        422, f"{where}.architecture must be 'auto' or one of {', '.join(allowed) or 'none'}"
    )


def check_config(config: Any, *, tenant: str, settings: Settings) -> None:
    """`config.configurable` may not carry run options the context would refuse."""
    if config is None:
        return
    if not isinstance(config, Mapping):
        raise Refused(422, "config must be an object")
    configurable = config.get("configurable")
    if configurable is None:
        return
    if not isinstance(configurable, Mapping):
        raise Refused(422, "config.configurable must be an object")
    check_context(configurable, tenant=tenant, settings=settings, where="config.configurable")


def check_command(command: Any, *, can_approve: bool) -> None:
    """A client may answer the team (`resume`) and edit the task's input, nothing else.

    A dead-letter replay edits the input this way; the rest of the state and a jump (`goto`)
    are the team's own.
    """
    if command is None:
        return
    if not isinstance(command, Mapping):
        raise Refused(422, "command must be an object")
    check_input_update(command.get("update"))
    if command.get("goto") not in (None, [], {}):
        raise Refused(
            403,
            "command.goto is not accepted: a run may only answer the team's question "
            "with command.resume",
        )
    if "resume" in command and command["resume"] is not None:
        if not can_approve:
            raise Refused(403, "this API key may submit and watch tasks but not approve them")
        check_answer(command["resume"])


def check_input_update(update: Any) -> None:
    """`command.update` may only edit the task's input (`TeamInput`), as a new task could."""
    if update in (None, [], {}):
        return
    if not isinstance(update, Mapping):
        raise Refused(422, "command.update must be an object")
    others = sorted(str(name) for name in update if name not in INPUT_FIELDS)
    if others:
        raise Refused(
            403,
            f"command.update may only edit the task's input ({', '.join(sorted(INPUT_FIELDS))}),"
            f" not {', '.join(others)}: a run may only answer the team's question with "
            "command.resume",
        )
    for name, value in update.items():
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_GOAL_CHARS:
            raise Refused(
                422, f"command.update.{name} must be text of 1 to {MAX_GOAL_CHARS} characters"
            )


def check_answer(answer: Any, *, by_id: bool = True) -> None:
    """An approval answer: a boolean, {"approved", "comment"} or an inbox `HumanResponse`.

    Each may come alone or as a list of one (how Agent Inbox resumes), maybe by interrupt id.
    Answers by interrupt id are one level deep, and a list holds one plain answer: nesting them
    is malformed, not a reason to recurse (a deeply nested body would otherwise end in a
    RecursionError, a 500).
    """
    if isinstance(answer, list):
        if len(answer) != 1 or isinstance(answer[0], list):
            raise Refused(422, "command.resume as a list must hold exactly one answer")
        answer = answer[0]
        by_id = False
    if isinstance(answer, bool):
        return
    if isinstance(answer, Mapping) and "type" in answer:
        _check_human_response(answer)
        return
    if by_id and isinstance(answer, Mapping) and "approved" not in answer and answer:
        for value in answer.values():  # {interrupt_id: answer}
            check_answer(value, by_id=False)
        return
    if not isinstance(answer, Mapping) or not isinstance(answer.get("approved"), bool):
        raise Refused(
            422,
            'command.resume must be {"approved": true|false, "comment": "…"} or an inbox '
            'answer [{"type": "accept"|"ignore"|"response", "args": …}]',
        )
    _check_comment(answer.get("comment", ""))
    unknown = set(answer) - {"approved", "comment"}
    if unknown:
        raise Refused(422, f"command.resume has unknown fields: {', '.join(sorted(unknown))}")


def _check_comment(comment: Any) -> None:
    if not isinstance(comment, str) or len(comment) > 4000:
        raise Refused(422, "command.resume.comment must be text of at most 4000 characters")


def _check_human_response(answer: Mapping[str, Any]) -> None:
    """An inbox answer; `edit` is well formed but the graph reads it as a rejection."""
    kind = answer.get("type")
    if kind not in RESPONSE_TYPES:
        raise Refused(422, "command.resume.type must be 'accept', 'ignore', 'response' or 'edit'")
    unknown = set(answer) - {"type", "args"}
    if unknown:
        raise Refused(422, f"command.resume has unknown fields: {', '.join(sorted(unknown))}")
    if kind == "response":
        _check_comment(answer.get("args"))


def check_run(
    value: Mapping[str, Any], *, tenant: str, can_approve: bool, settings: Settings
) -> None:
    """Everything a run-creating request carries: context, config and command."""
    kwargs = run_kwargs(value)
    check_repo_input(kwargs.get("input"), settings=settings)
    check_context(kwargs.get("context"), tenant=tenant, settings=settings)
    check_config(kwargs.get("config"), tenant=tenant, settings=settings)
    check_command(kwargs.get("command"), can_approve=can_approve)


def check_repo_input(run_input: Any, *, settings: Settings) -> None:
    """A run input carrying a repository's files: the same caps and path rules as an upload."""
    if not isinstance(run_input, Mapping):
        return
    for key in REPO_INPUT_KEYS:
        if key in run_input:
            try:
                check_files(run_input[key], RepoCaps.from_settings(settings), where=f"input.{key}")
            except RepoError as exc:
                raise Refused(413 if exc.too_big else 422, str(exc)) from None
