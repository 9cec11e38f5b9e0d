"""The connection half of the service's small SQL stores (API keys, dead letters).

Each store writes its SQL once with `?` markers in a base class; these mixins supply the
connection: one shared aiosqlite connection in WAL mode for the embedded default, or a small
autocommit psycopg pool for PostgreSQL. `_sql` turns the markers into the driver's.

The pool checks each connection before lending it, so after a PostgreSQL restart the stale
connections are replaced instead of failing one request each; while the server is down the pool
reconnects with backoff and a request waits at most `POOL_WAIT_S` for it (then the task API
answers 503, `service.api.outage`). `exclusive` is a lock shared by every process on the
database (a transaction-scoped advisory lock), released by PostgreSQL if its holder dies.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
from psycopg_pool import AsyncConnectionPool

__all__ = [
    "POOL_WAIT_S",
    "LockBusy",
    "NamedLocks",
    "PostgresConnection",
    "SqliteConnection",
    "is_postgres_url",
]

POOL_WAIT_S = 5.0
"""How long a statement waits for a connection while the server is unreachable."""


class LockBusy(Exception):
    """A named lock was held for longer than the caller was willing to wait."""


class NamedLocks:
    """In-process locks by name, each forgotten once nobody holds or waits for it."""

    def __init__(self) -> None:
        self._named: dict[str, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        """How many names are held or waited for."""
        return len(self._named)

    @asynccontextmanager
    async def hold(self, name: str, wait_s: float) -> AsyncIterator[None]:
        """Hold `name`; waiting longer than `wait_s` raises `LockBusy`."""
        lock, users = self._named.get(name, (asyncio.Lock(), 0))
        self._named[name] = (lock, users + 1)
        try:
            try:
                await asyncio.wait_for(lock.acquire(), wait_s)
            except TimeoutError:
                raise LockBusy(name) from None
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._named[name]
            if users == 1:
                del self._named[name]
            else:
                self._named[name] = (lock, users - 1)


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
        self._named = NamedLocks()

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

    @asynccontextmanager
    async def exclusive(self, name: str, wait_s: float) -> AsyncIterator[None]:
        """Hold `name` in this process (SQLite serves one process: the embedded default)."""
        async with self._named.hold(name, wait_s):
            yield

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
            check=AsyncConnectionPool.check_connection,
            timeout=POOL_WAIT_S,
            open=False,
        )

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self.placeholder)

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Run one statement; the rows it returns (none for a write)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            return list(await cur.fetchall()) if cur.description else []

    @asynccontextmanager
    async def exclusive(self, name: str, wait_s: float) -> AsyncIterator[None]:
        """Hold `name` across every process on this database, waiting at most `wait_s`.

        A transaction-scoped advisory lock on one pooled connection: released at the end of
        the block, or by the server when the holder's connection dies with it.
        """
        import psycopg

        async with self.pool.connection() as conn, conn.transaction():
            timeout = f"{max(1, int(wait_s * 1000))}ms"
            await conn.execute("SELECT set_config('lock_timeout', %s, true)", (timeout,))
            try:
                await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (name,))
            except psycopg.errors.LockNotAvailable:
                raise LockBusy(name) from None
            yield

    async def close(self) -> None:
        """Close the pool."""
        await self.pool.close()
