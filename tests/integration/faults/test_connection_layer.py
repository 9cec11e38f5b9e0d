"""The connection layer across a restart: pools, the Redis client, progress, outage errors.

Against real servers of the tests' own: after a restart the first request through each pool or
client succeeds (stale connections are replaced, not handed out), progress events produced
while the database is down are written in order once it is back, and the errors a dependency
outage raises are recognised as such (503), however they are wrapped.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from fastapi import HTTPException
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.requests import Request

from service.api.aegra_progress import ProgressLog
from service.api.outage import is_outage, outage_aware
from service.dlq import PostgresDeadLetterStore
from service.rate_limits import redis_client
from service.serving.aegra_leases import ReaperGuard
from tests.integration.aegra import harness
from tests.integration.faults.services import PostgresServer, RedisServer
from tools.ledger import PostgresLedger

pytestmark = pytest.mark.slow


@pytest.fixture
async def database(pg: PostgresServer) -> AsyncIterator[str]:
    with harness.fresh_database(pg.url) as url:
        yield url
        if not pg.accepts():
            pg.start()


async def test_every_pool_and_client_works_on_first_use_after_a_restart(
    database: str, pg: PostgresServer, redis_srv: RedisServer
) -> None:
    store = PostgresDeadLetterStore(database)
    await store.setup()
    ledger = await PostgresLedger.from_url(database)
    await ledger.setup()
    redis = redis_client(redis_srv.url)
    try:
        thread = str(uuid.uuid4())
        await ledger.append_event(thread, "WorkflowStarted", {})
        assert await store.list("t", None, 10, 0) == []
        assert await redis.set("strategos-test:restart", "1")

        await asyncio.to_thread(pg.stop)
        await asyncio.to_thread(pg.start)
        await asyncio.to_thread(redis_srv.stop)
        await asyncio.to_thread(redis_srv.start)

        # No request pays for the restart: each pool and client replaces its broken connection.
        assert [e.kind for e in await ledger.events(thread)] == ["WorkflowStarted"]
        assert await store.list("t", None, 10, 0) == []
        assert await redis.get("strategos-test:restart") == b"1"
    finally:
        await redis.delete("strategos-test:restart")
        await redis.aclose()
        await ledger.close()
        await store.close()


async def test_progress_produced_while_the_database_is_down_is_written_in_order(
    database: str, pg: PostgresServer
) -> None:
    ledger = await PostgresLedger.from_url(database)
    await ledger.setup()  # the tables Aegra's instances would have created
    progress = ProgressLog(database)
    thread, run = str(uuid.uuid4()), str(uuid.uuid4())
    try:
        await progress.append(thread, run, {"n": 0})
        await asyncio.to_thread(pg.stop)
        for n in (1, 2, 3):  # queued: the run's stream goes on while the database is down
            await progress.append(thread, run, {"n": n})
        assert progress.pending(run) == 3
        await asyncio.to_thread(pg.start)
        await progress.append(thread, run, {"n": 4})
        assert await progress.finish(run)

        logged = await ledger.events(thread, kinds=["AgentProgress"])
        assert [e.data for e in logged] == [{"n": n} for n in range(5)]
        assert {e.key for e in logged} == {run}
    finally:
        await progress.close()
        await ledger.close()


async def test_outage_errors_are_recognised_however_wrapped(pg: PostgresServer) -> None:
    down_pg = f"postgresql://postgres@127.0.0.1:{harness.free_port()}/postgres"
    with pytest.raises(psycopg.OperationalError) as refused:
        await psycopg.AsyncConnection.connect(down_pg, connect_timeout=2)
    assert is_outage(refused.value)

    pool: AsyncConnectionPool[psycopg.AsyncConnection[tuple[object, ...]]] = AsyncConnectionPool(
        down_pg, min_size=1, open=False, timeout=1.0
    )
    await pool.open(wait=False)
    with pytest.raises(PoolTimeout) as timed_out:
        await pool.getconn()
    await pool.close()
    assert is_outage(timed_out.value)

    redis = redis_client(f"redis://127.0.0.1:{harness.free_port()}/0")
    with pytest.raises(RedisConnectionError) as no_redis:
        await redis.ping()
    await redis.aclose()
    assert is_outage(no_redis.value)

    with pytest.raises(psycopg.errors.SyntaxError) as mistake:
        async with await psycopg.AsyncConnection.connect(pg.url) as conn:
            await conn.execute("SELEC 1")
    assert not is_outage(mistake.value)

    # Aegra turns some errors into its own 500s; one caused by an outage still answers 503.
    async def aegra_500(request: Request, exc: Exception) -> object:
        raise AssertionError("an outage must not reach the 500 handler")

    wrapped = HTTPException(500, "Failed to retrieve thread state")
    wrapped.__cause__ = timed_out.value
    request = Request({"type": "http", "method": "GET", "path": "/threads/x/state", "headers": []})
    response = await outage_aware(aegra_500)(request, wrapped)  # type: ignore[arg-type]
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"


async def test_the_reaper_waits_out_a_database_outage() -> None:
    now = [0.0]
    reaped: list[float] = []
    down = [False]
    hangs: set[float] = set()

    async def probe() -> None:
        if down[0]:
            raise OSError("database unreachable")
        if now[0] in hangs:  # a query stuck through an outage returns late, successfully
            now[0] += 4.0

    async def reap() -> None:
        reaped.append(now[0])

    guard = ReaperGuard(reap, probe, quiet_s=7.0, stall_s=3.0, clock=lambda: now[0])

    async def run(seconds: range) -> None:
        for second in seconds:
            now[0] = float(second)
            down[0] = 3 <= second < 8  # the database restarts from 3 s to 8 s
            try:
                await guard.reap()
            except OSError:
                assert down[0]

    await run(range(20))
    # Before the outage it reaps; afterwards only once the database has answered for 7 s,
    # by when every live instance has renewed its leases.
    assert reaped == [0.0, 1.0, 2.0, *[float(s) for s in range(15, 20)]]

    # A probe that hangs from 30 s to 34 s counts as an outage: 7 s more before reaping.
    reaped.clear()
    hangs.add(30.0)
    await run(range(30, 31))
    await run(range(35, 45))
    assert reaped == [float(s) for s in range(41, 45)]
