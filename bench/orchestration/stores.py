"""Where the benchmark's graphs keep their checkpoints, and how much they wrote there.

Each store is a checkpointer as the service opens it (`service.persistence`) with the team's
tool ledger beside it, as in production: SQLite files in the run's temporary folder, or
PostgreSQL in a fresh schema (`search_path` on every pooled connection) dropped at the end, so
nothing of the benchmark stays in the shared database and no other job's rows are counted.
`Store.stored` reads the checkpoint tables' payload bytes for a prefix of thread ids.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg.conninfo import make_conninfo

from service.persistence import postgres_pool
from tools.ledger import Ledger, PostgresLedger, SqliteLedger


@dataclass
class Store:
    """A checkpointer with the team's ledger beside it, and how to read what they stored."""

    name: str
    saver: BaseCheckpointSaver[Any]
    ledger: Ledger
    stored: Callable[[str], Awaitable[tuple[int, int]]]
    """(payload bytes, checkpoints) of the threads whose id starts with the prefix."""


class LedgerMeter:
    """How many statements a ledger ran and how long the callers waited for them.

    Every ledger operation is one SQL statement (`SqlLedger._query`), so wrapping that method
    on this one instance counts them all; the team's nodes await them one at a time, so the
    waiting time is the share of a task the ledger took (attribution only).
    """

    def __init__(self, ledger: Ledger) -> None:
        self.statements = 0
        self.seconds = 0.0
        query = ledger._query  # type: ignore[attr-defined]

        async def timed(sql: str, params: Mapping[str, Any]) -> Any:
            started = time.perf_counter()
            try:
                return await query(sql, params)
            finally:
                self.statements += 1
                self.seconds += time.perf_counter() - started

        setattr(ledger, "_query", timed)  # noqa: B010 - an instance attribute, not the class's

    def reading(self) -> tuple[int, float]:
        """Statements and seconds so far."""
        return self.statements, self.seconds


@asynccontextmanager
async def sqlite_store(folder: Path, ledger_mode: str) -> AsyncIterator[Store]:
    """The SQLite checkpointer (a file, WAL) and a SQLite ledger file next to it."""
    path = folder / "checkpoints.sqlite"
    ledger = SqliteLedger(":memory:" if ledger_mode == "memory" else folder / "ledger.sqlite")
    await ledger.setup()

    async def stored(prefix: str) -> tuple[int, int]:
        with sqlite3.connect(path) as conn:
            like = (prefix + "%",)
            count, size = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(checkpoint) + LENGTH(metadata)), 0) "
                "FROM checkpoints WHERE thread_id LIKE ?",
                like,
            ).fetchone()
            (writes,) = conn.execute(
                "SELECT COALESCE(SUM(LENGTH(value)), 0) FROM writes WHERE thread_id LIKE ?", like
            ).fetchone()
        return int(size) + int(writes), int(count)

    try:
        async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
            await saver.setup()
            yield Store("sqlite", saver, ledger, stored)
    finally:
        await ledger.close()


@asynccontextmanager
async def postgres_store(pg_url: str, ledger_mode: str) -> AsyncIterator[Store]:
    """The PostgreSQL checkpointer and ledger in a fresh schema, dropped on the way out."""
    schema = f"bench_orch_{uuid.uuid4().hex[:10]}"
    conninfo = make_conninfo(pg_url, options=f"-c search_path={schema}")
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
    ledger: Ledger | None = None
    try:
        async with postgres_pool(conninfo) as pool:  # as the service configures it
            saver = AsyncPostgresSaver(pool)
            await saver.setup()
            if ledger_mode == "memory":
                ledger = SqliteLedger(":memory:")
            else:  # as production opens it (`open_ledger`), on the schema's connections
                ledger = await PostgresLedger.from_url(conninfo)
            await ledger.setup()

            async def stored(prefix: str) -> tuple[int, int]:
                like = {"like": prefix + "%"}
                async with pool.connection() as conn:
                    cur = await conn.execute(
                        "SELECT COUNT(*) AS n, COALESCE(SUM(octet_length(checkpoint::text)"
                        " + octet_length(metadata::text)), 0) AS size FROM checkpoints"
                        " WHERE thread_id LIKE %(like)s",
                        like,
                    )
                    head = await cur.fetchone()
                    total = int(head["size"]) if head else 0
                    for table in ("checkpoint_blobs", "checkpoint_writes"):
                        cur = await conn.execute(
                            f"SELECT COALESCE(SUM(octet_length(blob)), 0) AS size FROM {table}"
                            " WHERE thread_id LIKE %(like)s",
                            like,
                        )
                        row = await cur.fetchone()
                        total += int(row["size"]) if row else 0
                return total, int(head["n"]) if head else 0

            yield Store("postgres", saver, ledger, stored)
    finally:
        if ledger is not None:
            await ledger.close()
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
