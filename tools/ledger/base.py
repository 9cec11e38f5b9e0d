"""The ledger's vocabulary and contract: states, entries, events, and the abstract `Ledger`.

`Ledger` holds the exactly-once decisions (`begin`, `reclaim`, `complete`, `fail`, `wait`), which
must not differ between backends; a backend supplies only storage, through the abstract methods.
The public names are listed (and re-exported) by `tools.ledger`.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, JsonValue

from tools.registry import canonical_json

LedgerState = Literal["scheduled", "completed", "failed"]
BeginAction = Literal["run", "replay", "in_flight", "in_doubt"]
EventKind = Literal[
    "WorkflowStarted",
    "WorkflowCompleted",
    "WorkflowFailed",
    "WorkflowPaused",
    "ActivityScheduled",
    "ActivityCompleted",
    "ActivityFailed",
    "ActivityReplayed",
    "ActivityInDoubt",
    "ApprovalRequested",
    "ApprovalGiven",
    "ApprovalRejected",
    "PolicyDenied",
    "ToolCallInvalid",
    "HoneypotTriggered",
    "TimerFired",
    "AgentProgress",
]
"""Event kinds of the task log; add a kind here before appending it."""

LEDGER_TABLE = "strategos_tool_ledger"
EVENTS_TABLE = "strategos_events"
SEQ_TABLE = "strategos_event_seq"


class LedgerConflict(RuntimeError):
    """The ledger refused an operation that would break its invariants."""


def idempotency_key(thread_id: str, checkpoint_ns: str, tool_call_id: str, args: object) -> str:
    """sha256 over thread id, checkpoint namespace, tool call id and canonical JSON of args."""
    payload = canonical_json([thread_id, checkpoint_ns, tool_call_id, canonical_json(args)])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class LedgerEntry(BaseModel):
    """One tool call as the ledger knows it."""

    key: str
    thread_id: str
    tool: str
    tool_call_id: str
    state: LedgerState
    args: JsonValue
    result: JsonValue = None
    error: str | None = None
    attempt: int
    lease_until: float
    created_at: float
    updated_at: float


class BeginOutcome(BaseModel):
    """What `begin` decided; `entry` is the row as it stands."""

    action: BeginAction
    entry: LedgerEntry

    @property
    def run(self) -> bool:
        """True when the caller owns the call and must execute it now."""
        return self.action == "run"


class LedgerEvent(BaseModel):
    """One event of a thread's log."""

    thread_id: str
    id: int
    kind: str
    key: str | None
    data: dict[str, JsonValue]
    created_at: float


class EventDraft(BaseModel):
    """An event to append together with a ledger write, in one transaction where it can be.

    A claim and its `ActivityScheduled`, a result and its `ActivityCompleted`: written as one,
    the log never lacks the event of a recorded row, and a call costs half the commits.
    """

    model_config = ConfigDict(frozen=True)

    thread_id: str
    kind: EventKind
    data: dict[str, JsonValue]
    key: str | None = None


class Ledger(abc.ABC):
    """The interface both backends implement; `clock` gives epoch seconds (injectable)."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    @abc.abstractmethod
    async def setup(self) -> None:
        """Create the tables, indexes and triggers if they do not exist (idempotent)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""

    @abc.abstractmethod
    async def get(self, key: str) -> LedgerEntry | None:
        """The entry for `key`, if any."""

    @abc.abstractmethod
    async def _insert(self, entry: LedgerEntry) -> bool:
        """Insert unless the key exists; True when this call inserted it."""

    @abc.abstractmethod
    async def _finish(
        self,
        key: str,
        state: LedgerState,
        result: JsonValue,
        error: str | None,
        attempt: int | None,
    ) -> bool:
        """Move a scheduled entry to a final state; False if it was not scheduled."""

    @abc.abstractmethod
    async def _take_over(self, key: str, lease_until: float, now: float) -> LedgerEntry | None:
        """Renew an expired lease and bump the attempt; None if someone else got it first."""

    @abc.abstractmethod
    async def _extend(self, key: str, attempt: int, lease_until: float) -> bool:
        """Move a scheduled attempt's lease to `lease_until`; False if it is no longer ours."""

    @abc.abstractmethod
    async def append_event(
        self,
        thread_id: str,
        kind: EventKind,
        data: Mapping[str, object] | None = None,
        *,
        key: str | None = None,
    ) -> LedgerEvent:
        """Append an event; its id is the thread's previous id + 1."""

    @abc.abstractmethod
    async def events(
        self,
        thread_id: str,
        after_id: int = 0,
        limit: int = 100,
        *,
        kinds: Sequence[EventKind] | None = None,
        key: str | None = None,
    ) -> list[LedgerEvent]:
        """A thread's events with id > `after_id`, oldest first, optionally filtered."""

    @abc.abstractmethod
    async def last_event_id(self, thread_id: str) -> int:
        """The id of the thread's newest event, 0 when it has none (one index lookup)."""

    async def begin(
        self,
        key: str,
        *,
        thread_id: str,
        tool: str,
        tool_call_id: str,
        args: object,
        lease_s: float = 300.0,
        event: EventDraft | None = None,
    ) -> BeginOutcome:
        """Claim the call (answer `run`) or report what is recorded for it.

        `event` is appended with the claim when this call wins it (not when it finds a row).
        """
        now = self.clock()
        candidate = LedgerEntry(
            key=key,
            thread_id=thread_id,
            tool=tool,
            tool_call_id=tool_call_id,
            state="scheduled",
            args=to_json(args),
            attempt=1,
            lease_until=now + lease_s,
            created_at=now,
            updated_at=now,
        )
        if await self._insert_logged(candidate, event):
            return BeginOutcome(action="run", entry=candidate)
        entry = await self.get(key)
        if entry is None:  # pragma: no cover - rows are never deleted
            raise LedgerConflict(f"Ledger entry {key} vanished; the ledger table was edited.")
        if entry.tool != tool:
            raise LedgerConflict(
                f"Idempotency key {key[:12]}… belongs to tool {entry.tool!r}, not {tool!r}."
            )
        return BeginOutcome(action=_classify(entry, now), entry=entry)

    async def reclaim(self, key: str, *, lease_s: float = 300.0) -> BeginOutcome | None:
        """Take over an in-doubt call to run it again (idempotent tools only); None if lost."""
        now = self.clock()
        entry = await self._take_over(key, now + lease_s, now)
        return None if entry is None else BeginOutcome(action="run", entry=entry)

    async def renew(self, key: str, *, attempt: int, lease_s: float) -> bool:
        """Heartbeat of a running call: keep its lease `lease_s` ahead (False once lost).

        Short leases renewed while the tool runs let a crashed worker's call become in-doubt
        within one lease, instead of blocking its recovery for the tool's whole timeout.
        """
        return await self._extend(key, attempt, self.clock() + lease_s)

    async def complete(
        self,
        key: str,
        result: object,
        *,
        attempt: int | None = None,
        event: EventDraft | None = None,
    ) -> bool:
        """Record the result (any JSON value) of a scheduled call; False if it was not ours.

        `event` (the outcome's log entry) is appended in the same transaction either way.
        """
        return await self._finish_logged(key, "completed", to_json(result), None, attempt, event)

    async def fail(
        self,
        key: str,
        error: str,
        *,
        attempt: int | None = None,
        event: EventDraft | None = None,
    ) -> bool:
        """Record the failure of a scheduled call; False if it was not (or no longer) ours."""
        return await self._finish_logged(key, "failed", None, error, attempt, event)

    async def _insert_logged(self, entry: LedgerEntry, event: EventDraft | None) -> bool:
        """`_insert`, then `event` if the insert won; SQL backends make the pair one transaction."""
        inserted = await self._insert(entry)
        if inserted and event is not None:
            await self.append_event(event.thread_id, event.kind, event.data, key=event.key)
        return inserted

    async def _finish_logged(
        self,
        key: str,
        state: LedgerState,
        result: JsonValue,
        error: str | None,
        attempt: int | None,
        event: EventDraft | None,
    ) -> bool:
        """`_finish`, then `event`; SQL backends make the pair one transaction."""
        finished = await self._finish(key, state, result, error, attempt)
        if event is not None:
            await self.append_event(event.thread_id, event.kind, event.data, key=event.key)
        return finished

    async def wait(self, key: str, *, timeout_s: float, poll_s: float = 0.05) -> LedgerEntry:
        """Poll until the entry leaves `scheduled`, its lease expires, or `timeout_s` passes."""
        deadline = time.monotonic() + timeout_s
        while True:
            entry = await self.get(key)
            if entry is None:
                raise LedgerConflict(f"No ledger entry for key {key[:12]}….")
            if entry.state != "scheduled" or entry.lease_until <= self.clock():
                return entry
            if time.monotonic() >= deadline:
                return entry
            await asyncio.sleep(poll_s)

    async def __aenter__(self) -> Ledger:
        await self.setup()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def to_json(value: object) -> JsonValue:
    """A JSON-compatible copy of `value` (TypeError for anything JSON cannot hold)."""
    loaded: JsonValue = json.loads(canonical_json(value))
    return loaded


def _classify(entry: LedgerEntry, now: float) -> BeginAction:
    if entry.state != "scheduled":
        return "replay"
    return "in_flight" if entry.lease_until > now else "in_doubt"
