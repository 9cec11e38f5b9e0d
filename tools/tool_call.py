"""What one tool call is as it passes through the gateway: who asks, and what comes back.

`CallContext` is what a caller hands `tools.gateway.ToolGateway.call`; `PreparedCall` is a call
whose arguments validated, with its idempotency key, and builds every `ToolObservation` the steps
return. They live apart from `tools.gateway` so that its steps (`tools.approval_step`,
`tools.call_ledger`, `tools.tool_run`) can share them without importing the gateway; callers keep
importing them from `tools.gateway`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field, JsonValue

from tools.pii import PiiVault
from tools.registry import AnyToolSpec, MemorySearch, SideEffect
from tools.sandbox.base import SandboxLimits
from tools.workspaces import Workspace

__all__ = [
    "ApprovalDecision",
    "ApprovalRequest",
    "Approver",
    "CallContext",
    "ErrorCode",
    "ObservationError",
    "PreparedCall",
    "ToolObservation",
]

ErrorCode = Literal[
    "unknown_tool",
    "invalid_args",
    "denied",
    "rejected",
    "failed",
    "invalid_result",
    "in_doubt",
    "busy",
]


class ObservationError(BaseModel):
    """Why a call did not produce a result, worded for the model to act on."""

    code: ErrorCode
    message: str
    details: list[dict[str, JsonValue]] = Field(default_factory=list)


class ToolObservation(BaseModel):
    """The outcome of one gateway call, for the graph state and (via `for_model`) the model."""

    tool: str
    tool_call_id: str
    ok: bool
    result: dict[str, JsonValue] | None = None
    error: ObservationError | None = None
    replayed: bool = False
    """The result was recorded by an earlier run of the same call; the tool did not run."""
    simulated: bool = False
    """The honeypot answered; the tool did not run. Never shown to the model."""
    flags: list[str] = Field(default_factory=list)
    """Reasons a human should review the task (honeypot, in-doubt side effects)."""
    key: str | None = None
    duration_ms: float = 0.0

    def for_model(self, pii: PiiVault | None = None) -> str:
        """The text the model sees: result or error only (masked when a vault is given)."""
        body: dict[str, JsonValue] = {"ok": self.ok}
        if self.ok:
            body["result"] = self.result
        elif self.error is not None:
            body["error"] = self.error.message
            if self.error.details:
                body["details"] = list(self.error.details)
        text = json.dumps(body, ensure_ascii=False)
        return pii.mask(text) if pii is not None else text


class ApprovalRequest(BaseModel):
    """Typed payload of an approval interrupt, for terminals and UIs to render."""

    kind: Literal["tool_approval"] = "tool_approval"
    tool: str
    version: str
    description: str
    side_effect: SideEffect
    args: dict[str, JsonValue]
    reason: str
    thread_id: str
    task_id: str
    tenant_id: str
    tool_call_id: str
    key: str


class ApprovalDecision(BaseModel):
    """A human's answer (the shape `Command(resume=…)` carries)."""

    approved: bool
    comment: str = Field(default="", max_length=4000)
    approver: str = ""


Approver = Callable[[ApprovalRequest], Awaitable[ApprovalDecision | Mapping[str, object]]]
"""Asks a human; may answer with the decision's fields (what an interrupt resumes with)."""


@dataclass(frozen=True)
class CallContext:
    """Who is calling and on what: identifiers for the ledger, and the task's workspace."""

    thread_id: str
    tool_call_id: str
    workspace: Workspace
    tenant_id: str = "default"
    task_id: str = ""
    """Defaults to the thread id."""
    checkpoint_ns: str = ""
    pii: PiiVault | None = None
    memory: MemorySearch | None = None
    limits: SandboxLimits | None = None
    approver: Approver | None = None
    """This call's approver (a graph node passes its `interrupt()`), else the gateway's."""
    approval_key: str | None = None
    """Where the call's approval is recorded; the call's own key when unset. A graph that asks
    before it calls (`request_approval`) records the answer under a key it can compute again
    from what it delivers, so the call finds that answer and nobody is asked twice."""


@dataclass
class PreparedCall:
    """A call whose arguments validated: what every step after validation works on.

    It times the call from its start, so each observation a step builds carries the duration.
    """

    spec: AnyToolSpec
    ctx: CallContext
    args: BaseModel
    args_json: dict[str, JsonValue]
    key: str
    started: float = field(default_factory=time.monotonic)

    @property
    def task_id(self) -> str:
        """The task the call works for (the thread when the caller named none)."""
        return self.ctx.task_id or self.ctx.thread_id

    def observation(
        self,
        *,
        ok: bool,
        result: dict[str, JsonValue] | None = None,
        error: ObservationError | None = None,
        replayed: bool = False,
        simulated: bool = False,
        flags: list[str] | None = None,
    ) -> ToolObservation:
        """The observation of this call, stamped with its tool, ids, key and duration so far."""
        return ToolObservation(
            tool=self.spec.name,
            tool_call_id=self.ctx.tool_call_id,
            ok=ok,
            result=result,
            error=error,
            replayed=replayed,
            simulated=simulated,
            flags=flags or [],
            key=self.key,
            duration_ms=round((time.monotonic() - self.started) * 1000, 3),
        )

    def error(
        self,
        code: ErrorCode,
        message: str,
        *,
        replayed: bool = False,
        flags: list[str] | None = None,
    ) -> ToolObservation:
        """A failed observation the model can act on."""
        return self.observation(
            ok=False,
            error=ObservationError(code=code, message=message),
            replayed=replayed,
            flags=flags,
        )
