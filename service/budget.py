"""Token ledgers that a model call reserves its worst case in before it is sent.

A *pool* is one limit a call must fit: the task's token budget, a tenant's tokens or steps in
the current hour or day. A reservation takes `prompt + n × completion` tokens (a step pool:
`n` steps) from every pool at once, or from none: when the tightest pool leaves fewer than
`floor` completion tokens per choice the call is refused, otherwise its completion limit is
shortened to what fits. After the call the actual usage is settled and the rest released, so
what a pool has settled never exceeds its limit unless a model bills more than its reservation
(a prompt counted low), which the settle reports as an overrun.

Where the pools live: Redis when configured (one Lua script reserves atomically across the
pools, so every instance and every `Send` branch of a task draw from the same numbers;
`service.budget_redis`), else this process. A reservation carries an expiry
(`budget_reservation_ttl_s`), so one left by a crashed process stops counting and a resumed
task is not starved.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "Grant",
    "Ledger",
    "MemoryLedger",
    "Pool",
    "Snapshot",
    "completion_fit",
    "memory_ledgers",
    "task_pool",
]

UNLIMITED = -1


@dataclass(frozen=True)
class Pool:
    """One limit: its key, its size (`UNLIMITED` for none) and what it counts."""

    key: str
    limit: int
    kind: Literal["tokens", "steps"] = "tokens"
    ttl_s: int = 7 * 86400
    """How long the pool's record outlives its last use (a window's length and some)."""
    local: bool = False
    """In-process only: kept by the ledger's own store, not the process-wide one."""


@dataclass(frozen=True)
class Grant:
    """A reservation that fitted: `completion` tokens per choice at most."""

    rid: str
    pools: tuple[Pool, ...]
    prompt: int
    completion: int
    n: int
    role: str

    @property
    def tokens(self) -> int:
        """The worst case reserved in every token pool."""
        return self.prompt + self.n * self.completion


@dataclass(frozen=True)
class Snapshot:
    """A pool's spending: settled plus live reservations, per role, and who is in flight."""

    spent: int = 0
    by_role: dict[str, int] = field(default_factory=dict)
    busy: frozenset[str] = frozenset()


def completion_fit(prompt: int, want: int, n: int, free: int) -> int:
    """Completion tokens per choice that fit in `free` tokens after the prompt (≤ `want`)."""
    return min(want, (free - prompt) // max(n, 1))


class Ledger:
    """Reserve, settle and read pools; `reserve` answers (completion, 0) or (0, blocking pool).

    The blocking pool is 1-based into `pools`; -1 is the role's own cap (`role_free`).
    """

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
        """Reserve in every pool or none."""
        raise NotImplementedError

    async def settle(self, grant: Grant, *, tokens: int, steps: int) -> None:
        """Replace the grant's reservation by what the call used."""
        raise NotImplementedError

    async def snapshot(self, pool: Pool) -> Snapshot:
        """What `pool` has spent and reserved, by role."""
        raise NotImplementedError


@dataclass
class _Held:
    settled: int = 0
    reserved: dict[str, tuple[int, float, str]] = field(default_factory=dict)
    roles: dict[str, int] = field(default_factory=dict)
    expires: float = math.inf
    """When the record is forgotten, as Redis expires the key (its last use + the pool's TTL)."""

    def live(self, now: float) -> int:
        self.reserved = {k: v for k, v in self.reserved.items() if v[1] >= now}
        return self.settled + sum(amount for amount, _, _ in self.reserved.values())


PRUNE_OVER = 10_000
"""Records an in-process store holds before expired ones are dropped."""
_PROCESS: dict[str, _Held] = {}
"""The process's pools that are not `local` (a tenant's windows): one set per process."""


_LEDGERS: weakref.WeakSet[MemoryLedger] = weakref.WeakSet()
"""The process's in-process ledgers (one per compiled team), for a task's report."""


class MemoryLedger(Ledger):
    """Pools in this process: `local` ones in its own store, the others process-wide."""

    def __init__(self) -> None:
        self._own: dict[str, _Held] = {}
        self._shared = _PROCESS
        _LEDGERS.add(self)

    def _held(self, pool: Pool) -> _Held:
        store = self._own if pool.local else self._shared
        held = store.get(pool.key)
        if held is None or held.expires < time.time():
            held = store[pool.key] = _Held()
        return held

    def _touch(self, pools: Sequence[Pool], now: float) -> None:
        """Extend the pools' records; past `PRUNE_OVER` of them, forget the expired ones.

        A long-lived server sees many tasks and windows; Redis expires them by itself.
        """
        for pool in pools:
            self._held(pool).expires = now + pool.ttl_s
        for store in (self._own, self._shared):
            if len(store) > PRUNE_OVER:
                for key in [k for k, held in store.items() if held.expires < now]:
                    del store[key]

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
        """The Lua script's arithmetic, with no await inside: atomic on the event loop."""
        now = time.time()
        room = want
        if role_free != UNLIMITED:
            room = completion_fit(prompt, room, n, role_free)
            if room < floor:
                return 0, -1
        for index, pool in enumerate(pools, start=1):
            if pool.limit == UNLIMITED:
                continue
            free = pool.limit - self._held(pool).live(now)
            if pool.kind == "steps":
                if free < n:
                    return 0, index
                continue
            room = completion_fit(prompt, room, n, free)
            if room < floor:
                return 0, index
        for pool in pools:
            amount = n if pool.kind == "steps" else prompt + n * room
            self._held(pool).reserved[rid] = (amount, now + ttl_s, role)
        self._touch(pools, now)
        return room, 0

    async def settle(self, grant: Grant, *, tokens: int, steps: int) -> None:
        """Drop the reservation, add the usage (per role too)."""
        for pool in grant.pools:
            held = self._held(pool)
            held.reserved.pop(grant.rid, None)
            amount = steps if pool.kind == "steps" else tokens
            held.settled += amount
            held.roles[grant.role] = held.roles.get(grant.role, 0) + amount
        self._touch(grant.pools, time.time())

    async def snapshot(self, pool: Pool) -> Snapshot:
        """Settled and live reservations of `pool`."""
        held = self._held(pool)
        spent = held.live(time.time())
        by_role = dict(held.roles)
        for amount, _, role in held.reserved.values():
            by_role[role] = by_role.get(role, 0) + amount
        busy = frozenset(role for _, _, role in held.reserved.values())
        return Snapshot(spent, by_role, busy)


def memory_ledgers() -> list[MemoryLedger]:
    """The in-process ledgers alive now (one per compiled team), for reading spending."""
    return list(_LEDGERS)


def task_pool(task_id: str, limit: int = UNLIMITED, ttl_s: int = 7 * 86400) -> Pool:
    """The pool of a task's own budget (kept by its team's ledger when in-process)."""
    return Pool(f"task:{task_id}", limit, ttl_s=ttl_s, local=True)
