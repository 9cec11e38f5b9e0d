"""The Redis ledger: the same arithmetic as in-process, atomic across instances, expiring.

Two `RedisLedger`s on two connections stand for two server instances sharing one Redis.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from service.budget import Grant, Ledger, MemoryLedger, Pool
from service.budget_redis import RedisLedger
from service.quotas import quota_for, quota_refusal, tenant_pools
from service.rate_limits import redis_client
from service.settings import Settings

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"test-budget-{uuid.uuid4().hex[:8]}"
    yield name
    client = Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(f"{name}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def instances(prefix: str) -> AsyncIterator[tuple[RedisLedger, RedisLedger]]:
    first, second = redis_client(REDIS_URL), redis_client(REDIS_URL)
    yield RedisLedger(first, prefix), RedisLedger(second, prefix)
    await first.aclose()
    await second.aclose()


async def reserve(ledger: Ledger, pools: list[Pool], rid: str, **kw: object) -> tuple[int, int]:
    args: dict[str, object] = {
        "rid": rid,
        "prompt": 100,
        "want": 300,
        "n": 1,
        "floor": 64,
        "ttl_s": 60.0,
        "role": "coder",
    }
    args.update(kw)
    return await ledger.reserve(pools, **args)  # type: ignore[arg-type]


async def scenario(ledger: Ledger, task: Pool, steps: Pool) -> list[object]:
    """A run of reserve/settle steps whose answers both ledgers must agree on."""
    seen: list[object] = []
    seen.append(await reserve(ledger, [task, steps], "a", want=500))
    seen.append(await reserve(ledger, [task, steps], "b", want=500))
    seen.append(await reserve(ledger, [task, steps], "c"))
    await ledger.settle(Grant("a", (task, steps), 100, 500, 1, "coder"), tokens=220, steps=1)
    seen.append(await reserve(ledger, [task, steps], "d", n=3, role="tester"))
    seen.append(await reserve(ledger, [task, steps], "e"))
    seen.append(await reserve(ledger, [task], "f", role_free=150))  # the role's cap
    snap = await ledger.snapshot(task)
    seen.append((snap.spent, snap.by_role, sorted(snap.busy)))
    seen.append((await ledger.snapshot(steps)).spent)
    return seen


async def test_redis_and_in_process_ledgers_agree(
    instances: tuple[RedisLedger, RedisLedger],
) -> None:
    task = Pool("task:agree", 1000, local=True)
    steps = Pool("tenant:t:steps:hour:1", 4, "steps")
    in_redis = await scenario(instances[0], task, steps)
    in_process = await scenario(MemoryLedger(), Pool("task:agree-mem", 1000, local=True), steps)
    assert in_redis == in_process
    assert in_redis[:3] == [(500, 0), (300, 0), (0, 1)]
    assert in_redis[5] == (0, -1)


async def test_two_instances_never_reserve_past_the_limit_together(
    instances: tuple[RedisLedger, RedisLedger],
) -> None:
    task = Pool(f"task:{uuid.uuid4().hex}", 5_000, local=True)
    calls = [reserve(instances[i % 2], [task], f"r{i}", prompt=50, want=200) for i in range(60)]
    results = await asyncio.gather(*calls)
    granted = [room for room, blocker in results if not blocker]
    assert sum(50 + room for room in granted) <= 5_000
    assert (await instances[1].snapshot(task)).spent == sum(50 + room for room in granted)
    assert len(granted) < 60  # the rest were refused, not sent


async def test_a_crashed_instances_reservation_expires(
    instances: tuple[RedisLedger, RedisLedger],
) -> None:
    task = Pool("task:crash", 1000, local=True)
    assert await reserve(instances[0], [task], "lost", want=880, ttl_s=1.0) == (880, 0)
    assert await reserve(instances[1], [task], "blocked") == (0, 1)
    await asyncio.sleep(1.2)
    assert await reserve(instances[1], [task], "resumed") == (300, 0)


async def test_tenant_quota_is_one_number_across_instances(
    instances: tuple[RedisLedger, RedisLedger], prefix: str
) -> None:
    settings = Settings(redis_prefix=prefix, quota_tokens_per_hour=1000)
    pools = tenant_pools(quota_for(settings, "acme"), "acme", 1_000_000.0)
    assert [p.kind for p in pools] == ["tokens"]
    await reserve(instances[0], pools, "one", want=500)  # 600 on instance one
    assert await reserve(instances[1], pools, "two", want=500) == (300, 0)  # what is left
    assert await reserve(instances[0], pools, "three") == (0, 1)


async def test_admission_answers_429_until_the_window_frees_and_403_without_quota(
    instances: tuple[RedisLedger, RedisLedger], prefix: str
) -> None:
    settings = Settings(
        redis_prefix=prefix,
        quota_steps_per_hour=2,
        tenant_limits={"blocked": {"steps_per_hour": 0}, "vip": {"steps_per_hour": -1}},
    )
    pools = tenant_pools(quota_for(settings, "acme"), "acme", time.time())
    assert await quota_refusal(settings, "acme", ledger=instances[1]) is None
    await reserve(instances[0], pools, "a")
    await reserve(instances[0], pools, "b")
    refusal = await quota_refusal(settings, "acme", ledger=instances[1])
    assert refusal is not None and refusal.status == 429
    assert "step quota for this hour (2 steps) is spent" in refusal.reason
    assert 1 <= refusal.retry_after_s <= 3600
    blocked = await quota_refusal(settings, "blocked", ledger=instances[1])
    assert blocked is not None and blocked.status == 403
    assert await quota_refusal(settings, "vip", ledger=instances[1]) is None
