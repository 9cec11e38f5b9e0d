"""The team's progress events, logged where the run executes, before they travel through Redis.

The nodes report progress with the stream writer (`custom` stream events). Under Aegra those
events go from the worker that executes the run to the instance streaming it through Redis:
a write that fails three times is dropped, a subscriber that reconnects misses what was
published meanwhile, and a run finished by another instance after a crash has nobody listening
at all. So every instance writes them to the ledger's event log (PostgreSQL) as they are
produced, in order, before they are published; the façade's run driver only follows the run
and logs its outcome (`service.api.run_driver`).

While the database is unreachable the events wait in memory, in order, and are written as soon
as it answers again (at the latest when the run's stream ends). Delivery is at least once: a
write that committed but whose answer was lost is written again.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from types import ModuleType
from typing import Any

from psycopg_pool import AsyncConnectionPool

from tools.ledger import EventKind, PostgresLedger

__all__ = ["ProgressLog", "close_progress_log", "install", "logged_at_source"]

log = logging.getLogger(__name__)

PROGRESS_KIND: EventKind = "AgentProgress"
POOL_TIMEOUT_S = 5.0
"""How long one write waits for a connection: the run's stream waits that long at most."""
RETRY_AFTER_S = 2.0
"""After a failed write, later events only queue for this long (no wait per event)."""
FINISH_BUDGET_S = 60.0
"""How long the end of a run's stream waits for its queued events to be written."""

_INSTALLED: ProgressLog | None = None


class ProgressLog:
    """Appends runs' progress events to the ledger in order, keeping them while it cannot."""

    def __init__(self, database_url: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.database_url = database_url
        self._clock = clock
        self._ledgers: dict[int, PostgresLedger] = {}
        self._pending: dict[str, deque[tuple[str, dict[str, Any]]]] = {}
        self._quiet_until = 0.0
        self._background: set[asyncio.Task[bool]] = set()

    async def _ledger(self) -> PostgresLedger:
        """The running loop's ledger, on a pool that checks connections and waits briefly."""
        loop_id = id(asyncio.get_running_loop())
        if loop_id not in self._ledgers:
            pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                self.database_url,
                min_size=1,
                max_size=4,
                kwargs={"autocommit": True, "prepare_threshold": 0},
                check=AsyncConnectionPool.check_connection,
                timeout=POOL_TIMEOUT_S,
                open=False,
            )
            await pool.open(wait=False)
            self._ledgers[loop_id] = PostgresLedger(pool, owns_pool=True)
        return self._ledgers[loop_id]

    def pending(self, run_id: str) -> int:
        """Events of the run not written yet."""
        return len(self._pending.get(run_id, ()))

    async def append(self, thread_id: str, run_id: str, data: dict[str, Any]) -> None:
        """Queue the event behind the run's unwritten ones and write what can be written."""
        self._pending.setdefault(run_id, deque()).append((thread_id, data))
        if self._clock() >= self._quiet_until:
            await self._flush(run_id)

    async def _flush(self, run_id: str) -> bool:
        """Write the run's queued events in order; False if the database refused one."""
        queue = self._pending.get(run_id)
        ledger = await self._ledger()
        while queue:
            thread_id, data = queue[0]
            try:
                await ledger.append_event(thread_id, PROGRESS_KIND, data, key=run_id)
            except Exception as exc:
                self._quiet_until = self._clock() + RETRY_AFTER_S
                log.warning(
                    "progress of run %s waits for the database (%d queued): %s",
                    run_id,
                    len(queue),
                    type(exc).__name__,
                )
                return False
            queue.popleft()
        self._pending.pop(run_id, None)
        return True

    async def finish(self, run_id: str, budget_s: float = FINISH_BUDGET_S) -> bool:
        """At the end of the run's stream: write what is queued, retrying within `budget_s`."""
        deadline = self._clock() + budget_s
        delay = 0.2
        while not await self._flush(run_id):
            if self._clock() + delay > deadline:
                lost = len(self._pending.pop(run_id, ()))
                log.error("dropped %d progress events of run %s: no database", lost, run_id)
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        return True

    def finish_later(self, run_id: str) -> None:
        """`finish` in the background (the run's own task is being cancelled)."""
        task = asyncio.get_running_loop().create_task(self.finish(run_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Close this loop's pool (server shutdown)."""
        ledger = self._ledgers.pop(id(asyncio.get_running_loop()), None)
        if ledger is not None:
            await ledger.close()


def _ids(config: Any) -> tuple[str, str] | None:
    configurable = (config or {}).get("configurable") or {}
    thread_id, run_id = configurable.get("thread_id"), configurable.get("run_id")
    return (str(thread_id), str(run_id)) if thread_id and run_id else None


def _tee(original: Callable[..., AsyncIterator[Any]], progress: ProgressLog) -> Any:
    """Aegra's `stream_graph_events`, logging each `custom` event before passing it on."""

    async def stream_and_log(
        graph: Any, input_data: Any, config: Any, **kwargs: Any
    ) -> AsyncIterator[Any]:
        ids = _ids(config)
        try:
            async for event in original(graph, input_data, config, **kwargs):
                mode, payload = event
                if ids is not None and mode == "custom" and isinstance(payload, dict):
                    await progress.append(ids[0], ids[1], payload)
                yield event
        except BaseException:
            # Cancelled (a lost lease, a drain) or failed: what the run did so far still
            # happened, so its queued events are written in the background.
            if ids is not None and progress.pending(ids[1]):
                progress.finish_later(ids[1])
            raise
        if ids is not None:
            await progress.finish(ids[1])

    return stream_and_log


def install(run_executor: ModuleType, database_url: str) -> ProgressLog | None:
    """Log progress at the source in this process; None (and a warning) if Aegra changed.

    `run_executor` is `aegra_api.services.run_executor`, which looks `stream_graph_events`
    up at call time.
    """
    global _INSTALLED
    original = getattr(run_executor, "stream_graph_events", None)
    params = list(inspect.signature(original).parameters) if original is not None else []
    if original is None or params[:3] != ["graph", "input_data", "config"]:
        log.warning("Aegra's graph streaming is not the expected one; the driver logs progress")
        return None
    progress = ProgressLog(database_url)
    setattr(run_executor, "stream_graph_events", _tee(original, progress))  # noqa: B010
    _INSTALLED = progress
    return progress


def logged_at_source() -> bool:
    """Whether this process's server logs progress events itself (the driver must not)."""
    return _INSTALLED is not None


async def close_progress_log() -> None:
    """Close the installed log's pool for the running loop."""
    if _INSTALLED is not None:
        await _INSTALLED.close()
