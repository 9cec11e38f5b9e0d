"""Budget pools in Redis: one Lua script reserves across pools, shared by every instance.

Split from `service.budget` (the pools, the reservation rules and the in-process ledger) because
Redis brings its own concerns: atomic scripts, and waiting out an outage. A Redis restart must
not fail the runs in flight (their work would go to the dead letters) nor let calls through
unaccounted (budgets are hard limits), so reserving and settling wait for Redis to come back
for up to `budget_outage_wait_s`, and a settle that still cannot be written leaves the
reservation counting until it expires. A settle is idempotent (it applies only while its
reservation is held), so a retry after a lost reply does not count a call twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.budget import UNLIMITED, Grant, Ledger, Pool, Snapshot, memory_ledgers, task_pool
from service.rate_limits import get_limit_store
from service.settings import Settings

__all__ = ["BudgetUnavailable", "RedisLedger", "redis_ledger", "role_spending"]

log = logging.getLogger(__name__)

OUTAGE_FIRST_DELAY_S = 0.25
OUTAGE_MAX_DELAY_S = 5.0


class BudgetUnavailable(RuntimeError):
    """Redis stayed unreachable past the wait: the call can be neither checked nor recorded."""


def redis_ledger(redis: Redis, settings: Settings) -> RedisLedger:
    """The shared ledger with the operator's outage wait."""
    return RedisLedger(redis, settings.redis_prefix, settings.budget_outage_wait_s)


_USED_LUA = """
local function used_of(key, now)
  local used = 0
  local all = redis.call('HGETALL', key)
  for j = 1, #all, 2 do
    local f, v = all[j], all[j + 1]
    if f == 'settled' then
      used = used + tonumber(v)
    elseif string.sub(f, 1, 2) == 'r:' then
      local amount, expiry = string.match(v, '^(%d+)|([%d%.]+)|')
      if tonumber(expiry) < now then
        redis.call('HDEL', key, f)
      else
        used = used + tonumber(amount)
      end
    end
  end
  return used
end
"""

_RESERVE_LUA = (
    _USED_LUA
    + """
local now, rid = tonumber(ARGV[1]), ARGV[2]
local prompt, want, n = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local floor_, ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local role, role_free = ARGV[8], tonumber(ARGV[9])
local room = want
local function fit(free)
  return math.min(room, math.floor((free - prompt) / n))
end
if role_free >= 0 then
  room = fit(role_free)
  if room < floor_ then return {0, -1} end
end
for i, key in ipairs(KEYS) do
  local limit, kind = tonumber(ARGV[i * 3 + 7]), ARGV[i * 3 + 8]
  if limit >= 0 then
    local free = limit - used_of(key, now)
    if kind == 'steps' then
      if free < n then return {0, i} end
    else
      room = fit(free)
      if room < floor_ then return {0, i} end
    end
  end
end
for i, key in ipairs(KEYS) do
  local kind, key_ttl = ARGV[i * 3 + 8], tonumber(ARGV[i * 3 + 9])
  local amount = n
  if kind ~= 'steps' then amount = prompt + n * room end
  redis.call('HSET', key, 'r:' .. rid, amount .. '|' .. (now + ttl) .. '|' .. role)
  redis.call('EXPIRE', key, key_ttl)
end
return {room, 0}
"""
)

_SETTLE_LUA = """
local rid, tokens, steps, role = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
for i, key in ipairs(KEYS) do
  local kind, key_ttl = ARGV[3 + i * 2], tonumber(ARGV[4 + i * 2])
  local amount = tokens
  if kind == 'steps' then amount = steps end
  if redis.call('HDEL', key, 'r:' .. rid) == 1 then
    redis.call('HINCRBY', key, 'settled', amount)
    redis.call('HINCRBY', key, 'role:' .. role, amount)
  end
  redis.call('EXPIRE', key, key_ttl)
end
return 1
"""


class RedisLedger(Ledger):
    """Pools in Redis under `{prefix}:budget:…`, shared by every instance."""

    def __init__(self, redis: Redis, prefix: str, outage_wait_s: float = 0.0) -> None:
        self.redis = redis
        self.prefix = prefix
        self.outage_wait_s = outage_wait_s
        """How long a reserve or settle waits for an unreachable Redis to come back."""

    def _key(self, pool: Pool) -> str:
        return f"{self.prefix}:budget:{pool.key}"

    async def reserve(
        self,
        pools: Sequence[Pool],
        *,
        rid: str,
        prompt: int,
        want: int,
        n: int,
        floor: int,
        ttl_s: float,
        role: str,
        role_free: int = UNLIMITED,
    ) -> tuple[int, int]:
        """One atomic script over all the pools."""
        per_pool: list[Any] = []
        for pool in pools:
            per_pool += [pool.limit, pool.kind, pool.ttl_s]
        result: Any = await self._through_outage(
            "reserve",
            lambda: self.redis.eval(
                _RESERVE_LUA,
                len(pools),
                *(self._key(p) for p in pools),
                time.time(),
                rid,
                prompt,
                want,
                max(n, 1),
                floor,
                ttl_s,
                role,
                role_free,
                *per_pool,
            ),
        )
        return int(result[0]), int(result[1])

    async def settle(self, grant: Grant, *, tokens: int, steps: int) -> None:
        """One atomic script: drop the reservation, add the usage."""
        per_pool: list[Any] = []
        for pool in grant.pools:
            per_pool += [pool.kind, pool.ttl_s]
        try:
            await self._through_outage(
                "settle",
                lambda: self.redis.eval(
                    _SETTLE_LUA,
                    len(grant.pools),
                    *(self._key(p) for p in grant.pools),
                    grant.rid,
                    tokens,
                    steps,
                    grant.role,
                    *per_pool,
                ),
            )
        except BudgetUnavailable as error:
            # The call was made; failing now would only repeat it. Its reservation keeps
            # counting until it expires, so the pools stay on the safe side.
            log.warning("%s; the reservation stands until it expires", error)

    async def _through_outage(self, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run `call`, retrying connection errors with backoff for up to `outage_wait_s`.

        The client's own retries cover a blip; a restart takes longer, and a model call that
        cannot be accounted for is better held than failed (its run would land in the dead
        letters) or sent unchecked (the budget is a hard limit).
        """
        deadline = time.monotonic() + self.outage_wait_s
        delay = OUTAGE_FIRST_DELAY_S
        while True:
            try:
                return await call()
            except (RedisConnectionError, RedisTimeoutError) as error:
                if time.monotonic() + delay > deadline:
                    raise BudgetUnavailable(
                        f"budget {what}: Redis unreachable for {self.outage_wait_s:.0f} s ({error})"
                    ) from error
                await asyncio.sleep(delay)
                delay = min(delay * 2, OUTAGE_MAX_DELAY_S)

    async def snapshot(self, pool: Pool) -> Snapshot:
        """Settled and live reservations of `pool` (expired ones ignored)."""
        raw: dict[Any, Any] = await self.redis.hgetall(self._key(pool))
        now = time.time()
        spent, by_role, busy = 0, dict[str, int](), set[str]()
        for name, value in ((_text(k), _text(v)) for k, v in raw.items()):
            if name == "settled":
                spent += int(value)
            elif name.startswith("role:"):
                role = name.removeprefix("role:")
                by_role[role] = by_role.get(role, 0) + int(value)
            elif name.startswith("r:"):
                amount, expiry, role = value.split("|", 2)
                if float(expiry) >= now:
                    spent += int(amount)
                    by_role[role] = by_role.get(role, 0) + int(amount)
                    busy.add(role)
        return Snapshot(spent, by_role, frozenset(busy))


def _text(value: bytes | str) -> str:
    """A Redis reply as text (a client made with `decode_responses` gives it so already)."""
    return value.decode() if isinstance(value, bytes) else value


async def role_spending(task_id: str, settings: Settings) -> dict[str, int]:
    """Tokens per role of a task, for its report: from Redis, else this process's teams.

    In-process, each compiled team keeps its own task ledger, so they are added up.
    """
    store = get_limit_store()
    if settings.redis_url and store.redis is not None:
        ledgers: list[Ledger] = [redis_ledger(store.redis, settings)]
    else:
        ledgers = list(memory_ledgers())
    total: dict[str, int] = {}
    for ledger in ledgers:
        for role, spent in (await ledger.snapshot(task_pool(task_id))).by_role.items():
            total[role] = total.get(role, 0) + spent
    return total
