"""The gateway's ledger step: claim a call exactly once, replay it, or report it in doubt.

`CallLedger.claim` decides what becomes of a ledgered call before it runs: a call completed
earlier is **replayed** from its record without running (re-applying the files it changed when
the workspace lives in the graph state, since the checkpoint holding them may be what the crash
lost); a call running elsewhere is awaited; a call whose worker died mid-run is re-run only if
the tool is idempotent, otherwise reported `in_doubt` for a human. Only a call that may run
gets an attempt number back, and the gateway runs it (`ToolGateway._execute`).

It also writes the task's event log, which every step appends to. A claim that wins is written
with its `ActivityScheduled` event, and an outcome with its `ActivityCompleted`/`ActivityFailed`
event, each pair in one transaction: the log cannot miss the event of a recorded row, and a
ledgered call commits twice instead of four times.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import BaseModel, JsonValue

from tools.ledger import BeginOutcome, EventDraft, EventKind, Ledger, LedgerEntry
from tools.registry import AnyToolSpec, SideEffect
from tools.tool_call import CallContext, PreparedCall, ToolObservation

__all__ = ["CallLedger", "replay"]

RERUNNABLE: frozenset[SideEffect] = frozenset({"read_only", "idempotent"})
"""Tools whose interrupted call may simply run again: repeating them changes nothing."""


@dataclass(frozen=True)
class CallLedger:
    """The ledger with the gateway's timing settings, as they are when a call starts."""

    ledger: Ledger
    lease_s: float
    """A running call renews its lease every third of this (a heartbeat), so a worker that died
    mid-call leaves it in doubt after at most `lease_s`."""
    wait_in_flight_s: float

    async def event(
        self,
        ctx: CallContext,
        kind: EventKind,
        key: str | None,
        spec: AnyToolSpec,
        data: Mapping[str, object],
    ) -> None:
        """Append one event of the call to the task's log, with the tool and call it is about."""
        draft = self.draft(ctx, kind, key, spec, data)
        await self.ledger.append_event(draft.thread_id, draft.kind, draft.data, key=draft.key)

    def draft(
        self,
        ctx: CallContext,
        kind: EventKind,
        key: str | None,
        spec: AnyToolSpec,
        data: Mapping[str, object],
    ) -> EventDraft:
        """The event `event` would append, to be written with a ledger row instead."""
        payload: dict[str, JsonValue] = {
            "tool": spec.name,
            "version": spec.version,
            "tool_call_id": ctx.tool_call_id,
            "tenant_id": ctx.tenant_id,
        }
        payload.update(json.loads(json.dumps(dict(data), default=_json_default)))
        return EventDraft(thread_id=ctx.thread_id, kind=kind, data=payload, key=key)

    def scheduled(self, call: PreparedCall, attempt: int | None) -> EventDraft:
        """The `ActivityScheduled` event of `call` running as `attempt`."""
        data = {"attempt": attempt, "args": call.args_json}
        return self.draft(call.ctx, "ActivityScheduled", call.key, call.spec, data)

    async def begin(self, call: PreparedCall, *, logged: bool = False) -> BeginOutcome:
        """Claim the call's ledger row (or learn that someone has it or had it).

        With `logged`, a claim that wins is written with its `ActivityScheduled` event.
        """
        return await self.ledger.begin(
            call.key,
            thread_id=call.ctx.thread_id,
            tool=call.spec.name,
            tool_call_id=call.ctx.tool_call_id,
            args=call.args_json,
            lease_s=self.lease_s,
            event=self.scheduled(call, 1) if logged else None,
        )

    async def claim(self, call: PreparedCall) -> ToolObservation | int:
        """The attempt to run the call as, or the observation that answers it without running.

        The `ActivityScheduled` event of the returned attempt is in the log already.
        """
        outcome = await self.begin(call, logged=True)
        if outcome.action == "in_flight":
            settled = await self._await_in_flight(call)
            if isinstance(settled, ToolObservation):
                return settled
            outcome = settled
        if outcome.action == "replay":
            return await self.replay_effects(call, outcome.entry)
        if outcome.action == "in_doubt":
            reclaimed = await self._reclaim(call)
            if isinstance(reclaimed, ToolObservation):
                return reclaimed
            outcome = reclaimed
        if outcome.entry.attempt > 1:  # taken over: rare enough for a write of its own
            draft = self.scheduled(call, outcome.entry.attempt)
            await self.ledger.append_event(draft.thread_id, draft.kind, draft.data, key=draft.key)
        return outcome.entry.attempt

    async def _await_in_flight(self, call: PreparedCall) -> BeginOutcome | ToolObservation:
        """Wait for another worker's run of the call: its record, `busy`, or its dead lease."""
        entry = await self.ledger.wait(call.key, timeout_s=self.wait_in_flight_s)
        if entry.state != "scheduled":
            return BeginOutcome(action="replay", entry=entry)
        if entry.lease_until > self.ledger.clock():
            return call.error(
                "busy",
                "The same call is still running in another worker; try again shortly.",
            )
        return BeginOutcome(action="in_doubt", entry=entry)

    async def _reclaim(self, call: PreparedCall) -> BeginOutcome | ToolObservation:
        """Take over an interrupted call when running it again is safe; otherwise flag it."""
        reclaimed = None
        if call.spec.side_effect in RERUNNABLE:
            reclaimed = await self.ledger.reclaim(call.key, lease_s=self.lease_s)
        if reclaimed is not None:
            return reclaimed
        latest = await self.ledger.get(call.key)
        if latest is not None and latest.state != "scheduled":
            return await self.replay_effects(call, latest)
        flag = (
            f"in_doubt: {call.spec.name} call {call.ctx.tool_call_id} was interrupted "
            "mid-run; its side effect may or may not have happened"
        )
        await self.event(call.ctx, "ActivityInDoubt", call.key, call.spec, {"flag": flag})
        return call.error(
            "in_doubt",
            f"An earlier attempt of this {call.spec.name} call was interrupted and may "
            "or may not have taken effect. It is not repeated automatically; a human "
            "has been asked to check.",
            flags=[flag],
        )

    async def replay_effects(self, call: PreparedCall, entry: LedgerEntry) -> ToolObservation:
        """Replay a recorded call, re-applying its file changes to a non-durable workspace."""
        record = entry.result if isinstance(entry.result, dict) else {}
        effects = record.get("effects")
        workspace = call.ctx.workspace
        if isinstance(effects, dict) and effects and not workspace.durable:
            await workspace.apply({str(k): _opt_str(v) for k, v in effects.items()})
        await self._complete_the_log(call, entry)
        return replay(call, entry)

    async def _complete_the_log(self, call: PreparedCall, entry: LedgerEntry) -> None:
        """Append the outcome event a worker recorded in the ledger but died before logging.

        The ledger row and its event are two writes; a crash between them would leave the
        task's event log without the call's outcome, though the call happened.
        """
        outcome: EventKind = "ActivityCompleted" if entry.state == "completed" else "ActivityFailed"
        logged = await self.ledger.events(call.ctx.thread_id, 0, 1, kinds=[outcome], key=call.key)
        if not logged:
            recovered = {"recovered": True, "attempt": entry.attempt}
            await self.event(call.ctx, outcome, call.key, call.spec, recovered)

    async def keep_lease(self, key: str, attempt: int) -> None:
        """Renew the call's lease until cancelled; a lost lease just ends the heartbeat."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                if not await self.ledger.renew(key, attempt=attempt, lease_s=self.lease_s):
                    return
            except Exception:  # noqa: BLE001 - a missed beat only shortens the lease
                continue


def replay(call: PreparedCall, entry: LedgerEntry) -> ToolObservation:
    """The observation a recorded call gave, marked as replayed (the tool does not run)."""
    record = entry.result if isinstance(entry.result, dict) else {}
    if entry.state == "failed":
        return call.error("failed", entry.error or "the tool failed", replayed=True)
    result = record.get("result")
    flags = record.get("flags")
    return call.observation(
        ok=True,
        result=result if isinstance(result, dict) else {},
        replayed=True,
        simulated=bool(record.get("simulated", False)),
        flags=[str(f) for f in flags] if isinstance(flags, list) else [],
    )


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _json_default(value: object) -> JsonValue:
    if isinstance(value, BaseModel):
        dumped: JsonValue = value.model_dump(mode="json")
        return dumped
    return str(value)
