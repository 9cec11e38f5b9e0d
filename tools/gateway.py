"""The tool gateway: the only way a tool runs.

`ToolGateway.call(tool_name, raw_args, call_ctx)` always returns a `ToolObservation` (never
raises for anything the model did wrong) after these steps, in this order:

1. **look up** the tool (an unknown name lists the known ones);
2. **restore PII** placeholders in the arguments (`call_ctx.pii`), then **validate** them
   against the tool's args model; errors come back as an observation the model can fix;
3. **policy, tool level**: is this tenant allowed to use this tool at all;
4. **honeypot**: a dangerous request is not executed; the agent gets the tool's plausible
   simulated result, the task gets a `HoneypotTriggered` event and a flag. It comes before the
   argument rules and approval so that a human is never asked to approve `rm -rf /` and the
   agent is not told it was caught;
5. **policy, argument rules** (paths inside the workspace, size);
6. **approval** when the policy says so: a decision already recorded for this call is reused
   (a resumed graph does not ask twice), otherwise `ApprovalRequested` is logged and the
   pluggable async approver (the call's own, else the gateway's) is awaited (in the graph it
   calls `interrupt()`, which works by raising, so exceptions from the approver propagate),
   then `ApprovalGiven`/`ApprovalRejected`;
7. **ledger**: tools whose side-effect class is in `ledger_classes` (all but `read_only` by
   default) are claimed with `begin`; a completed call is **replayed** from its record without
   running; a call running elsewhere is awaited; a call whose worker died mid-run is re-run only
   if the tool is idempotent, otherwise reported `in_doubt` for a human;
8. **execute** the handler (time-limited), **validate the result** against the result model,
   record it (`complete`/`fail`) and append `ActivityCompleted`/`ActivityFailed`.

For a workspace that lives in the graph state (`Workspace.durable` is False) the ledger also
records the files a call changed and re-applies them on replay: the checkpoint holding the first
run's changes may be the thing that was lost in the crash.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field, JsonValue, ValidationError

from tools.errors import ToolError
from tools.honeypot import HoneypotHit, scan_call
from tools.ledger import BeginOutcome, EventKind, Ledger, LedgerEntry, idempotency_key
from tools.pii import PiiVault
from tools.policy import Policy
from tools.registry import (
    MemorySearch,
    SideEffect,
    ToolContext,
    ToolRegistry,
    ToolSpec,
)
from tools.sandbox.base import Sandbox, SandboxError, SandboxLimits
from tools.workspaces import Workspace

__all__ = [
    "ApprovalDecision",
    "ApprovalRequest",
    "Approver",
    "CallContext",
    "ErrorCode",
    "ObservationError",
    "SandboxLimits",
    "ToolGateway",
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


Approver = Callable[[ApprovalRequest], Awaitable[ApprovalDecision | Mapping[str, Any]]]


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


_DEFAULT_LEDGERED: frozenset[SideEffect] = frozenset({"idempotent", "side_effect", "dangerous"})
_RERUNNABLE: frozenset[SideEffect] = frozenset({"read_only", "idempotent"})


@dataclass
class _Call:
    spec: ToolSpec[Any, Any]
    ctx: CallContext
    args: BaseModel
    args_json: dict[str, JsonValue]
    key: str
    started: float = field(default_factory=time.monotonic)

    @property
    def task_id(self) -> str:
        return self.ctx.task_id or self.ctx.thread_id

    def observation(self, **fields: Any) -> ToolObservation:
        return ToolObservation(
            tool=self.spec.name,
            tool_call_id=self.ctx.tool_call_id,
            key=self.key,
            duration_ms=round((time.monotonic() - self.started) * 1000, 3),
            **fields,
        )

    def error(self, code: ErrorCode, message: str, **fields: Any) -> ToolObservation:
        return self.observation(
            ok=False, error=ObservationError(code=code, message=message), **fields
        )


class ToolGateway:
    """Validate → policy → honeypot → approval → ledger → execute → validate → record."""

    def __init__(
        self,
        registry: ToolRegistry,
        ledger: Ledger,
        policy: Policy | None = None,
        sandbox: Sandbox | None = None,
        approver: Approver | None = None,
        *,
        limits: SandboxLimits | None = None,
        timeout_s: float = 300.0,
        wait_in_flight_s: float = 30.0,
        lease_s: float = 15.0,
        ledger_classes: frozenset[SideEffect] = _DEFAULT_LEDGERED,
        memory: MemorySearch | None = None,
    ) -> None:
        self.registry = registry
        self.ledger = ledger
        self.policy = policy or Policy()
        self.sandbox = sandbox
        self.approver = approver
        self.limits = limits or SandboxLimits()
        self.timeout_s = timeout_s
        self.wait_in_flight_s = wait_in_flight_s
        self.lease_s = lease_s
        """A running ledgered call renews its lease every third of this (a heartbeat), so a
        worker that died mid-call leaves it in doubt after at most `lease_s`."""
        self.ledger_classes = ledger_classes
        self.memory = memory
        """What `search_memory` searches when the call context brings no memory of its own."""

    # ------------------------------------------------------------------------------- public
    async def call(
        self, tool_name: str, raw_args: object, call_ctx: CallContext
    ) -> ToolObservation:
        """Run one tool call through every step; see the module docstring.

        `raw_args` is what the model sent: a dict, or a JSON string of one.
        """
        started = time.monotonic()
        if tool_name not in self.registry:
            return ToolObservation(
                tool=tool_name,
                tool_call_id=call_ctx.tool_call_id,
                ok=False,
                error=ObservationError(
                    code="unknown_tool",
                    message=(
                        f"There is no tool called {tool_name!r}. Available tools: "
                        f"{', '.join(self.registry.names())}."
                    ),
                ),
            )
        spec = self.registry.get(tool_name)
        parsed = self._validate(spec, raw_args, call_ctx)
        if isinstance(parsed, ToolObservation):
            await self._event(call_ctx, "ToolCallInvalid", None, spec, {"error": parsed.error})
            return parsed
        args_json = parsed.model_dump(mode="json")
        key = idempotency_key(
            call_ctx.thread_id, call_ctx.checkpoint_ns, call_ctx.tool_call_id, args_json
        )
        call = _Call(spec, call_ctx, parsed, args_json, key, started)

        decision = self.policy.check_tool(spec, call_ctx.tenant_id)
        if not decision.allowed:
            return await self._denied(call, decision.reason, "tool")
        hits = scan_call(spec, parsed)
        if hits:
            return await self._honeypot(call, hits)
        decision = self.policy.check_args(spec, parsed, call_ctx.tenant_id)
        if not decision.allowed:
            return await self._denied(call, decision.reason, "arguments")
        needs_approval, why = self.policy.approval_for(spec, call_ctx.tenant_id)
        if needs_approval:
            answer = await self._approval(call, why)
            if not answer.approved:
                comment = f": {answer.comment}" if answer.comment else ""
                return call.error(
                    "rejected",
                    f"A human rejected this {spec.name} call{comment}. Do not repeat it "
                    "unchanged; take the comment into account or choose another approach.",
                )
        if spec.side_effect not in self.ledger_classes:
            return await self._execute(call, None)
        return await self._ledgered(call)

    async def request_approval(
        self, tool_name: str, raw_args: object, call_ctx: CallContext, reason: str
    ) -> ApprovalDecision:
        """Ask for approval of a call before making it, once: the answer is ledgered.

        Recorded under `call_ctx.approval_key`, which the later `call` must carry too; asking
        again returns the recorded answer (a resumed graph does not ask twice).
        """
        spec = self.registry.get(tool_name)
        parsed = self._validate(spec, raw_args, call_ctx)
        if isinstance(parsed, ToolObservation):
            message = parsed.error.message if parsed.error else "invalid arguments"
            raise ValueError(f"cannot ask approval for an invalid {tool_name} call: {message}")
        args_json = parsed.model_dump(mode="json")
        key = idempotency_key(
            call_ctx.thread_id, call_ctx.checkpoint_ns, call_ctx.tool_call_id, args_json
        )
        return await self._approval(_Call(spec, call_ctx, parsed, args_json, key), reason)

    async def flags(self, thread_id: str) -> list[str]:
        """Every reason recorded for a human to review this thread (for the task report)."""
        events = await self.ledger.events(
            thread_id, 0, 10_000, kinds=["HoneypotTriggered", "ActivityInDoubt"]
        )
        return [str(event.data.get("flag", event.kind)) for event in events]

    def tool_definitions(self, tenant_id: str = "default") -> list[dict[str, Any]]:
        """OpenAI-style definitions of the tools this tenant may call."""
        return [
            spec.tool_definition()
            for spec in self.registry.list()
            if self.policy.check_tool(spec, tenant_id).allowed
        ]

    # ------------------------------------------------------------------------------- steps
    def _validate(
        self, spec: ToolSpec[Any, Any], raw_args: Any, ctx: CallContext
    ) -> BaseModel | ToolObservation:
        def invalid(message: str, details: list[dict[str, JsonValue]]) -> ToolObservation:
            return ToolObservation(
                tool=spec.name,
                tool_call_id=ctx.tool_call_id,
                ok=False,
                error=ObservationError(code="invalid_args", message=message, details=details),
            )

        if isinstance(raw_args, str):
            try:
                raw_args = json.loads(raw_args)
            except json.JSONDecodeError as exc:
                return invalid(f"Arguments are not valid JSON ({exc.msg}); send an object.", [])
        if not isinstance(raw_args, Mapping):
            return invalid(f"Arguments must be a JSON object, not {type(raw_args).__name__}.", [])
        data: Any = dict(raw_args)
        if ctx.pii is not None:
            data = ctx.pii.restore_obj(data)
        try:
            parsed: BaseModel = spec.args_model.model_validate(data)
        except ValidationError as exc:
            details: list[dict[str, JsonValue]] = [
                {
                    "field": ".".join(str(p) for p in err["loc"]) or "(arguments)",
                    "problem": err["msg"],
                }
                for err in exc.errors(include_url=False, include_input=False)
            ]
            lines = "; ".join(f"{d['field']}: {d['problem']}" for d in details[:10])
            required = spec.args_schema().get("required", [])
            return invalid(
                f"Invalid arguments for {spec.name}: {lines}. Fix them and call again "
                f"(required: {', '.join(required) or 'none'}; "
                f"fields: {', '.join(spec.args_model.model_fields)}).",
                details,
            )
        return parsed

    async def _denied(
        self, call: _Call, reason: str, stage: Literal["tool", "arguments"]
    ) -> ToolObservation:
        await self._event(
            call.ctx, "PolicyDenied", call.key, call.spec, {"stage": stage, "reason": reason}
        )
        return call.error("denied", f"Not allowed: {reason}")

    async def _honeypot(self, call: _Call, hits: list[HoneypotHit]) -> ToolObservation:
        outcome = await self._begin(call)
        if outcome.action == "replay":
            return self._replay(call, outcome.entry)
        flags = [f"honeypot: {hit.describe()}" for hit in hits]
        await self._event(
            call.ctx,
            "HoneypotTriggered",
            call.key,
            call.spec,
            {
                "flag": flags[0],
                "rules": [hit.rule for hit in hits],
                "categories": sorted({hit.category for hit in hits}),
                "evidence": [hit.evidence for hit in hits],
                "args": call.args_json,
            },
        )
        if call.spec.simulate is None:  # pragma: no cover - contract tests require simulate
            result_json: dict[str, JsonValue] = {}
        else:
            result_json = call.spec.simulate(call.args).model_dump(mode="json")
        await self.ledger.complete(
            call.key,
            {"result": result_json, "simulated": True, "flags": list(flags)},
            attempt=outcome.entry.attempt,
        )
        return call.observation(ok=True, result=result_json, simulated=True, flags=flags)

    async def _approval(self, call: _Call, reason: str) -> ApprovalDecision:
        ctx = call.ctx
        approval_key = ctx.approval_key or call.key
        recorded = await self.ledger.events(
            ctx.thread_id, 0, 1000, kinds=["ApprovalGiven", "ApprovalRejected"], key=approval_key
        )
        if recorded:
            data = recorded[-1].data
            return ApprovalDecision(
                approved=recorded[-1].kind == "ApprovalGiven",
                comment=str(data.get("comment", "")),
                approver=str(data.get("approver", "")),
            )
        request = ApprovalRequest(
            tool=call.spec.name,
            version=call.spec.version,
            description=call.spec.description,
            side_effect=call.spec.side_effect,
            args=call.args_json,
            reason=reason,
            thread_id=ctx.thread_id,
            task_id=call.task_id,
            tenant_id=ctx.tenant_id,
            tool_call_id=ctx.tool_call_id,
            key=approval_key,
        )
        asked = await self.ledger.events(
            ctx.thread_id, 0, 1, kinds=["ApprovalRequested"], key=approval_key
        )
        if not asked:
            await self._event(
                ctx, "ApprovalRequested", approval_key, call.spec, request.model_dump(mode="json")
            )
        approver = ctx.approver or self.approver
        if approver is None:
            decision = ApprovalDecision(
                approved=False, comment="no approver is configured for this deployment"
            )
        else:
            answer = await approver(request)
            decision = (
                answer
                if isinstance(answer, ApprovalDecision)
                else ApprovalDecision.model_validate(dict(answer))
            )
        kind: EventKind = "ApprovalGiven" if decision.approved else "ApprovalRejected"
        await self._event(
            ctx,
            kind,
            approval_key,
            call.spec,
            {"comment": decision.comment, "approver": decision.approver},
        )
        return decision

    async def _begin(self, call: _Call) -> BeginOutcome:
        return await self.ledger.begin(
            call.key,
            thread_id=call.ctx.thread_id,
            tool=call.spec.name,
            tool_call_id=call.ctx.tool_call_id,
            args=call.args_json,
            lease_s=self.lease_s,
        )

    async def _ledgered(self, call: _Call) -> ToolObservation:
        outcome = await self._begin(call)
        if outcome.action == "in_flight":
            entry = await self.ledger.wait(call.key, timeout_s=self.wait_in_flight_s)
            if entry.state != "scheduled":
                outcome = BeginOutcome(action="replay", entry=entry)
            elif entry.lease_until > self.ledger.clock():
                return call.error(
                    "busy",
                    "The same call is still running in another worker; try again shortly.",
                )
            else:
                outcome = BeginOutcome(action="in_doubt", entry=entry)
        if outcome.action == "replay":
            return await self._replay_effects(call, outcome.entry)
        if outcome.action == "in_doubt":
            reclaimed = None
            if call.spec.side_effect in _RERUNNABLE:
                reclaimed = await self.ledger.reclaim(call.key, lease_s=self.lease_s)
            if reclaimed is None:
                latest = await self.ledger.get(call.key)
                if latest is not None and latest.state != "scheduled":
                    return await self._replay_effects(call, latest)
                flag = (
                    f"in_doubt: {call.spec.name} call {call.ctx.tool_call_id} was interrupted "
                    "mid-run; its side effect may or may not have happened"
                )
                await self._event(call.ctx, "ActivityInDoubt", call.key, call.spec, {"flag": flag})
                return call.error(
                    "in_doubt",
                    f"An earlier attempt of this {call.spec.name} call was interrupted and may "
                    "or may not have taken effect. It is not repeated automatically; a human "
                    "has been asked to check.",
                    flags=[flag],
                )
            outcome = reclaimed
        return await self._execute(call, outcome.entry.attempt)

    async def _replay_effects(self, call: _Call, entry: LedgerEntry) -> ToolObservation:
        record = entry.result if isinstance(entry.result, dict) else {}
        effects = record.get("effects")
        workspace = call.ctx.workspace
        if isinstance(effects, dict) and effects and not workspace.durable:
            await workspace.apply({str(k): _opt_str(v) for k, v in effects.items()})
        await self._complete_the_log(call, entry)
        return self._replay(call, entry)

    async def _complete_the_log(self, call: _Call, entry: LedgerEntry) -> None:
        """Append the outcome event a worker recorded in the ledger but died before logging.

        The ledger row and its event are two writes; a crash between them would leave the
        task's event log without the call's outcome, though the call happened.
        """
        outcome: EventKind = "ActivityCompleted" if entry.state == "completed" else "ActivityFailed"
        logged = await self.ledger.events(call.ctx.thread_id, 0, 1, kinds=[outcome], key=call.key)
        if not logged:
            recovered = {"recovered": True, "attempt": entry.attempt}
            await self._event(call.ctx, outcome, call.key, call.spec, recovered)

    def _replay(self, call: _Call, entry: LedgerEntry) -> ToolObservation:
        record = entry.result if isinstance(entry.result, dict) else {}
        observation: ToolObservation
        if entry.state == "failed":
            observation = call.error("failed", entry.error or "the tool failed", replayed=True)
        else:
            result = record.get("result")
            flags = record.get("flags")
            observation = call.observation(
                ok=True,
                result=result if isinstance(result, dict) else {},
                replayed=True,
                simulated=bool(record.get("simulated", False)),
                flags=[str(f) for f in flags] if isinstance(flags, list) else [],
            )
        return observation

    async def _execute(self, call: _Call, attempt: int | None) -> ToolObservation:
        spec, ctx = call.spec, call.ctx
        ledgered = attempt is not None
        workspace = ctx.workspace
        before = await workspace.snapshot() if ledgered and not workspace.durable else None
        tool_ctx = ToolContext(
            workspace=workspace,
            tenant_id=ctx.tenant_id,
            task_id=call.task_id,
            sandbox=self.sandbox,
            limits=ctx.limits or self.limits,
            memory=ctx.memory or self.memory,
        )
        await self._event(
            ctx,
            "ActivityScheduled",
            call.key,
            spec,
            {"attempt": attempt, "args": call.args_json},
        )
        failure: tuple[ErrorCode, str] | None = None
        result_json: dict[str, JsonValue] = {}
        heartbeat = (
            asyncio.create_task(self._keep_lease(call.key, attempt))
            if attempt is not None
            else None
        )
        try:
            result = await asyncio.wait_for(spec.handler(call.args, tool_ctx), self.timeout_s)
            if not isinstance(result, spec.result_model):
                raise TypeError(f"handler returned {type(result).__name__}")
            result_json = spec.result_model.model_validate(
                result.model_dump(mode="json")
            ).model_dump(mode="json")
        except ToolError as exc:
            failure = ("failed", str(exc))
        except TimeoutError:
            failure = ("failed", f"{spec.name} did not finish within {self.timeout_s:.0f} s.")
        except SandboxError as exc:
            failure = ("failed", f"The sandbox failed: {exc}")
        except (ValidationError, TypeError) as exc:
            failure = (
                "invalid_result",
                f"{spec.name} produced a result that does not match its schema ({exc}); "
                "this is a bug in the tool, not in your call.",
            )
        except Exception as exc:  # noqa: BLE001 - any tool bug becomes an observation
            failure = ("failed", f"{spec.name} failed unexpectedly: {type(exc).__name__}: {exc}")
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
        if failure is not None:
            code, message = failure
            if ledgered:
                await self.ledger.fail(call.key, message, attempt=attempt)
            await self._event(
                ctx, "ActivityFailed", call.key, spec, {"code": code, "error": message}
            )
            return call.error(code, message)
        if ledgered:
            effects: dict[str, JsonValue] | None = None
            if before is not None:
                after = await workspace.snapshot()
                effects = {p: c for p, c in after.items() if before.get(p) != c}
                effects.update({p: None for p in before if p not in after})
            await self.ledger.complete(
                call.key, {"result": result_json, "effects": effects}, attempt=attempt
            )
        observation = call.observation(ok=True, result=result_json)
        await self._event(
            ctx,
            "ActivityCompleted",
            call.key,
            spec,
            {"duration_ms": observation.duration_ms},
        )
        return observation

    async def _keep_lease(self, key: str, attempt: int) -> None:
        """Renew the call's lease until cancelled; a lost lease just ends the heartbeat."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                if not await self.ledger.renew(key, attempt=attempt, lease_s=self.lease_s):
                    return
            except Exception:  # noqa: BLE001 - a missed beat only shortens the lease
                continue

    async def _event(
        self,
        ctx: CallContext,
        kind: EventKind,
        key: str | None,
        spec: ToolSpec[Any, Any],
        data: Mapping[str, Any],
    ) -> None:
        payload: dict[str, JsonValue] = {
            "tool": spec.name,
            "version": spec.version,
            "tool_call_id": ctx.tool_call_id,
            "tenant_id": ctx.tenant_id,
        }
        payload.update(json.loads(json.dumps(dict(data), default=_json_default)))
        await self.ledger.append_event(ctx.thread_id, kind, payload, key=key)


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _json_default(value: object) -> JsonValue:
    if isinstance(value, BaseModel):
        dumped: JsonValue = value.model_dump(mode="json")
        return dumped
    return str(value)
