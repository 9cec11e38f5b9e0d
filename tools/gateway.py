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

This module holds the pipeline and its first five steps; the later ones live beside it:
approval in `tools.approval_step`, the ledger's claim, replay and in-doubt handling in
`tools.call_ledger`, execution and result validation in `tools.tool_run`, and the call and
observation types (re-exported here, where callers import them) in `tools.tool_call`. Every
executed call passes `ToolGateway._execute`, the one seam to wrap for instruments.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, JsonValue, ValidationError

from tools.approval_step import decide
from tools.call_ledger import CallLedger, replay
from tools.honeypot import HoneypotHit, scan_call
from tools.ledger import Ledger, idempotency_key
from tools.policy import Policy
from tools.registry import AnyToolSpec, MemorySearch, SideEffect, ToolContext, ToolRegistry
from tools.sandbox.base import Sandbox, SandboxLimits
from tools.telemetry import GATEWAY_DECISIONS, TOOL_SECONDS, decision_of, span
from tools.tool_call import (
    ApprovalDecision,
    ApprovalRequest,
    Approver,
    CallContext,
    ErrorCode,
    ObservationError,
    PreparedCall,
    ToolObservation,
)
from tools.tool_run import execute

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

_DEFAULT_LEDGERED: frozenset[SideEffect] = frozenset({"idempotent", "side_effect", "dangerous"})


class ToolGateway:
    """Look up → validate → policy → honeypot → argument rules → approval → ledger → execute.

    The only way a tool runs: every step of the module docstring, in that order, for each call.
    """

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
        tool = _label(tool_name, self.registry)
        with span("tool_call", tool=tool, tenant=call_ctx.tenant_id) as current:
            observation = await self._call(tool_name, raw_args, call_ctx, started)
            decision = _count(tool, observation, time.monotonic() - started)
            current.set_attribute("strategos.decision", decision)
            current.set_attribute("strategos.replayed", observation.replayed)
        return observation

    async def _call(
        self, tool_name: str, raw_args: object, call_ctx: CallContext, started: float
    ) -> ToolObservation:
        if tool_name not in self.registry:
            return self._unknown(tool_name, call_ctx)
        spec = self.registry.get(tool_name)
        parsed = self._validate(spec, raw_args, call_ctx)
        if isinstance(parsed, ToolObservation):
            await self._book().event(
                call_ctx, "ToolCallInvalid", None, spec, {"error": parsed.error}
            )
            return parsed
        call = self._prepare(spec, parsed, call_ctx, started)
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
                return _rejected(call, answer)
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
        call = self._prepare(spec, parsed, call_ctx, time.monotonic())
        return await self._approval(call, reason)

    async def flags(self, thread_id: str) -> list[str]:
        """Every reason recorded for a human to review this thread (for the task report)."""
        events = await self.ledger.events(
            thread_id, 0, 10_000, kinds=["HoneypotTriggered", "ActivityInDoubt"]
        )
        return [str(event.data.get("flag", event.kind)) for event in events]

    def tool_definitions(self, tenant_id: str = "default") -> list[dict[str, JsonValue]]:
        """OpenAI-style definitions of the tools this tenant may call."""
        return [
            spec.tool_definition()
            for spec in self.registry.list()
            if self.policy.check_tool(spec, tenant_id).allowed
        ]

    # ------------------------------------------------------------------------------- steps
    def _book(self) -> CallLedger:
        """The ledger with this gateway's timing settings as they are now."""
        return CallLedger(self.ledger, self.lease_s, self.wait_in_flight_s)

    def _unknown(self, tool_name: str, ctx: CallContext) -> ToolObservation:
        return ToolObservation(
            tool=tool_name,
            tool_call_id=ctx.tool_call_id,
            ok=False,
            error=ObservationError(
                code="unknown_tool",
                message=(
                    f"There is no tool called {tool_name!r}. Available tools: "
                    f"{', '.join(self.registry.names())}."
                ),
            ),
        )

    @staticmethod
    def _prepare(
        spec: AnyToolSpec, parsed: BaseModel, ctx: CallContext, started: float
    ) -> PreparedCall:
        """The validated call with its idempotency key (thread, namespace, call id, args)."""
        args_json = parsed.model_dump(mode="json")
        key = idempotency_key(ctx.thread_id, ctx.checkpoint_ns, ctx.tool_call_id, args_json)
        return PreparedCall(spec, ctx, parsed, args_json, key, started)

    def _validate(
        self, spec: AnyToolSpec, raw_args: object, ctx: CallContext
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
        data: dict[object, object] = dict(raw_args)
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
            required_names = [str(r) for r in required] if isinstance(required, list) else []
            return invalid(
                f"Invalid arguments for {spec.name}: {lines}. Fix them and call again "
                f"(required: {', '.join(required_names) or 'none'}; "
                f"fields: {', '.join(spec.args_model.model_fields)}).",
                details,
            )
        return parsed

    async def _denied(
        self, call: PreparedCall, reason: str, stage: Literal["tool", "arguments"]
    ) -> ToolObservation:
        await self._book().event(
            call.ctx, "PolicyDenied", call.key, call.spec, {"stage": stage, "reason": reason}
        )
        return call.error("denied", f"Not allowed: {reason}")

    async def _honeypot(self, call: PreparedCall, hits: list[HoneypotHit]) -> ToolObservation:
        """Answer a caught call with the tool's simulated result, once, and flag the task."""
        book = self._book()
        outcome = await book.begin(call)
        if outcome.action == "replay":
            return replay(call, outcome.entry)
        flags = [f"honeypot: {hit.describe()}" for hit in hits]
        await book.event(
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

    async def _approval(self, call: PreparedCall, reason: str) -> ApprovalDecision:
        return await decide(self._book(), call, reason, call.ctx.approver or self.approver)

    async def _ledgered(self, call: PreparedCall) -> ToolObservation:
        claimed = await self._book().claim(call)
        if isinstance(claimed, ToolObservation):
            return claimed
        return await self._execute(call, claimed)

    async def _execute(self, call: PreparedCall, attempt: int | None) -> ToolObservation:
        """Run the handler (as ledger `attempt`, None when not ledgered) and record the outcome.

        Every executed call passes here, and only executed ones (not replays, simulations or
        refusals): tests wrap this method to act right after a tool really ran.
        """
        ctx = call.ctx
        tool_ctx = ToolContext(
            workspace=ctx.workspace,
            tenant_id=ctx.tenant_id,
            task_id=call.task_id,
            sandbox=self.sandbox,
            limits=ctx.limits or self.limits,
            memory=ctx.memory or self.memory,
        )
        return await execute(self._book(), call, attempt, tool_ctx, self.timeout_s)


def _rejected(call: PreparedCall, answer: ApprovalDecision) -> ToolObservation:
    comment = f": {answer.comment}" if answer.comment else ""
    return call.error(
        "rejected",
        f"A human rejected this {call.spec.name} call{comment}. Do not repeat it "
        "unchanged; take the comment into account or choose another approach.",
    )


def _label(tool_name: str, registry: ToolRegistry) -> str:
    """A registered tool's name; "unknown" for any other (a model's made-up name: unbounded)."""
    return tool_name if tool_name in registry else "unknown"


def _count(tool: str, observation: ToolObservation, seconds: float) -> str:
    """The call's outcome and wall time in the process's metrics (`tools.telemetry`)."""
    code = observation.error.code if observation.error else None
    decision = decision_of(observation.ok, observation.replayed, observation.simulated, code)
    GATEWAY_DECISIONS.labels(tool=tool, decision=decision).inc()
    TOOL_SECONDS.labels(tool=tool).observe(seconds)
    return decision
