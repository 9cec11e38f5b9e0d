"""The dead-letter queue: runs that failed after their retries, kept until a human acts on them.

A node's `RetryPolicy` already retried what is worth retrying inside the run; a run that still
ends in error is recorded here with its error, input and the thread's last checkpoint, so an
operator can replay it from that checkpoint once the cause is fixed (the team's finished steps
are not paid for twice), or resolve it with a note. One record per run (`run_id` is unique), so
a driver that records the same outcome twice does not create a duplicate.

The table is `strategos_dead_letters` in PostgreSQL when `STRATEGOS_DATABASE_URL` is one, else
SQLite in the data dir — the same split as `service.api.tenancy.KeyStore`: the SQL lives in the base
class and the backends differ only in their connection and parameter marker.
"""

from __future__ import annotations

import abc
import asyncio
import json
import time
import uuid
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, JsonValue

from service.settings import Settings, get_settings
from service.sqlstore import PostgresConnection, SqliteConnection, is_postgres_url

__all__ = [
    "DeadLetter",
    "DeadLetterStatus",
    "DeadLetterStore",
    "close_dlq_stores",
    "get_dlq_store",
]

TABLE = "strategos_dead_letters"
MAX_ERROR_CHARS = 4000

DeadLetterStatus = Literal["open", "replayed", "resolved"]
_COLUMNS = (
    "id, tenant, task_id, run_id, error, attempts, input, checkpoint_id, status, "
    "created_at, updated_at, note"
)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


class DeadLetter(BaseModel):
    """A failed run waiting for a replay or a resolution."""

    id: str
    task_id: str = Field(description="The task (thread) the run belonged to.")
    run_id: str
    error: str
    attempts: int = Field(description="How many runs of this task have failed so far.")
    input: dict[str, JsonValue] | None = Field(
        description="The run's input (None when the run resumed or answered an approval)."
    )
    checkpoint_id: str | None = Field(description="The thread's last checkpoint after the failure.")
    status: DeadLetterStatus
    created_at: str
    updated_at: str
    note: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> DeadLetter:
        """A record from a row in `_COLUMNS` order (the tenant is the caller's, not shown)."""
        loaded = json.loads(row[6]) if row[6] else None
        return cls(
            id=str(row[0]),
            task_id=str(row[2]),
            run_id=str(row[3]),
            error=str(row[4]),
            attempts=int(row[5]),
            input=loaded if isinstance(loaded, dict) else None,
            checkpoint_id=str(row[7]) if row[7] else None,
            status=row[8],
            created_at=_iso(float(row[9])),
            updated_at=_iso(float(row[10])),
            note=str(row[11]) if row[11] is not None else None,
        )


class DeadLetterStore(abc.ABC):
    """Dead letters per tenant; every query is scoped by tenant, so another tenant sees none."""

    @abc.abstractmethod
    async def setup(self) -> None:
        """Create the table if missing."""

    @abc.abstractmethod
    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Run one statement; the rows it returns (none for a write)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""

    @abc.abstractmethod
    def _sql(self, sql: str) -> str:
        """The statement with the driver's parameter markers (the SQL here uses `?`)."""

    @abc.abstractmethod
    def exclusive(self, name: str, wait_s: float) -> AbstractAsyncContextManager[None]:
        """A lock on `name` shared by every process on this database (`service.sqlstore`).

        The run driver logs each run's outcome under it, so two instances cannot both log one.
        """

    async def record(
        self,
        *,
        tenant: str,
        task_id: str,
        run_id: str,
        error: str,
        input: dict[str, Any] | None,
        checkpoint_id: str | None,
    ) -> DeadLetter:
        """Record a failed run (idempotent per run); its attempts count this task's failures."""
        [(failed,)] = await self._rows(
            self._sql(f"SELECT COUNT(*) FROM {TABLE} WHERE tenant = ? AND task_id = ?"),
            (tenant, task_id),
        )
        now = time.time()
        await self._rows(
            self._sql(
                f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, "
                "NULL) ON CONFLICT (run_id) DO NOTHING"
            ),
            (
                uuid.uuid4().hex,
                tenant,
                task_id,
                run_id,
                error[:MAX_ERROR_CHARS],
                int(failed) + 1,
                json.dumps(input, default=str) if input is not None else None,
                checkpoint_id,
                now,
                now,
            ),
        )
        rows = await self._rows(
            self._sql(f"SELECT {_COLUMNS} FROM {TABLE} WHERE run_id = ?"), (run_id,)
        )
        return DeadLetter.from_row(rows[0])

    async def get(self, tenant: str, letter_id: str) -> DeadLetter | None:
        """One of the tenant's dead letters."""
        rows = await self._rows(
            self._sql(f"SELECT {_COLUMNS} FROM {TABLE} WHERE tenant = ? AND id = ?"),
            (tenant, letter_id),
        )
        return DeadLetter.from_row(rows[0]) if rows else None

    async def list(
        self, tenant: str, status: DeadLetterStatus | None, limit: int, offset: int
    ) -> list[DeadLetter]:
        """The tenant's dead letters, newest first (`id` breaks ties, so pages are stable)."""
        where, params = "tenant = ?", [tenant]
        if status is not None:
            where, params = where + " AND status = ?", [*params, status]
        rows = await self._rows(
            self._sql(
                f"SELECT {_COLUMNS} FROM {TABLE} WHERE {where} "
                "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
            ),
            (*params, limit, offset),
        )
        return [DeadLetter.from_row(row) for row in rows]

    async def transition(
        self,
        tenant: str,
        letter_id: str,
        *,
        from_status: tuple[DeadLetterStatus, ...],
        to_status: DeadLetterStatus,
        note: str | None = None,
    ) -> bool:
        """Move a letter to `to_status` if it is in one of `from_status`; False otherwise.

        The check and the write are one statement, so two concurrent replays of the same
        letter cannot both win.
        """
        marks = ", ".join("?" for _ in from_status)
        rows = await self._rows(
            self._sql(
                f"UPDATE {TABLE} SET status = ?, updated_at = ?, note = COALESCE(?, note) "
                f"WHERE tenant = ? AND id = ? AND status IN ({marks}) RETURNING id"
            ),
            (to_status, time.time(), note, tenant, letter_id, *from_status),
        )
        return bool(rows)


_CREATE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, "
    "task_id TEXT NOT NULL, run_id TEXT NOT NULL UNIQUE, error TEXT NOT NULL, "
    "attempts INTEGER NOT NULL, input TEXT, checkpoint_id TEXT, status TEXT NOT NULL, "
    "created_at {real} NOT NULL, updated_at {real} NOT NULL, note TEXT)"
)
_INDEX = f"CREATE INDEX IF NOT EXISTS {TABLE}_tenant_status ON {TABLE} (tenant, status, created_at)"


class SqliteDeadLetterStore(SqliteConnection, DeadLetterStore):
    """Embedded backend: one aiosqlite connection (WAL), shared by the process."""

    def __init__(self, path: Path) -> None:
        self._open_sqlite(path)

    async def setup(self) -> None:
        """Create the table and its index."""
        await self._rows(_CREATE.format(real="REAL"))
        await self._rows(_INDEX)


class PostgresDeadLetterStore(PostgresConnection, DeadLetterStore):
    """PostgreSQL backend on a small psycopg pool (autocommit)."""

    def __init__(self, url: str) -> None:
        self._open_pool(url)

    async def setup(self) -> None:
        """Open the pool; create the table under an advisory lock (instances start together)."""
        await self.pool.open(wait=True)
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (TABLE,))
            await conn.execute(_CREATE.format(real="DOUBLE PRECISION"))
            await conn.execute(_INDEX)


def open_dlq_store(settings: Settings) -> DeadLetterStore:
    """The backend for the settings (not yet set up)."""
    if settings.database_url and is_postgres_url(settings.database_url):
        return PostgresDeadLetterStore(settings.database_url)
    return SqliteDeadLetterStore(settings.data_dir / "dead_letters.sqlite")


_STORES: dict[int, DeadLetterStore] = {}
_STORE_LOCK: dict[int, asyncio.Lock] = {}


async def get_dlq_store() -> DeadLetterStore:
    """The process's store for the running loop, set up on first use (connections are per loop)."""
    loop_id = id(asyncio.get_running_loop())
    lock = _STORE_LOCK.setdefault(loop_id, asyncio.Lock())
    async with lock:
        if loop_id not in _STORES:
            store = open_dlq_store(get_settings())
            await store.setup()
            _STORES[loop_id] = store
        return _STORES[loop_id]


async def close_dlq_stores() -> None:
    """Close the store of the running loop (lifespan shutdown)."""
    store = _STORES.pop(id(asyncio.get_running_loop()), None)
    if store is not None:
        await store.close()
