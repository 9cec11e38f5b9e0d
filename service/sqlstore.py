"""The connection half of the service's small SQL stores (API keys, dead letters).

Each store writes its SQL once with `?` markers in a base class; these mixins supply the
connection: one shared aiosqlite connection in WAL mode for the embedded default, or a small
autocommit psycopg pool for PostgreSQL. `_sql` turns the markers into the driver's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiosqlite
from psycopg_pool import AsyncConnectionPool

__all__ = ["PostgresConnection", "SqliteConnection", "is_postgres_url"]


def is_postgres_url(url: str | None) -> bool:
    """Whether a database URL names PostgreSQL (else the store uses SQLite in the data dir)."""
    return bool(url) and str(url).startswith(("postgresql://", "postgres://"))


class SqliteConnection:
    """One aiosqlite connection (WAL, busy timeout), opened on first use."""

    placeholder = "?"

    def _open_sqlite(self, path: Path) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self.placeholder)

    async def _connection(self) -> aiosqlite.Connection:
        async with self._lock:
            if self._conn is None:
                await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
                conn = await aiosqlite.connect(self.path, isolation_level=None)
                await conn.execute("PRAGMA busy_timeout = 10000")
                await conn.execute("PRAGMA journal_mode = WAL")
                self._conn = conn
            return self._conn

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Run one statement; the rows it returns (none for a write)."""
        conn = await self._connection()
        async with conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def close(self) -> None:
        """Close the connection."""
        async with self._lock:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None


class PostgresConnection:
    """A small autocommit psycopg pool (opened by the store's setup)."""

    placeholder = "%s"

    def _open_pool(self, url: str) -> None:
        self.pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=4,
            kwargs={"autocommit": True, "prepare_threshold": 0},
            open=False,
        )

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self.placeholder)

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Run one statement; the rows it returns (none for a write)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            return list(await cur.fetchall()) if cur.description else []

    async def close(self) -> None:
        """Close the pool."""
        await self.pool.close()
