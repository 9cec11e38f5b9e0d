"""The SQLite ledger: the embedded default, one aiosqlite connection in autocommit mode.

Statements come from `sql.py`; this module adds the connection (WAL for files, a busy timeout),
JSON as canonical text, the next event id computed inside the insert, and append-only triggers.
The connection is shared, so statements take turns on it: a transaction's two statements must
not have another coroutine's statement land between them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
from pydantic import JsonValue

from tools.ledger.base import EVENTS_TABLE
from tools.ledger.sql import EVENT_COLUMNS, Query, SqlLedger, ddl
from tools.registry import canonical_json

__all__ = ["SqliteLedger"]

_SETUP = ";\n".join(ddl(json="TEXT", real="REAL", bigint="INTEGER")) + (
    f""";
CREATE TRIGGER IF NOT EXISTS {EVENTS_TABLE}_no_update BEFORE UPDATE ON {EVENTS_TABLE}
BEGIN SELECT RAISE(ABORT, '{EVENTS_TABLE} is append-only'); END;
CREATE TRIGGER IF NOT EXISTS {EVENTS_TABLE}_no_delete BEFORE DELETE ON {EVENTS_TABLE}
BEGIN SELECT RAISE(ABORT, '{EVENTS_TABLE} is append-only'); END;
"""
)
# Columns stored as JSON text, decoded when read.
_JSON_COLUMNS = ("args", "result", "data")


class SqliteLedger(SqlLedger):
    """The embedded backend: one aiosqlite connection in autocommit mode (WAL for files).

    Every write is a single statement, so it is atomic in SQLite even with several processes
    on the same file; `busy_timeout` makes writers wait for each other instead of failing.
    """

    # The next id is computed inside the write, which SQLite serialises.
    _APPEND = (
        f"INSERT INTO {EVENTS_TABLE} ({EVENT_COLUMNS}) "
        f"VALUES (:thread_id, (SELECT COALESCE(MAX(id), 0) + 1 FROM {EVENTS_TABLE} "
        "WHERE thread_id = :thread_id), :kind, :key, :data, :created_at) "
        f"RETURNING {EVENT_COLUMNS}"
    )

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        self.path = str(path)
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._turn = asyncio.Lock()
        """Held by each statement, and by a transaction from BEGIN to COMMIT."""

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
        await conn.executescript(_SETUP)

    async def close(self) -> None:
        """Close the connection."""
        async with self._lock:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None

    async def _query(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [_decoded(row) for row in await self._rows(sql, params)]

    async def _rows(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any]
    ) -> list[aiosqlite.Row]:
        """One statement on the shared connection (positional or named parameters)."""
        conn = await self._connection()
        async with self._turn:
            return await _fetch(conn, sql, params)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Query]:
        """BEGIN IMMEDIATE … COMMIT on the shared connection, other statements held back."""
        conn = await self._connection()
        async with self._turn:

            async def query(sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
                return [_decoded(row) for row in await _fetch(conn, sql, params)]

            # IMMEDIATE takes the write lock at once: two processes on one file cannot both
            # read under a shared lock and then deadlock upgrading it.
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield query
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    def _json_param(self, value: JsonValue) -> Any:
        return canonical_json(value)


async def _fetch(
    conn: aiosqlite.Connection, sql: str, params: Sequence[Any] | Mapping[str, Any]
) -> list[aiosqlite.Row]:
    async with conn.execute(sql, params) as cur:
        return list(await cur.fetchall())


def _decoded(row: aiosqlite.Row) -> dict[str, Any]:
    """A row as a dict, its JSON text columns parsed."""
    data = dict(row)
    for column in _JSON_COLUMNS:
        if data.get(column) is not None:
            data[column] = json.loads(data[column])
    return data
