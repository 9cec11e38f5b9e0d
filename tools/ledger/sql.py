"""The ledger over SQL, written once: the statements both backends run, with `:name` parameters.

PostgreSQL and SQLite agree on everything the ledger needs (INSERT … ON CONFLICT DO NOTHING,
UPDATE … RETURNING, partial indexes), so every statement is written here and each backend only
supplies a connection (`_query`, and `_transaction` for two statements that must commit
together), how JSON values travel (`_json_param`), its column types for the tables (`ddl`) and
how it hands out the next event id of a thread (`_APPEND`). Each ledger operation is one
statement, atomic on its own in both databases; a claim or an outcome written with its event
is two statements in one transaction.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar

from pydantic import JsonValue

from tools.ledger.base import (
    EVENTS_TABLE,
    LEDGER_TABLE,
    EventDraft,
    EventKind,
    Ledger,
    LedgerEntry,
    LedgerEvent,
    LedgerState,
    to_json,
)

__all__ = ["EVENT_COLUMNS", "Query", "SqlLedger", "ddl"]

Query = Callable[[str, Mapping[str, Any]], Awaitable[list[dict[str, Any]]]]
"""Runs one statement and returns its rows (JSON columns decoded)."""

_COLUMNS = (
    "key, thread_id, tool, tool_call_id, state, args, result, error, attempt, lease_until, "
    "created_at, updated_at"
)
EVENT_COLUMNS = "thread_id, id, kind, key, data, created_at"
_SCHEDULED = "WHERE key = :key AND state = 'scheduled'"


def ddl(*, json: str, real: str, bigint: str) -> tuple[str, ...]:
    """The tables and indexes, in the backend's types for JSON, floats and 64-bit integers."""
    return (
        f"""CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
    key TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    tool_call_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('scheduled', 'completed', 'failed')),
    args {json} NOT NULL,
    result {json},
    error TEXT,
    attempt INTEGER NOT NULL,
    lease_until {real} NOT NULL,
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL
)""",
        f"CREATE INDEX IF NOT EXISTS {LEDGER_TABLE}_thread ON {LEDGER_TABLE} (thread_id)",
        f"""CREATE TABLE IF NOT EXISTS {EVENTS_TABLE} (
    thread_id TEXT NOT NULL,
    id {bigint} NOT NULL,
    kind TEXT NOT NULL,
    key TEXT,
    data {json} NOT NULL,
    created_at {real} NOT NULL,
    PRIMARY KEY (thread_id, id)
)""",
        f"CREATE INDEX IF NOT EXISTS {EVENTS_TABLE}_key ON {EVENTS_TABLE} (key) "
        "WHERE key IS NOT NULL",
    )


class SqlLedger(Ledger):
    """`Ledger` storage as SQL statements; subclasses connect them to a database."""

    _APPEND: ClassVar[str]
    """Inserts one event with the thread's next id (:thread_id, :kind, :key, :data,
    :created_at) and returns it (`EVENT_COLUMNS`), in one statement."""

    @abc.abstractmethod
    async def _query(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run one statement; its rows as dicts, JSON columns decoded (empty without rows)."""

    @abc.abstractmethod
    def _transaction(self) -> AbstractAsyncContextManager[Query]:
        """A `Query` whose statements commit together when the block ends (roll back on error)."""

    @abc.abstractmethod
    def _json_param(self, value: JsonValue) -> Any:
        """`value` as the driver must receive it for a JSON column."""

    async def get(self, key: str) -> LedgerEntry | None:
        """The entry for `key`."""
        rows = await self._query(
            f"SELECT {_COLUMNS} FROM {LEDGER_TABLE} WHERE key = :key", {"key": key}
        )
        return LedgerEntry.model_validate(rows[0]) if rows else None

    async def _insert(self, entry: LedgerEntry, query: Query | None = None) -> bool:
        values = ", ".join(f":{name.strip()}" for name in _COLUMNS.split(","))
        params = {**entry.model_dump(), "args": self._json_param(entry.args), "result": None}
        rows = await (query or self._query)(
            f"INSERT INTO {LEDGER_TABLE} ({_COLUMNS}) VALUES ({values}) "
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
        query: Query | None = None,
    ) -> bool:
        ours = "" if attempt is None else " AND attempt = :attempt"
        rows = await (query or self._query)(
            f"UPDATE {LEDGER_TABLE} SET state = :state, result = :result, error = :error, "
            f"updated_at = :now {_SCHEDULED}{ours} RETURNING key",
            {
                "state": state,
                "result": None if result is None else self._json_param(result),
                "error": error,
                "now": self.clock(),
                "key": key,
                "attempt": attempt,
            },
        )
        return bool(rows)

    async def _extend(self, key: str, attempt: int, lease_until: float) -> bool:
        rows = await self._query(
            f"UPDATE {LEDGER_TABLE} SET lease_until = :lease, updated_at = :now "
            f"{_SCHEDULED} AND attempt = :attempt RETURNING key",
            {"lease": lease_until, "now": self.clock(), "key": key, "attempt": attempt},
        )
        return bool(rows)

    async def _take_over(self, key: str, lease_until: float, now: float) -> LedgerEntry | None:
        rows = await self._query(
            f"UPDATE {LEDGER_TABLE} SET lease_until = :lease, attempt = attempt + 1, "
            f"updated_at = :now {_SCHEDULED} AND lease_until <= :now RETURNING {_COLUMNS}",
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
        query: Query | None = None,
    ) -> LedgerEvent:
        """Append an event (one statement; ids per thread in commit order)."""
        rows = await (query or self._query)(
            self._APPEND,
            {
                "thread_id": thread_id,
                "kind": kind,
                "key": key,
                "data": self._json_param(to_json(dict(data or {}))),
                "created_at": self.clock(),
            },
        )
        return LedgerEvent.model_validate(rows[0])

    async def _insert_logged(self, entry: LedgerEntry, event: EventDraft | None) -> bool:
        """The claim and its event in one transaction (no event when the claim is lost)."""
        if event is None:
            return await self._insert(entry)
        async with self._transaction() as query:
            inserted = await self._insert(entry, query)
            if inserted:
                await self._append_draft(event, query)
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
        """The outcome and its event in one transaction."""
        if event is None:
            return await self._finish(key, state, result, error, attempt)
        async with self._transaction() as query:
            finished = await self._finish(key, state, result, error, attempt, query)
            await self._append_draft(event, query)
        return finished

    async def _append_draft(self, event: EventDraft, query: Query) -> None:
        await self.append_event(event.thread_id, event.kind, event.data, key=event.key, query=query)

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
            f"SELECT {EVENT_COLUMNS} FROM {EVENTS_TABLE} "
            "WHERE thread_id = :thread_id AND id > :after"
        )
        params: dict[str, Any] = {"thread_id": thread_id, "after": after_id, "limit": limit}
        if kinds is not None:
            names = [f"kind{index}" for index in range(len(kinds))]
            sql += f" AND kind IN ({', '.join(f':{name}' for name in names) or 'NULL'})"
            params.update(zip(names, kinds, strict=True))
        if key is not None:
            sql += " AND key = :key"
            params["key"] = key
        rows = await self._query(sql + " ORDER BY id LIMIT :limit", params)
        return [LedgerEvent.model_validate(row) for row in rows]

    async def last_event_id(self, thread_id: str) -> int:
        """The newest event's id (the primary key's last entry for the thread)."""
        rows = await self._query(
            f"SELECT coalesce(max(id), 0) AS last FROM {EVENTS_TABLE} WHERE thread_id = :thread_id",
            {"thread_id": thread_id},
        )
        return int(rows[0]["last"])
