"""The PostgreSQL ledger: the production backend on a psycopg 3 pool of autocommit connections.

Statements come from `sql.py`; this module adds the connection, JSONB, the per-thread event
counter (so event ids become visible in the order they are handed out) and the append-only
trigger, and creates the schema under an advisory lock so that concurrent workers can all call
`setup` at start.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import JsonValue

from tools.ledger.base import EVENTS_TABLE, LEDGER_TABLE, SEQ_TABLE
from tools.ledger.sql import EVENT_COLUMNS, Query, SqlLedger, ddl

__all__ = ["PostgresLedger"]

_SETUP = (
    *ddl(json="JSONB", real="DOUBLE PRECISION", bigint="BIGINT"),
    f"""CREATE TABLE IF NOT EXISTS {SEQ_TABLE} (
    thread_id TEXT PRIMARY KEY,
    last_id BIGINT NOT NULL
)""",
    f"""CREATE OR REPLACE FUNCTION {EVENTS_TABLE}_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '{EVENTS_TABLE} is append-only';
END;
$$ LANGUAGE plpgsql""",
    f"""CREATE OR REPLACE TRIGGER {EVENTS_TABLE}_no_change
    BEFORE UPDATE OR DELETE ON {EVENTS_TABLE}
    FOR EACH ROW EXECUTE FUNCTION {EVENTS_TABLE}_append_only()""",
)
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@functools.lru_cache(maxsize=256)
def _pyformat(sql: str) -> str:
    """`:name` parameters (as `sql.py` writes them) in psycopg's `%(name)s` style."""
    return _NAMED.sub(r"%(\1)s", sql)


class PostgresLedger(SqlLedger):
    """The production backend on a psycopg 3 `AsyncConnectionPool` (autocommit connections)."""

    # One statement: the per-thread counter row is locked until the insert commits, so ids are
    # handed out and become visible in the same order (a reader never skips a late commit).
    _APPEND = f"""
WITH seq AS (
    INSERT INTO {SEQ_TABLE} AS s (thread_id, last_id) VALUES (:thread_id, 1)
    ON CONFLICT (thread_id) DO UPDATE SET last_id = s.last_id + 1
    RETURNING last_id
)
INSERT INTO {EVENTS_TABLE} ({EVENT_COLUMNS})
SELECT :thread_id, last_id, :kind, :key, :data, :created_at FROM seq
RETURNING {EVENT_COLUMNS}
"""

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
                for statement in _SETUP:
                    await conn.execute(statement, prepare=False)

    async def close(self) -> None:
        """Close the pool if this ledger opened it."""
        if self._owns_pool:
            await self.pool.close()

    async def _query(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        return await self._fetch(_pyformat(sql), dict(params))

    async def _fetch(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """One statement, one round trip (JSONB comes back decoded)."""
        async with self.pool.connection() as conn:
            return await _run(conn, sql, params)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Query]:
        """Statements on one pooled connection inside BEGIN … COMMIT."""
        async with self.pool.connection() as conn, conn.transaction():

            async def query(sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
                return await _run(conn, _pyformat(sql), dict(params))

            yield query

    def _json_param(self, value: JsonValue) -> Any:
        return Jsonb(value)


async def _run(
    conn: AsyncConnection[Any], sql: str, params: dict[str, Any]
) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sql, params)
    return await cur.fetchall() if cur.description else []
