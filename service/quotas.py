"""Per-tenant token and step quotas per hour and per day, and whether a new task may start.

A *step* is one model call (`n` sampled choices are `n` calls, as the usage counts them): the
unit the platform pays for, counted at the same seam as the tokens, whichever node or
sub-task makes it. Windows are fixed (the clock hour and the UTC day), kept as pools of the
budget ledger (`service.budget`) under keys that name the window, so a new window starts
empty and an old one expires; in Redis every instance enforces the same numbers. Tasks that
agents create draw from the same tenant pools as their parent, so forking sub-tasks cannot
multiply a tenant's spending.

Operator settings: `STRATEGOS_QUOTA_{TOKENS,STEPS}_PER_{HOUR,DAY}` (unset: unlimited; 0: the
tenant may not run tasks at all), overridden per tenant in `STRATEGOS_TENANT_LIMITS` with
`tokens_per_hour`, `tokens_per_day`, `steps_per_hour`, `steps_per_day` (-1: unlimited).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

from service.budget import UNLIMITED, Ledger, MemoryLedger, Pool
from service.budget_redis import redis_ledger
from service.rate_limits import get_limit_store
from service.settings import Settings

__all__ = ["QuotaRefusal", "TenantQuota", "quota_for", "quota_refusal", "shared_ledger"]

Kind = Literal["tokens", "steps"]
WINDOWS: dict[str, int] = {"hour": 3600, "day": 86400}


@dataclass(frozen=True)
class TenantQuota:
    """A tenant's limits per window; `UNLIMITED` where none is set."""

    tokens_per_hour: int = UNLIMITED
    tokens_per_day: int = UNLIMITED
    steps_per_hour: int = UNLIMITED
    steps_per_day: int = UNLIMITED

    def limit(self, kind: Kind, window: str) -> int:
        """The limit of `kind` in `window` ("hour" or "day")."""
        return int(getattr(self, f"{kind}_per_{window}"))


@dataclass(frozen=True)
class QuotaRefusal:
    """Why a tenant may not spend now: 403 (no quota at all) or 429 until the window frees."""

    status: Literal[403, 429]
    reason: str
    retry_after_s: int = 0


def _setting(value: int | None) -> int:
    return UNLIMITED if value is None else value


def quota_for(settings: Settings, tenant: str) -> TenantQuota:
    """The deployment's quotas, overridden by the tenant's entries in `tenant_limits`."""
    override = settings.tenant_limits.get(tenant, {})
    values = {
        name: int(override[name])
        if name in override
        else _setting(getattr(settings, f"quota_{name}"))
        for name in ("tokens_per_hour", "tokens_per_day", "steps_per_hour", "steps_per_day")
    }
    return TenantQuota(**{k: UNLIMITED if v < 0 else v for k, v in values.items()})


def window_end(window: str, now: float) -> float:
    """When the fixed window holding `now` ends."""
    length = WINDOWS[window]
    return (math.floor(now / length) + 1) * length


def tenant_pools(quota: TenantQuota, tenant: str, now: float) -> list[Pool]:
    """The tenant's pools for the windows holding `now` (limited ones only)."""
    pools = []
    for window, length in WINDOWS.items():
        index = math.floor(now / length)
        for kind in ("tokens", "steps"):
            limit = quota.limit(kind, window)
            if limit != UNLIMITED:
                key = f"tenant:{tenant}:{kind}:{window}:{index}"
                pools.append(Pool(key, limit, kind, ttl_s=length + 60))
    return pools


def shared_ledger(settings: Settings) -> Ledger:
    """The ledger every instance shares (Redis), else this process's shared store."""
    store = get_limit_store()
    if store.redis is not None:
        return redis_ledger(store.redis, settings)
    return MemoryLedger()


def describe(pool: Pool, tenant: str) -> str:
    """A pool's limit in words: "tenant acme's token quota for this hour (5000 tokens)"."""
    unit = "token" if pool.kind == "tokens" else "step"
    return f"tenant {tenant}'s {unit} quota for this {window_of(pool)} ({pool.limit} {pool.kind})"


def window_of(pool: Pool) -> str:
    """A tenant pool's window, "hour" or "day" (read from the right: a tenant may hold ':')."""
    return pool.key.rsplit(":", 2)[1]


async def quota_refusal(
    settings: Settings, tenant: str, *, floor: int = 1, ledger: Ledger | None = None
) -> QuotaRefusal | None:
    """Whether `tenant` may start a task now: None, or the refusal to answer.

    A token window counts as spent when fewer than `floor` tokens are left in it (no call
    could fit). Retry-After is the end of the latest window that is spent.
    """
    quota = quota_for(settings, tenant)
    if 0 in (
        quota.tokens_per_hour,
        quota.tokens_per_day,
        quota.steps_per_hour,
        quota.steps_per_day,
    ):
        return QuotaRefusal(403, f"tenant {tenant} has no model quota on this deployment")
    now = time.time()
    ledger = ledger or shared_ledger(settings)
    spent: list[tuple[Pool, float]] = []
    for pool in tenant_pools(quota, tenant, now):
        used = (await ledger.snapshot(pool)).spent
        need = 1 if pool.kind == "steps" else floor
        if pool.limit - used < need:
            spent.append((pool, window_end(window_of(pool), now)))
    if not spent:
        return None
    pool, until = max(spent, key=lambda item: item[1])
    wait = max(1, math.ceil(until - now))
    return QuotaRefusal(429, f"{describe(pool, tenant)} is spent; it frees in {wait} s", wait)
