"""Checkpointer factories: SQLite by default, PostgreSQL when a database URL is configured."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from service.settings import Settings


def postgres_pool(
    conninfo: str, wait_s: float = 30.0
) -> AsyncConnectionPool[AsyncConnection[DictRow]]:
    """The (unopened) pool a PostgreSQL checkpointer runs on, as the service configures it.

    Autocommit and dict rows as `AsyncPostgresSaver` expects; a connection broken by a server
    restart is replaced, not handed to a step.
    """
    return AsyncConnectionPool[AsyncConnection[DictRow]](
        conninfo,
        min_size=1,
        max_size=4,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        check=AsyncConnectionPool.check_connection,
        timeout=wait_s,
    )


@asynccontextmanager
async def checkpointer(settings: Settings) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """Open the configured checkpointer, create its tables, and close it on exit."""
    if settings.database_url:
        async with postgres_pool(settings.database_url, settings.database_wait_s) as pool:
            postgres = AsyncPostgresSaver(pool)
            await postgres.setup()
            yield postgres
        return
    path = settings.sqlite_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
        yield saver
