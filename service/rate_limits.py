"""Per-tenant limits and load shedding for the task façade.

- **Rate limit**: a token bucket per tenant (`rate_limit_per_s` refill, `rate_limit_burst` size),
  kept in Redis by one Lua script so every server instance shares it; in-process when no Redis
  is configured (a single `langgraph dev`).
- **Active tasks**: counted by the caller from the server (threads busy or interrupted), under
  `lock(f"tenant:{tenant}")`, which is a Redis lock when Redis is configured, so two instances
  cannot both let the tenant's last free slot through.
- **Depth**: agent-created tasks carry their nesting depth; deeper than `max_task_depth` is
  refused, so a task that spawns tasks that spawn tasks cannot fork-bomb the deployment.
- **Backpressure**: two gauges in Redis shared by all instances — runs started and not yet
  finished (the server's backlog: a sorted set of run ids, entries older than an hour expire so
  a crashed instance cannot pin it) and the model endpoint's 429s in the last minute (the model
  client calls `record_model_429`). Over either threshold, new tasks are refused with 429 and
  `Retry-After` instead of queueing without bound.

Per-tenant overrides come from `STRATEGOS_TENANT_LIMITS` (JSON).

The Redis client rides out a Redis restart: a command that meets a dropped connection or a
refused connect is retried with jittered exponential backoff (`redis_client`, about 3 s in
all), and idle connections are checked before reuse. Longer than that, the command fails and the
task API answers 503 with Retry-After (`service.api.outage`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, Field
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.settings import Settings, get_settings
from service.sqlstore import LockBusy, NamedLocks

__all__ = [
    "Backpressure",
    "LockBusy",
    "LimitStore",
    "TenantLimits",
    "get_limit_store",
    "record_model_429",
    "redis_client",
]

RUN_MAX_AGE_S = 3600.0
"""A run still in the in-flight gauge after this long is assumed lost with its instance."""
REDIS_RETRIES = 6
"""Retries of a command that met a connection error: 0.1 s doubling to 1 s, ~3 s in all."""
REDIS_HEALTH_CHECK_S = 10
"""An idle connection is pinged before reuse after this long (a restart closed it)."""

_BUCKET_LUA = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then tokens = burst; ts = now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', key, math.ceil((burst / rate) * 1000) + 1000)
return {allowed, tostring(wait)}
"""


class TenantLimits(BaseModel):
    """The limits in force for one tenant."""

    rate_limit_per_s: float = Field(gt=0)
    rate_limit_burst: int = Field(ge=1)
    max_active_tasks: int = Field(ge=1)


def limits_for(settings: Settings, tenant: str) -> TenantLimits:
    """The deployment's defaults, overridden by `tenant_limits[tenant]` where given."""
    base: dict[str, Any] = {
        "rate_limit_per_s": settings.rate_limit_per_s,
        "rate_limit_burst": settings.rate_limit_burst,
        "max_active_tasks": settings.max_active_tasks,
    }
    base.update(settings.tenant_limits.get(tenant, {}))
    return TenantLimits.model_validate(base)


@dataclass(frozen=True)
class Backpressure:
    """Why new work is refused right now, and when to come back."""

    reason: str
    retry_after_s: int


class LoadProbe(Protocol):
    """Where the backpressure gauges come from (Redis, or a test's fake)."""

    async def queue_depth(self) -> int:
        """Runs started and not yet finished."""
        ...

    async def model_429_per_min(self) -> int:
        """Model-endpoint 429 answers in the last minute."""
        ...


class LimitStore:
    """Rate buckets and load gauges, in Redis when configured, else in this process."""

    def __init__(self, settings: Settings, redis: Redis | None) -> None:
        self.settings = settings
        self.redis = redis
        self.prefix = settings.redis_prefix
        self._buckets: dict[str, tuple[float, float]] = {}
        self._inflight: dict[str, float] = {}
        self._model_429: list[float] = []
        self._lock = asyncio.Lock()
        self._named = NamedLocks()

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def take(self, tenant: str, limits: TenantLimits) -> float:
        """Take one token for the tenant: 0 when allowed, else the seconds until one is there."""
        rate, burst = limits.rate_limit_per_s, float(limits.rate_limit_burst)
        now = time.time()
        if self.redis is not None:
            result: Any = await self.redis.eval(
                _BUCKET_LUA, 1, self._key("rate", tenant), rate, burst, now
            )
            allowed, wait = int(result[0]), float(result[1])
            return 0.0 if allowed else max(wait, 0.001)
        async with self._lock:
            tokens, ts = self._buckets.get(tenant, (burst, now))
            tokens = min(burst, tokens + max(0.0, now - ts) * rate)
            if tokens >= 1:
                self._buckets[tenant] = (tokens - 1, now)
                return 0.0
            self._buckets[tenant] = (tokens, now)
            return (1 - tokens) / rate

    @asynccontextmanager
    async def lock(self, name: str, *, hold_s: float, wait_s: float) -> AsyncIterator[None]:
        """Hold `name` across every instance sharing this Redis (else within this process).

        The Redis lock expires after `hold_s`, so a holder that crashed frees it; waiting longer
        than `wait_s` raises `LockBusy`.
        """
        if self.redis is None:
            async with self._named.hold(name, wait_s):
                yield
            return
        shared = self.redis.lock(
            self._key("lock", name), timeout=hold_s, blocking_timeout=wait_s, thread_local=False
        )
        if not await shared.acquire():
            raise LockBusy(name)
        try:
            yield
        finally:
            try:
                await shared.release()
            except LockError:  # it expired while held; someone else may own it now
                pass

    async def run_started(self, run_id: str) -> None:
        """Count a run into the in-flight gauge."""
        if self.redis is not None:
            await self.redis.zadd(self._key("inflight"), {run_id: time.time()})
        else:
            self._inflight[run_id] = time.time()

    async def run_finished(self, run_id: str) -> None:
        """Take a run out of the in-flight gauge."""
        if self.redis is not None:
            await self.redis.zrem(self._key("inflight"), run_id)
        else:
            self._inflight.pop(run_id, None)

    async def queue_depth(self) -> int:
        """Runs started within the last hour and not finished."""
        cutoff = time.time() - RUN_MAX_AGE_S
        if self.redis is not None:
            key = self._key("inflight")
            await self.redis.zremrangebyscore(key, "-inf", cutoff)
            return int(await self.redis.zcard(key))
        self._inflight = {k: v for k, v in self._inflight.items() if v >= cutoff}
        return len(self._inflight)

    async def record_model_429(self, count: int = 1) -> None:
        """The model endpoint answered 429 (called by the model client)."""
        now = time.time()
        if self.redis is not None:
            key = self._key("model429", str(int(now)))
            pipe = self.redis.pipeline()
            pipe.incrby(key, count)
            pipe.expire(key, 120)
            await pipe.execute()
        else:
            self._model_429.extend([now] * count)

    async def model_429_per_min(self) -> int:
        """Model-endpoint 429s over the last 60 one-second buckets."""
        now = time.time()
        if self.redis is not None:
            keys = [self._key("model429", str(int(now) - i)) for i in range(60)]
            values = await self.redis.mget(keys)
            return sum(int(v) for v in values if v is not None)
        self._model_429 = [t for t in self._model_429 if t > now - 60]
        return len(self._model_429)

    async def backpressure(self, probe: LoadProbe | None = None) -> Backpressure | None:
        """Whether new tasks must wait: queue depth or model 429 rate over its threshold."""
        probe = probe or self
        retry = self.settings.backpressure_retry_after_s
        depth = await probe.queue_depth()
        if depth >= self.settings.backpressure_max_queue:
            return Backpressure(f"{depth} runs are queued or running", retry)
        rate = await probe.model_429_per_min()
        if rate >= self.settings.backpressure_max_model_429_per_min:
            return Backpressure(
                f"the model endpoint throttled {rate} calls in the last minute", retry
            )
        return None

    async def close(self) -> None:
        """Close the Redis connection."""
        if self.redis is not None:
            await self.redis.aclose()


def retry_after(seconds: float) -> int:
    """A Retry-After header value: whole seconds, at least 1."""
    return max(1, math.ceil(seconds))


def redis_client(url: str) -> Redis:
    """A client for `url` that retries connection errors with backoff (a Redis restart)."""
    return Redis.from_url(
        url,
        retry=Retry(ExponentialWithJitterBackoff(cap=1.0, base=0.1), REDIS_RETRIES),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=REDIS_HEALTH_CHECK_S,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
    )


_LIMITS: dict[int, LimitStore] = {}


def get_limit_store() -> LimitStore:
    """The process's limit store for the running loop (a Redis client is bound to its loop)."""
    loop_id = id(asyncio.get_running_loop())
    if loop_id not in _LIMITS:
        settings = get_settings()
        redis = redis_client(settings.redis_url) if settings.redis_url else None
        _LIMITS[loop_id] = LimitStore(settings, redis)
    return _LIMITS[loop_id]


async def close_limit_stores() -> None:
    """Close the running loop's store (lifespan shutdown)."""
    store = _LIMITS.pop(id(asyncio.get_running_loop()), None)
    if store is not None:
        await store.close()


async def record_model_429(count: int = 1) -> None:
    """Hook for the model client: one more 429 from the model endpoint."""
    await get_limit_store().record_model_429(count)
