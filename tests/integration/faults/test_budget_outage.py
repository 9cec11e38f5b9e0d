"""The budget ledger rides out a Redis restart: calls are held, then checked and counted once.

Before, a model call that found Redis down failed its node, and the run went to the dead
letters although nothing was wrong with it; the fault test of a whole deployment
(test_restarts) found five of six tasks failed that way.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from service.budget import Grant, Pool
from service.budget_redis import BudgetUnavailable, RedisLedger
from service.rate_limits import redis_client
from tests.integration.faults.services import RedisServer

ASK = {"prompt": 100, "want": 300, "n": 1, "floor": 64, "ttl_s": 60.0, "role": "coder"}


def ledger_on(server: RedisServer, wait_s: float) -> RedisLedger:
    return RedisLedger(redis_client(server.url), f"test-outage-{uuid.uuid4().hex[:8]}", wait_s)


async def test_a_call_made_during_a_restart_is_held_then_counted_once(
    redis_srv: RedisServer,
) -> None:
    ledger = ledger_on(redis_srv, wait_s=60.0)
    pool = Pool("task:outage", 10_000)
    try:
        await asyncio.to_thread(redis_srv.stop)
        held = asyncio.create_task(ledger.reserve([pool], rid="call-1", **ASK))  # type: ignore[arg-type]
        await asyncio.sleep(3.0)
        assert not held.done(), "the reservation neither waited for Redis nor was refused"
        await asyncio.to_thread(redis_srv.start)
        completion, blocking = await asyncio.wait_for(held, 30)
        assert (completion, blocking) == (300, 0)

        grant = Grant("call-1", (pool,), prompt=100, completion=completion, n=1, role="coder")
        await ledger.settle(grant, tokens=250, steps=1)
        await ledger.settle(grant, tokens=250, steps=1)  # a retry after a lost reply
        assert (await ledger.snapshot(pool)).spent == 250
    finally:
        if not redis_srv.answers():
            redis_srv.start()
        await ledger.redis.aclose()


async def test_past_the_wait_a_call_is_refused_and_a_settle_leaves_its_reservation(
    redis_srv: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = ledger_on(redis_srv, wait_s=1.0)
    pool = Pool("task:outage", 10_000)
    try:
        completion, _ = await ledger.reserve([pool], rid="call-1", **ASK)  # type: ignore[arg-type]
        grant = Grant("call-1", (pool,), prompt=100, completion=completion, n=1, role="coder")
        await asyncio.to_thread(redis_srv.stop)
        with pytest.raises(BudgetUnavailable, match="Redis unreachable"):
            await ledger.reserve([pool], rid="call-2", **ASK)  # type: ignore[arg-type]
        with caplog.at_level(logging.WARNING, logger="service.budget_redis"):
            await ledger.settle(grant, tokens=250, steps=1)  # the call was made: no raise
        assert "the reservation stands" in caplog.text
        await asyncio.to_thread(redis_srv.start)
        assert (await ledger.snapshot(pool)).spent == 400  # the reservation still counts
    finally:
        if not redis_srv.answers():
            redis_srv.start()
        await ledger.redis.aclose()
