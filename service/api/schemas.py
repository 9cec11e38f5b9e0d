"""The task API's wire format: the pydantic models of its requests, responses and stream.

Kept apart from the routes so every module of the façade (routes, run driver, dead-letter
routes) shares one definition of what a client sends and sees; the OpenAPI schema is generated
from these. A model here only validates and shapes data: it never calls the server.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    field_validator,
    model_validator,
)

from tools.ledger import LedgerEvent

TaskStatus = Literal["queued", "running", "waiting_for_approval", "completed", "failed"]
EventType = Literal["lifecycle", "progress", "tool", "approval", "policy", "other"]
MAX_AFTER = 2**53
"""The largest event id a client may resume after (JSON's largest exact integer)."""


# ---------------------------------------------------------------- errors


class ErrorDetail(BaseModel):
    """What went wrong, with a code clients can switch on."""

    code: str
    message: str
    details: list[dict[str, JsonValue]] | None = None


class ErrorBody(BaseModel):
    """Every error response of the façade."""

    error: ErrorDetail


# ---------------------------------------------------------------- tasks


def clean_text(value: str) -> str:
    """Refuse text that cannot be stored: NUL (PostgreSQL) and lone surrogates (UTF-8)."""
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None
    return value


class TaskOptions(BaseModel):
    """How the team works on the task (all optional; the deployment's defaults otherwise)."""

    model_config = ConfigDict(extra="forbid")

    approve: Literal["ask", "auto", "deny"] = Field(
        default="ask", description="Deliver only after a human approves, always, or never."
    )
    max_steps: int | None = Field(default=None, ge=1, le=200)
    max_iterations: int | None = Field(default=None, ge=1, le=20)
    token_budget: int | None = Field(default=None, ge=1, le=10_000_000)
    use_memory: bool = Field(default=True, description="Use and store lessons across tasks.")
    parent_task_id: uuid.UUID | None = Field(
        default=None,
        description="The task that created this one; its depth + 1 is this task's depth.",
    )


MAX_UPLOAD_CHARS = 64_000_000
"""A hard ceiling on an upload's base64 text; the operator's cap (`STRATEGOS_REPO_UPLOAD_MAX_BYTES`)
is checked when it is unpacked (`service.repos`)."""


class RepositorySource(BaseModel):
    """The repository a task works on: an uploaded archive, or a name the operator offers."""

    model_config = ConfigDict(extra="forbid")

    archive_base64: str | None = Field(
        default=None,
        max_length=MAX_UPLOAD_CHARS,
        description="A tar, tar.gz or zip of the repository, base64-encoded. Regular files only "
        "(a link refuses the upload), relative paths without '..'; capped in files and bytes.",
    )
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="A repository the operator offers (STRATEGOS_REPO_ROOTS), by name.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> RepositorySource:
        if (self.archive_base64 is None) == (self.name is None):
            raise ValueError("give exactly one of archive_base64 or name")
        return self


class CreateTaskRequest(BaseModel):
    """A new task for the team."""

    model_config = ConfigDict(extra="forbid")

    goal: str = Field(min_length=1, max_length=20_000, description="What to build.")
    options: TaskOptions = Field(default_factory=TaskOptions)
    repository: RepositorySource | None = Field(
        default=None,
        description="Work on a repository: the agents change a copy and deliver a reviewed "
        "patch. Without it, the team writes a module from the goal.",
    )

    @field_validator("goal")
    @classmethod
    def _goal(cls, value: str) -> str:
        value = clean_text(value)
        if not value.strip():
            raise ValueError("goal must not be blank")
        return value


class ApproveRequest(BaseModel):
    """A human's answer to the pending approval."""

    model_config = ConfigDict(extra="forbid")

    approved: StrictBool = Field(description="true approves, false rejects (no 'yes', no 1).")
    comment: str = Field(default="", max_length=4_000)

    @field_validator("comment")
    @classmethod
    def _comment(cls, value: str) -> str:
        return clean_text(value)


class TaskSummary(BaseModel):
    """A task in a listing."""

    task_id: str
    status: TaskStatus
    goal: str
    depth: int
    created_at: str
    updated_at: str


class TaskView(TaskSummary):
    """A task in detail."""

    current_step: str | None = Field(description="The node that runs (or waits) next.")
    pending_approval: dict[str, JsonValue] | None = Field(
        description="What the team asks a human to approve, while waiting_for_approval."
    )
    usage: dict[str, JsonValue] | None = Field(
        description="Model calls and tokens so far, and `cost_usd`: what they cost in USD at "
        "the operator's prices (absent for tasks started before costs were recorded); "
        "`by_role`: tokens each role (graph node) spent, from the budget ledger."
    )
    result: dict[str, JsonValue] | None = Field(description="The final report, once completed.")
    last_event_id: int = Field(description="Id of the newest event (resume point).")
    trace_id: str | None = Field(
        default=None,
        description="The task's OpenTelemetry trace (32 hex digits): the request that created "
        "it and its runs' spans; none when tracing is off.",
    )


class TaskList(BaseModel):
    """One page of the tenant's tasks, newest first."""

    tasks: list[TaskSummary]
    next_offset: int | None


class EventView(BaseModel):
    """One event of the task's log; `id` increases by one per event."""

    id: int
    type: EventType
    kind: str
    data: dict[str, JsonValue]
    created_at: float


class EventPage(BaseModel):
    """Events after a cursor; pass `next_after` as `after` for the next page."""

    events: list[EventView]
    next_after: int | None


_TYPES: dict[str, EventType] = {
    "WorkflowStarted": "lifecycle",
    "WorkflowCompleted": "lifecycle",
    "WorkflowFailed": "lifecycle",
    "WorkflowPaused": "lifecycle",
    "AgentProgress": "progress",
    "ActivityScheduled": "tool",
    "ActivityCompleted": "tool",
    "ActivityFailed": "tool",
    "ActivityReplayed": "tool",
    "ActivityInDoubt": "tool",
    "TimerFired": "tool",
    "ApprovalRequested": "approval",
    "ApprovalGiven": "approval",
    "ApprovalRejected": "approval",
    "PolicyDenied": "policy",
    "ToolCallInvalid": "policy",
    "HoneypotTriggered": "policy",
}


def event_view(event: LedgerEvent) -> EventView:
    """The public shape of a ledger event."""
    return EventView(
        id=event.id,
        type=_TYPES.get(event.kind, "other"),
        kind=event.kind,
        data=event.data,
        created_at=event.created_at,
    )


# ---------------------------------------------------------------- stream


class StreamHello(BaseModel):
    """Optional first client message: a key (browsers cannot set headers) and a resume point."""

    model_config = ConfigDict(extra="ignore")

    api_key: str | None = Field(default=None, max_length=512)
    last_event_id: int | None = Field(default=None, ge=0, le=MAX_AFTER)


class StreamMessage(BaseModel):
    """A server message on the stream: an event, the end of the task, or an error."""

    type: Literal["event", "end", "error"]
    event: EventView | None = None
    status: TaskStatus | None = None
    error: ErrorDetail | None = None
