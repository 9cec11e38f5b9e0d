"""The exactly-once tool ledger and the task's append-only event log.

A tool call is keyed by `idempotency_key(thread_id, checkpoint_ns, tool_call_id, args)`. The
gateway calls `begin(key, …)` before running a tool:

- no entry yet → the row is inserted as `scheduled` (INSERT … ON CONFLICT DO NOTHING, so of two
  concurrent callers exactly one inserts) and the answer is **run**;
- `completed` or `failed` → the answer is **replay** with the recorded result or error;
- `scheduled` with a live lease → **in_flight**: another worker is running it right now;
- `scheduled` with an expired lease → **in_doubt**: a worker died while running it, so its side
  effect may or may not have happened. Only the caller can decide (an idempotent tool may be run
  again with `reclaim`; a non-idempotent one needs a human).

`complete(key, result)` / `fail(key, error)` move `scheduled` to a final state exactly once.

The same store keeps the task's events (WorkflowStarted, ActivityScheduled, ActivityCompleted,
ApprovalRequested …), append-only (UPDATE and DELETE are refused by a trigger), each with an id
that increases by one per thread in commit order, so `events(thread_id, after_id)` is a
gap-free cursor for streaming and audits.

Backends: `PostgresLedger` (psycopg 3 `AsyncConnectionPool`, autocommit) and `SqliteLedger`
(aiosqlite, the embedded default). `open_ledger(url)` picks one from a URL.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import aiosqlite
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, JsonValue

from tools.registry import canonical_json

__all__ = [
    "BeginAction",
    "BeginOutcome",
    "EventKind",
    "Ledger",
    "LedgerConflict",
    "LedgerEntry",
    "LedgerEvent",
    "LedgerState",
    "PostgresLedger",
    "SqliteLedger",
    "idempotency_key",
    "open_ledger",
]

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
_COLUMNS = (
    "key, thread_id, tool, tool_call_id, state, args, result, error, attempt, lease_until, "
    "created_at, updated_at"
)


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
    ) -> BeginOutcome:
        """Claim the call (answer `run`) or report what is recorded for it."""
        now = self.clock()
        candidate = LedgerEntry(
            key=key,
            thread_id=thread_id,
            tool=tool,
            tool_call_id=tool_call_id,
            state="scheduled",
            args=_json(args),
            attempt=1,
            lease_until=now + lease_s,
            created_at=now,
            updated_at=now,
        )
        if await self._insert(candidate):
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

    async def complete(self, key: str, result: object, *, attempt: int | None = None) -> bool:
        """Record the result (any JSON value) of a scheduled call; False if it was not ours."""
        return await self._finish(key, "completed", _json(result), None, attempt)

    async def fail(self, key: str, error: str, *, attempt: int | None = None) -> bool:
        """Record the failure of a scheduled call; False if it was not (or no longer) ours."""
        return await self._finish(key, "failed", None, error, attempt)

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


def _json(value: object) -> JsonValue:
    """A JSON-compatible copy of `value` (TypeError for anything JSON cannot hold)."""
    loaded: JsonValue = json.loads(canonical_json(value))
    return loaded


def _classify(entry: LedgerEntry, now: float) -> BeginAction:
    if entry.state != "scheduled":
        return "replay"
    return "in_flight" if entry.lease_until > now else "in_doubt"


_PG_SETUP = (
    f"""CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
    key TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    tool_call_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('scheduled', 'completed', 'failed')),
    args JSONB NOT NULL,
    result JSONB,
    error TEXT,
    attempt INTEGER NOT NULL,
    lease_until DOUBLE PRECISION NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
)""",
    f"CREATE INDEX IF NOT EXISTS {LEDGER_TABLE}_thread ON {LEDGER_TABLE} (thread_id)",
    f"""CREATE TABLE IF NOT EXISTS {SEQ_TABLE} (
    thread_id TEXT PRIMARY KEY,
    last_id BIGINT NOT NULL
)""",
    f"""CREATE TABLE IF NOT EXISTS {EVENTS_TABLE} (
    thread_id TEXT NOT NULL,
    id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT,
    data JSONB NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (thread_id, id)
)""",
    f"CREATE INDEX IF NOT EXISTS {EVENTS_TABLE}_key ON {EVENTS_TABLE} (key) WHERE key IS NOT NULL",
    f"""CREATE OR REPLACE FUNCTION {EVENTS_TABLE}_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '{EVENTS_TABLE} is append-only';
END;
$$ LANGUAGE plpgsql""",
    f"""CREATE OR REPLACE TRIGGER {EVENTS_TABLE}_no_change
    BEFORE UPDATE OR DELETE ON {EVENTS_TABLE}
    FOR EACH ROW EXECUTE FUNCTION {EVENTS_TABLE}_append_only()""",
)

# One statement: the per-thread counter row is locked until the insert commits, so ids are
# handed out and become visible in the same order (a reader never skips a late commit).
_PG_APPEND = f"""
WITH seq AS (
    INSERT INTO {SEQ_TABLE} AS s (thread_id, last_id) VALUES (%(thread_id)s, 1)
    ON CONFLICT (thread_id) DO UPDATE SET last_id = s.last_id + 1
    RETURNING last_id
)
INSERT INTO {EVENTS_TABLE} (thread_id, id, kind, key, data, created_at)
SELECT %(thread_id)s, last_id, %(kind)s, %(key)s, %(data)s, %(created_at)s FROM seq
RETURNING thread_id, id, kind, key, data, created_at
"""


class PostgresLedger(Ledger):
    """The production backend on a psycopg 3 `AsyncConnectionPool` (autocommit connections)."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        *,
        owns_pool: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock=clock)
        self.pool = pool
        self._owns_pool = owns_pool

    @classmethod
    async def from_url(
        cls, url: str, *, max_size: int = 10, clock: Callable[[], float] = time.time
    ) -> PostgresLedger:
        """Open a pool of its own on `url` (closed by `close()`)."""
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True, "prepare_threshold": 0},
            check=AsyncConnectionPool.check_connection,  # replace connections a restart broke
            open=False,
        )
        await pool.open(wait=True)
        return cls(pool, owns_pool=True, clock=clock)

    async def setup(self) -> None:
        """Create tables under an advisory lock, so concurrent setups do not collide."""
        async with self.pool.connection() as conn:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (LEDGER_TABLE,))
                for statement in _PG_SETUP:
                    await conn.execute(statement, prepare=False)

    async def close(self) -> None:
        """Close the pool if this ledger opened it."""
        if self._owns_pool:
            await self.pool.close()

    async def _fetch(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, params)
            return await cur.fetchall() if cur.description else []

    async def get(self, key: str) -> LedgerEntry | None:
        """The entry for `key`."""
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM {LEDGER_TABLE} WHERE key = %(key)s", {"key": key}
        )
        return LedgerEntry.model_validate(rows[0]) if rows else None

    async def _insert(self, entry: LedgerEntry) -> bool:
        params = entry.model_dump()
        params["args"] = Jsonb(entry.args)
        params["result"] = None
        rows = await self._fetch(
            f"INSERT INTO {LEDGER_TABLE} ({_COLUMNS}) VALUES (%(key)s, %(thread_id)s, %(tool)s, "
            "%(tool_call_id)s, %(state)s, %(args)s, %(result)s, %(error)s, %(attempt)s, "
            "%(lease_until)s, %(created_at)s, %(updated_at)s) "
            "ON CONFLICT (key) DO NOTHING RETURNING key",
            params,
        )
        return bool(rows)

    async def _finish(
        self,
        key: str,
        state: LedgerState,
        result: JsonValue,
        error: str | None,
        attempt: int | None,
    ) -> bool:
        rows = await self._fetch(
            f"UPDATE {LEDGER_TABLE} SET state = %(state)s, result = %(result)s, "
            "error = %(error)s, updated_at = %(now)s "
            "WHERE key = %(key)s AND state = 'scheduled' "
            "AND (%(attempt)s::int IS NULL OR attempt = %(attempt)s::int) RETURNING key",
            {
                "state": state,
                "result": None if result is None else Jsonb(result),
                "error": error,
                "now": self.clock(),
                "key": key,
                "attempt": attempt,
            },
        )
        return bool(rows)

    async def _extend(self, key: str, attempt: int, lease_until: float) -> bool:
        rows = await self._fetch(
            f"UPDATE {LEDGER_TABLE} SET lease_until = %(lease)s, updated_at = %(now)s "
            "WHERE key = %(key)s AND state = 'scheduled' AND attempt = %(attempt)s "
            "RETURNING key",
            {"lease": lease_until, "now": self.clock(), "key": key, "attempt": attempt},
        )
        return bool(rows)

    async def _take_over(self, key: str, lease_until: float, now: float) -> LedgerEntry | None:
        rows = await self._fetch(
            f"UPDATE {LEDGER_TABLE} SET lease_until = %(lease)s, attempt = attempt + 1, "
            "updated_at = %(now)s "
            "WHERE key = %(key)s AND state = 'scheduled' AND lease_until <= %(now)s "
            f"RETURNING {_COLUMNS}",
            {"lease": lease_until, "now": now, "key": key},
        )
        return LedgerEntry.model_validate(rows[0]) if rows else None

    async def append_event(
        self,
        thread_id: str,
        kind: EventKind,
        data: Mapping[str, object] | None = None,
        *,
        key: str | None = None,
    ) -> LedgerEvent:
        """Append an event (one statement; ids per thread in commit order)."""
        rows = await self._fetch(
            _PG_APPEND,
            {
                "thread_id": thread_id,
                "kind": kind,
                "key": key,
                "data": Jsonb(_json(dict(data or {}))),
                "created_at": self.clock(),
            },
        )
        return LedgerEvent.model_validate(rows[0])

    async def events(
        self,
        thread_id: str,
        after_id: int = 0,
        limit: int = 100,
        *,
        kinds: Sequence[EventKind] | None = None,
        key: str | None = None,
    ) -> list[LedgerEvent]:
        """A thread's events after `after_id`."""
        rows = await self._fetch(
            f"SELECT thread_id, id, kind, key, data, created_at FROM {EVENTS_TABLE} "
            "WHERE thread_id = %(thread_id)s AND id > %(after)s "
            "AND (%(kinds)s::text[] IS NULL OR kind = ANY(%(kinds)s::text[])) "
            "AND (%(key)s::text IS NULL OR key = %(key)s::text) "
            "ORDER BY id LIMIT %(limit)s",
            {
                "thread_id": thread_id,
                "after": after_id,
                "kinds": list(kinds) if kinds is not None else None,
                "key": key,
                "limit": limit,
            },
        )
        return [LedgerEvent.model_validate(row) for row in rows]

    async def last_event_id(self, thread_id: str) -> int:
        """The newest event's id (the primary key's last entry for the thread)."""
        rows = await self._fetch(
            f"SELECT coalesce(max(id), 0) AS last FROM {EVENTS_TABLE} "
            "WHERE thread_id = %(thread_id)s",
            {"thread_id": thread_id},
        )
        return int(rows[0]["last"])


_SQLITE_SETUP = f"""
CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
    key TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    tool_call_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('scheduled', 'completed', 'failed')),
    args TEXT NOT NULL,
    result TEXT,
    error TEXT,
    attempt INTEGER NOT NULL,
    lease_until REAL NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS {LEDGER_TABLE}_thread ON {LEDGER_TABLE} (thread_id);
CREATE TABLE IF NOT EXISTS {EVENTS_TABLE} (
    thread_id TEXT NOT NULL,
    id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    key TEXT,
    data TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (thread_id, id)
);
CREATE INDEX IF NOT EXISTS {EVENTS_TABLE}_key ON {EVENTS_TABLE} (key) WHERE key IS NOT NULL;
CREATE TRIGGER IF NOT EXISTS {EVENTS_TABLE}_no_update BEFORE UPDATE ON {EVENTS_TABLE}
BEGIN SELECT RAISE(ABORT, '{EVENTS_TABLE} is append-only'); END;
CREATE TRIGGER IF NOT EXISTS {EVENTS_TABLE}_no_delete BEFORE DELETE ON {EVENTS_TABLE}
BEGIN SELECT RAISE(ABORT, '{EVENTS_TABLE} is append-only'); END;
"""


def _row_entry(row: aiosqlite.Row) -> LedgerEntry:
    data = dict(row)
    data["args"] = json.loads(data["args"])
    data["result"] = None if data["result"] is None else json.loads(data["result"])
    return LedgerEntry.model_validate(data)


def _row_event(row: aiosqlite.Row) -> LedgerEvent:
    data = dict(row)
    data["data"] = json.loads(data["data"])
    return LedgerEvent.model_validate(data)


class SqliteLedger(Ledger):
    """The embedded backend: one aiosqlite connection in autocommit mode (WAL for files).

    Every write is a single statement, so it is atomic in SQLite even with several processes
    on the same file; `busy_timeout` makes writers wait for each other instead of failing.
    """

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        self.path = str(path)
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def _connection(self) -> aiosqlite.Connection:
        async with self._lock:
            if self._conn is None:
                if self.path != ":memory:":
                    folder = Path(self.path).parent
                    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
                conn = await aiosqlite.connect(self.path, isolation_level=None)
                conn.row_factory = aiosqlite.Row
                await conn.execute("PRAGMA busy_timeout = 10000")
                if self.path != ":memory:":
                    await conn.execute("PRAGMA journal_mode = WAL")
                self._conn = conn
            return self._conn

    async def setup(self) -> None:
        """Create tables and triggers if missing."""
        conn = await self._connection()
        await conn.executescript(_SQLITE_SETUP)

    async def close(self) -> None:
        """Close the connection."""
        async with self._lock:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None

    async def _rows(self, sql: str, params: Sequence[Any]) -> list[aiosqlite.Row]:
        conn = await self._connection()
        async with conn.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    async def get(self, key: str) -> LedgerEntry | None:
        """The entry for `key`."""
        rows = await self._rows(f"SELECT {_COLUMNS} FROM {LEDGER_TABLE} WHERE key = ?", [key])
        return _row_entry(rows[0]) if rows else None

    async def _insert(self, entry: LedgerEntry) -> bool:
        rows = await self._rows(
            f"INSERT INTO {LEDGER_TABLE} ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (key) DO NOTHING RETURNING key",
            [
                entry.key,
                entry.thread_id,
                entry.tool,
                entry.tool_call_id,
                entry.state,
                canonical_json(entry.args),
                None,
                None,
                entry.attempt,
                entry.lease_until,
                entry.created_at,
                entry.updated_at,
            ],
        )
        return bool(rows)

    async def _finish(
        self,
        key: str,
        state: LedgerState,
        result: JsonValue,
        error: str | None,
        attempt: int | None,
    ) -> bool:
        rows = await self._rows(
            f"UPDATE {LEDGER_TABLE} SET state = ?, result = ?, error = ?, updated_at = ? "
            "WHERE key = ? AND state = 'scheduled' AND (? IS NULL OR attempt = ?) RETURNING key",
            [
                state,
                None if result is None else canonical_json(result),
                error,
                self.clock(),
                key,
                attempt,
                attempt,
            ],
        )
        return bool(rows)

    async def _extend(self, key: str, attempt: int, lease_until: float) -> bool:
        rows = await self._rows(
            f"UPDATE {LEDGER_TABLE} SET lease_until = ?, updated_at = ? "
            "WHERE key = ? AND state = 'scheduled' AND attempt = ? RETURNING key",
            [lease_until, self.clock(), key, attempt],
        )
        return bool(rows)

    async def _take_over(self, key: str, lease_until: float, now: float) -> LedgerEntry | None:
        rows = await self._rows(
            f"UPDATE {LEDGER_TABLE} SET lease_until = ?, attempt = attempt + 1, updated_at = ? "
            f"WHERE key = ? AND state = 'scheduled' AND lease_until <= ? RETURNING {_COLUMNS}",
            [lease_until, now, key, now],
        )
        return _row_entry(rows[0]) if rows else None

    async def append_event(
        self,
        thread_id: str,
        kind: EventKind,
        data: Mapping[str, object] | None = None,
        *,
        key: str | None = None,
    ) -> LedgerEvent:
        """Append an event (one statement: the next id is computed inside the write)."""
        rows = await self._rows(
            f"INSERT INTO {EVENTS_TABLE} (thread_id, id, kind, key, data, created_at) "
            f"VALUES (?, (SELECT COALESCE(MAX(id), 0) + 1 FROM {EVENTS_TABLE} "
            "WHERE thread_id = ?), ?, ?, ?, ?) "
            "RETURNING thread_id, id, kind, key, data, created_at",
            [thread_id, thread_id, kind, key, canonical_json(dict(data or {})), self.clock()],
        )
        return _row_event(rows[0])

    async def events(
        self,
        thread_id: str,
        after_id: int = 0,
        limit: int = 100,
        *,
        kinds: Sequence[EventKind] | None = None,
        key: str | None = None,
    ) -> list[LedgerEvent]:
        """A thread's events after `after_id`."""
        sql = (
            f"SELECT thread_id, id, kind, key, data, created_at FROM {EVENTS_TABLE} "
            "WHERE thread_id = ? AND id > ?"
        )
        params: list[Any] = [thread_id, after_id]
        if kinds is not None:
            sql += f" AND kind IN ({', '.join('?' for _ in kinds) or 'NULL'})"
            params += list(kinds)
        if key is not None:
            sql += " AND key = ?"
            params.append(key)
        sql += " ORDER BY id LIMIT ?"
        params.append(limit)
        return [_row_event(row) for row in await self._rows(sql, params)]

    async def last_event_id(self, thread_id: str) -> int:
        """The newest event's id (the primary key's last entry for the thread)."""
        rows = await self._rows(
            f"SELECT coalesce(max(id), 0) FROM {EVENTS_TABLE} WHERE thread_id = ?", [thread_id]
        )
        return int(rows[0][0])


async def open_ledger(url: str, *, clock: Callable[[], float] = time.time) -> Ledger:
    """A set-up ledger for `postgresql://…`, `sqlite:///path`, `sqlite://:memory:` or a path."""
    if url.startswith(("postgresql://", "postgres://")):
        ledger: Ledger = await PostgresLedger.from_url(url, clock=clock)
    else:
        path = url.removeprefix("sqlite://")
        path = path.removeprefix("/") if path.startswith("/:memory:") else path
        ledger = SqliteLedger(path, clock=clock)
    await ledger.setup()
    return ledger
