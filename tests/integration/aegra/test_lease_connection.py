"""The lease batcher renews through a connection of its own, not Aegra's shared pool.

At load, Aegra's SQLAlchemy pool is busy with run work; a renewal queued there outlasts the
lease and healthy runs are cancelled. Here Aegra's own worker module runs on a real PostgreSQL
database whose shared pool (one connection) is held by someone else: the batcher on its own
connection still renews the lease and loses no run; on the shared pool it cannot renew at all.
At shutdown its connection is closed.
"""

from __future__ import annotations

import asyncio
import importlib
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from types import ModuleType

import psycopg
import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from service.serving.aegra_leases import LeaseBatcher
from tests.integration.aegra import harness

pytestmark = [pytest.mark.timeout(120)]

WORKER = "worker-a"


@pytest.fixture()
def database_url() -> Iterator[str]:
    """A fresh database holding one run, running on `WORKER` with a lease of 5 s."""
    with harness.fresh_database() as url:
        asyncio.run(_create_tables(url))
        yield url


async def _create_tables(url: str) -> None:
    from aegra_api.core.orm import Base

    engine = create_async_engine(_asyncpg(url))
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await engine.dispose()


def _asyncpg(url: str) -> str:
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


def add_run(url: str) -> tuple[str, datetime]:
    run_id, thread_id = str(uuid.uuid4()), str(uuid.uuid4())
    expiry = datetime.now(UTC) + timedelta(seconds=5)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO thread (thread_id, user_id) VALUES (%s, 'u')", (thread_id,))
        conn.execute(
            "INSERT INTO runs (run_id, thread_id, user_id, status, claimed_by, lease_expires_at)"
            " VALUES (%s, %s, 'u', 'running', %s, %s)",
            (run_id, thread_id, WORKER, expiry),
        )
    return run_id, expiry


def lease(url: str, run_id: str) -> tuple[str | None, datetime]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT claimed_by, lease_expires_at FROM runs WHERE run_id = %s", (run_id,)
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def connections(url: str) -> int:
    """Sessions open on the test database (other than the one asking)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row else 0


@asynccontextmanager
async def aegra_pool_of_one(url: str) -> AsyncIterator[tuple[ModuleType, AsyncEngine]]:
    """Aegra's worker module with its shared engine on `url`: one connection, 1 s wait."""
    from aegra_api.core import orm
    from aegra_api.core.database import db_manager

    executor = importlib.import_module("aegra_api.services.worker_executor")
    shared = create_async_engine(_asyncpg(url), pool_size=1, max_overflow=0, pool_timeout=1)
    previous = db_manager.engine, orm.async_session_maker
    db_manager.engine, orm.async_session_maker = shared, None
    try:
        yield executor, shared
    finally:
        db_manager.engine, orm.async_session_maker = previous
        await shared.dispose()


Renewal = tuple[str, datetime, set[object], bool]


async def renew_with_pool_held(url: str, own_connection: bool) -> Renewal:
    """Renew a running run's lease while Aegra's only pooled connection is in use elsewhere.

    Returns the run, its lease before, the lost leases and whether the run's job was
    cancelled; raises if no renewal could be made.
    """
    run_id, before = add_run(url)
    async with aegra_pool_of_one(url) as (executor, shared):
        batcher = LeaseBatcher(executor, own_connection=own_connection)
        job = asyncio.create_task(asyncio.sleep(3600))
        holder = asyncio.create_task(batcher.hold(run_id, WORKER, job_task=job))
        try:
            await asyncio.sleep(0)  # the run registers
            async with shared.connect() as busy:  # run work holds the whole shared pool
                await busy.exec_driver_sql("SELECT 1")
                lost = await batcher.renew_once()
                assert connections(url) == 2, "the batcher did not use one connection of its own"
            return run_id, before, lost, job.cancelled()
        finally:
            await batcher.aclose()
            for task in (holder, job):
                task.cancel()
            await asyncio.gather(holder, job, return_exceptions=True)


def test_renewals_use_their_own_connection_while_the_shared_pool_is_held(
    database_url: str,
) -> None:
    run_id, before, lost, cancelled = asyncio.run(
        renew_with_pool_held(database_url, own_connection=True)
    )
    worker, after = lease(database_url, run_id)
    assert lost == set() and not cancelled, "a healthy run lost its lease"
    assert worker == WORKER and after > before, "the lease was not renewed"
    assert connections(database_url) == 0, "the batcher's connection outlived its shutdown"


def test_on_the_shared_pool_renewals_wait_behind_run_work(database_url: str) -> None:
    with pytest.raises(PoolTimeout):
        asyncio.run(renew_with_pool_held(database_url, own_connection=False))
