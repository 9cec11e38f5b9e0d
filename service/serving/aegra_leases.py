"""One lease heartbeat per Aegra instance instead of one per running run.

Aegra 0.11 renews each running run's lease with an UPDATE of its own every
`HEARTBEAT_INTERVAL_SECONDS`, each through its SQLAlchemy pool. At a few hundred runs per
instance those writes queue behind the pool, leases expire while their runs are healthy, and the
runs are cancelled and re-run elsewhere (`bench/aegra`, `docs/benchmarks.md`). `LeaseBatcher`
takes the place of Aegra's per-run heartbeat coroutine: each run registers, and one loop per
instance renews every registered lease in one UPDATE per interval (in chunks), then cancels
the runs whose lease was taken, exactly as Aegra's loop does for one run. Lease length, interval
and the reaper stay Aegra's, so crash recovery takes as long as before.

`ReaperGuard` covers what leases cannot tell apart: a database outage longer than the lease
expires the leases of every running run at once, although their instances are alive and keep
running them. Aegra's reaper, first to reach the database when it is back, would hand them all
to other workers, and each run would execute twice at the same time, forking its thread's
checkpoints (a delivered task then reads as never finished). So after its database access
failed or stalled, the reaper only probes it (read-only) until it has answered promptly for one
lease period and one heartbeat: live instances renew their leases meanwhile, and only the runs
of an instance that really died are recovered, that much later.

The batcher renews through an engine of its own (one connection, same URL as Aegra's), so its
UPDATE never waits behind run work in Aegra's pool: past ~2,000 running runs per instance
that wait outlasted the lease and healthy runs lapsed. `own_connection=False` keeps the shared
pool (`STRATEGOS_AEGRA_LEASE_OWN_CONNECTION=false`), for comparison in `bench/aegra`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import TYPE_CHECKING, Any

from tools.telemetry import LEASES_LOST

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

log = logging.getLogger(__name__)

CHUNK = 500
"""Runs renewed per statement: bounds the statement's size and its lock time."""

RunKey = tuple[str, str]
"""(run_id, worker_name): a lease is ours while the run's `claimed_by` names our worker."""


@dataclass
class _Held:
    """A run whose lease we keep: its job (cancelled on loss) and the event ending its hold."""

    job_task: asyncio.Task[None] | None
    lost: asyncio.Event = field(default_factory=asyncio.Event)


class LeaseBatcher:
    """Renews the leases of every run this process executes, in one statement per interval."""

    def __init__(self, executor: ModuleType, *, own_connection: bool = True) -> None:
        self._executor = executor
        self._runs: dict[RunKey, _Held] = {}
        self._renewer: asyncio.Task[None] | None = None
        self.own_connection = own_connection
        self._engine: AsyncEngine | None = None
        self._maker: async_sessionmaker[AsyncSession] | None = None

    async def hold(
        self, run_id: str, worker_name: str, *, job_task: asyncio.Task[None] | None = None
    ) -> None:
        """Aegra's `_heartbeat_loop` contract: keep the lease until cancelled, or cancel the job.

        Returns when the lease was lost (after cancelling `job_task`), like Aegra's loop.
        """
        key = (run_id, worker_name)
        held = _Held(job_task)
        self._runs[key] = held
        self._start()
        try:
            await held.lost.wait()
        finally:
            if self._runs.get(key) is held:
                del self._runs[key]

    def _start(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_forever(), name="lease-batcher")

    async def _renew_forever(self) -> None:
        interval = float(self._executor.settings.worker.HEARTBEAT_INTERVAL_SECONDS)
        while self._runs:
            await asyncio.sleep(interval)
            try:
                await self.renew_once()
            except Exception:  # a failed round is retried next interval, as Aegra does
                log.warning("batched lease renewal failed for %d runs", len(self._runs))

    async def renew_once(self) -> set[RunKey]:
        """Renew every registered lease; cancel the jobs whose lease is gone. The lost keys."""
        from sqlalchemy import tuple_, update

        batch = dict(self._runs)
        if not batch:
            return set()
        orm = self._executor.RunORM
        duration = float(self._executor.settings.worker.LEASE_DURATION_SECONDS)
        expiry = datetime.now(UTC) + timedelta(seconds=duration)
        keys = list(batch)
        renewed: set[RunKey] = set()
        async with self._session_maker()() as session:
            for start in range(0, len(keys), CHUNK):
                chunk = keys[start : start + CHUNK]
                result = await session.execute(
                    update(orm)
                    .where(tuple_(orm.run_id, orm.claimed_by).in_(chunk))
                    .values(lease_expires_at=expiry)
                    .returning(orm.run_id, orm.claimed_by)
                )
                renewed.update((str(r), str(w)) for r, w in result.all())
            await session.commit()
        lost = {key for key in keys if key not in renewed and self._runs.get(key) is batch[key]}
        for key in lost:
            self._lose(key, batch[key])
        return lost

    def _session_maker(self) -> async_sessionmaker[AsyncSession]:
        """Aegra's shared session maker, or one on our own engine (made on first use)."""
        shared: async_sessionmaker[AsyncSession] = self._executor._get_session_maker()
        if not self.own_connection:
            return shared
        if self._maker is None:
            from sqlalchemy.ext.asyncio import async_sessionmaker

            self._engine = own_engine(shared.kw["bind"])
            self._maker = async_sessionmaker(self._engine, expire_on_commit=False)
        return self._maker

    async def aclose(self) -> None:
        """Stop the renewal loop and close our own connection (at the end of the lifespan)."""
        renewer, self._renewer = self._renewer, None
        if renewer is not None and not renewer.done():
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        engine, self._engine, self._maker = self._engine, None, None
        if engine is not None:
            await engine.dispose()

    def _lose(self, key: RunKey, held: _Held) -> None:
        run_id, worker = key
        log.warning("lease of run %s lost by %s: cancelling it there", run_id, worker)
        LEASES_LOST.inc()
        if held.job_task is not None and not held.job_task.done():
            self._executor._lease_loss_cancellations.add(run_id)
            held.job_task.cancel()
        held.lost.set()


def own_engine(shared: AsyncEngine) -> AsyncEngine:
    """A one-connection engine on the shared engine's database, checked before each use."""
    from sqlalchemy.ext.asyncio import create_async_engine

    connect_args = (
        {"prepared_statement_cache_size": 0} if shared.dialect.driver == "asyncpg" else {}
    )
    return create_async_engine(
        shared.url, pool_size=1, max_overflow=0, pool_pre_ping=True, connect_args=connect_args
    )


HeartbeatLoop = Callable[..., Coroutine[Any, Any, None]]

_INSTALLED: LeaseBatcher | None = None


def install(executor: ModuleType, *, own_connection: bool = True) -> LeaseBatcher | None:
    """Swap Aegra's per-run heartbeat for a batcher; None (and a warning) if Aegra changed.

    `executor` is `aegra_api.services.worker_executor`, which looks `_heartbeat_loop` up at
    call time. `own_connection`: renew through the batcher's own connection (see above).
    """
    global _INSTALLED
    current: HeartbeatLoop | None = getattr(executor, "_heartbeat_loop", None)
    needed = ("RunORM", "settings", "_get_session_maker", "_lease_loss_cancellations")
    shape = ["run_id", "worker_name", "job_task"]
    if (
        current is None
        or list(inspect.signature(current).parameters) != shape
        or not all(hasattr(executor, name) for name in needed)
    ):
        log.warning("Aegra's heartbeat is not the expected one; per-run heartbeats stay")
        return None
    batcher = LeaseBatcher(executor, own_connection=own_connection)
    setattr(executor, "_heartbeat_loop", batcher.hold)  # noqa: B010 - a module's global
    _INSTALLED = batcher
    return batcher


async def close_lease_batcher() -> None:
    """Stop the installed batcher's loop and close its connection, if one was installed."""
    if _INSTALLED is not None:
        await _INSTALLED.aclose()


class ReaperGuard:
    """Aegra's `LeaseReaper._reap`, held back until the database has answered for `quiet_s`.

    While the database is unreachable every round fails as before. Once a read-only probe
    (Aegra's own query for expired leases) succeeds again, the guard waits `quiet_s` (a lease
    and a heartbeat) before the next reap, so every live instance has renewed its leases first.
    A probe slower than `stall_s` counts as an outage too: the database (or this event loop)
    may have been away for long enough that live leases lapsed meanwhile.
    """

    def __init__(
        self,
        reap: Callable[[], Awaitable[None]],
        probe: Callable[[], Awaitable[object]],
        quiet_s: float,
        stall_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reap = reap
        self._probe = probe
        self.quiet_s = quiet_s
        self.stall_s = stall_s
        self._clock = clock
        self._healthy_since: float | None = float("-inf")

    async def reap(self) -> None:
        """Probe the database; reap once it has been answering promptly for `quiet_s`."""
        try:
            started = self._clock()
            await self._probe()
            now = self._clock()
            if self._healthy_since is None or now - started > self.stall_s:
                self._healthy_since = now
            if now - self._healthy_since >= self.quiet_s:
                await self._reap()
        except Exception:
            self._healthy_since = None  # an outage: leases may expire without a dead instance
            raise


def guard_reaper(reaper_module: ModuleType) -> ReaperGuard | None:
    """Install `ReaperGuard` on Aegra's reaper; None (and a warning) if Aegra changed.

    `reaper_module` is `aegra_api.services.lease_reaper`, whose loop calls `self._reap()`.
    """
    reaper = getattr(reaper_module, "lease_reaper", None)
    reap = getattr(reaper, "_reap", None)
    probe = getattr(reaper, "_find_recoverable", None)
    worker = getattr(getattr(reaper_module, "settings", None), "worker", None)
    if reap is None or probe is None or worker is None or inspect.signature(reap).parameters:
        log.warning("Aegra's lease reaper is not the expected one; it reaps after outages")
        return None
    lease_s = float(worker.LEASE_DURATION_SECONDS)
    heartbeat_s = float(worker.HEARTBEAT_INTERVAL_SECONDS)
    guard = ReaperGuard(reap, probe, lease_s + heartbeat_s, max(lease_s - heartbeat_s, 1.0))
    setattr(reaper, "_reap", guard.reap)  # noqa: B010 - an instance attribute, read per call
    return guard
