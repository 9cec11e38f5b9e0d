"""One lease heartbeat per Aegra instance instead of one per running run.

Aegra 0.11 renews each running run's lease with an UPDATE of its own every
`HEARTBEAT_INTERVAL_SECONDS`, each through its SQLAlchemy pool. At a few hundred runs per
instance those writes queue behind the pool, leases expire while their runs are healthy, and the
runs are cancelled and re-run elsewhere (`bench/aegra`, `docs/benchmarks.md`). `LeaseBatcher`
takes the place of Aegra's per-run heartbeat coroutine: each run registers, and one loop per
instance renews every registered lease in one UPDATE per interval (in chunks), then cancels
the runs whose lease was taken, exactly as Aegra's loop does for one run. Lease length, interval
and the reaper stay Aegra's, so crash recovery takes as long as before.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

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

    def __init__(self, executor: ModuleType) -> None:
        self._executor = executor
        self._runs: dict[RunKey, _Held] = {}
        self._renewer: asyncio.Task[None] | None = None

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
        maker = self._executor._get_session_maker()
        async with maker() as session:
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

    def _lose(self, key: RunKey, held: _Held) -> None:
        run_id, worker = key
        log.warning("lease of run %s lost by %s: cancelling it there", run_id, worker)
        if held.job_task is not None and not held.job_task.done():
            self._executor._lease_loss_cancellations.add(run_id)
            held.job_task.cancel()
        held.lost.set()


HeartbeatLoop = Callable[..., Coroutine[Any, Any, None]]


def install(executor: ModuleType) -> LeaseBatcher | None:
    """Swap Aegra's per-run heartbeat for a batcher; None (and a warning) if Aegra changed.

    `executor` is `aegra_api.services.worker_executor`, which looks `_heartbeat_loop` up at
    call time.
    """
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
    batcher = LeaseBatcher(executor)
    setattr(executor, "_heartbeat_loop", batcher.hold)  # noqa: B010 - a module's global
    return batcher
