"""Supervising one sandbox process: bounded output, the wall clock, and nothing left behind.

Every host-kernel backend runs one host process per run (bwrap, `runsc run`) in a session of its
own, and needs the same from its supervisor: both output streams drained into bounded buffers
while it runs (so a flood cannot fill our memory), a wall clock — and optionally a watchdog for
another limit — after which the backend's `stop` kills the whole run, and the same kill on
cancellation before the error goes on, so an abandoned run never keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.sandbox.base import SandboxLimits, SandboxResult, limits_hit
from tools.sandbox.cgroups import RunCgroup
from tools.sandbox.spawn import ChildProcess

__all__ = [
    "KILL_GRACE_S",
    "CappedBuffer",
    "Finished",
    "Stop",
    "kill_group",
    "kill_run",
    "supervise",
]

_CHUNK = 64 * 1024
# After a kill, how long to wait for the pipes to close before giving up on the rest of the output.
_DRAIN_GRACE_S = 5.0
KILL_GRACE_S = 2.0
"""After killing the namespace, how long bwrap gets to notice before it is killed too."""

Stop = Callable[[asyncio.Future[int]], Awaitable[None]]
"""Kills a run for good, given the future of its process's exit; returns once it has exited."""


class CappedBuffer:
    """Keeps the first `limit` bytes of a stream and drains the rest, so memory stays bounded."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    async def drain(self, stream: asyncio.StreamReader) -> None:
        """Read `stream` to its end, keeping what fits."""
        while chunk := await stream.read(_CHUNK):
            room = self.limit - len(self.data)
            if room > 0:
                self.data += chunk[:room]
            if len(chunk) > room:
                self.truncated = True

    def text(self) -> str:
        """What was kept, decoded (invalid UTF-8 replaced, never an error)."""
        return self.data.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Finished:
    """What supervising one process saw: how it ended, how long it took, what it printed."""

    exit_code: int
    duration_s: float
    timed_out: bool
    watchdog_fired: bool
    out: CappedBuffer
    err: CappedBuffer

    def result(self, *, memory: bool = False) -> SandboxResult:
        """The run's `SandboxResult`; `memory` is a memory-limit hit the backend saw itself."""
        truncated = self.out.truncated or self.err.truncated
        return SandboxResult(
            exit_code=self.exit_code,
            stdout=self.out.text(),
            stderr=self.err.text(),
            timed_out=self.timed_out,
            duration_s=round(self.duration_s, 3),
            output_truncated=truncated,
            limits_hit=limits_hit(
                exit_code=self.exit_code,
                timed_out=self.timed_out,
                truncated=truncated,
                cpu=self.watchdog_fired,
                memory=memory,
            ),
        )


async def supervise(
    proc: ChildProcess,
    limits: SandboxLimits,
    stop: Stop,
    *,
    watchdog: asyncio.Future[Any] | None = None,
) -> Finished:
    """Collect output under the wall clock; `stop` the run on timeout, watchdog or cancellation.

    A run stopped by the watchdog (which finishes when another limit is exceeded) has not timed
    out; the caller owns the watchdog and cancels it.
    """
    out = CappedBuffer(limits.max_output_bytes)
    err = CappedBuffer(limits.max_output_bytes)
    start = time.monotonic()
    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        asyncio.ensure_future(out.drain(proc.stdout)),
        asyncio.ensure_future(err.drain(proc.stderr)),
    ]
    waiter = asyncio.ensure_future(proc.wait())
    # Waits for the process and both pipes; cancelling it leaves them alone.
    finished = asyncio.ensure_future(asyncio.wait([waiter, *readers]))
    racers: list[asyncio.Future[Any]] = [finished] if watchdog is None else [finished, watchdog]
    timed_out = fired = False
    try:
        done, _ = await asyncio.wait(
            racers, timeout=limits.timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if finished not in done:
            fired = watchdog is not None and watchdog in done
            timed_out = not fired
            await stop(waiter)
        exit_code = await waiter
        duration = time.monotonic() - start
        _, unfinished = await asyncio.wait(readers, timeout=_DRAIN_GRACE_S)
        for task in unfinished:
            task.cancel()
    except BaseException:
        # Cancelled (or failed) while the sandbox runs: never leave it behind.
        try:
            await stop(waiter)
        finally:
            waiter.cancel()
            for task in readers:
                task.cancel()
        raise
    finally:
        finished.cancel()
    return Finished(exit_code, duration, timed_out, fired, out, err)


def kill_run(proc: ChildProcess, group: RunCgroup | None) -> Stop:
    """The `stop` of a bubblewrap run: its pid namespace, then its cgroup and process group."""

    async def stop(waiter: asyncio.Future[int]) -> None:
        try:
            await _terminate(proc, waiter, group)
        finally:
            kill_group(proc)

    return stop


async def _terminate(
    proc: ChildProcess, waiter: asyncio.Future[int], group: RunCgroup | None
) -> None:
    """Kill the sandbox so that bwrap reaps it: no survivors and no zombies left for init.

    SIGKILL to the command (bwrap's only child, pid 1 of the sandbox) ends every process of the
    pid namespace; bwrap then exits. The cgroup kill catches anything else, and the process-group
    kill is the last fallback if bwrap does not follow.
    """
    if proc.returncode is None:
        for pid in _children(proc.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    try:
        await asyncio.wait_for(asyncio.shield(waiter), KILL_GRACE_S)
    except TimeoutError:
        if group is not None:
            await asyncio.to_thread(group.kill_all, 1.0)
        kill_group(proc)
        await waiter


def _children(pid: int) -> list[int]:
    """Direct children of `pid`; the kernel keeps this list, the sandbox cannot forge it."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def kill_group(proc: ChildProcess) -> None:
    """SIGKILL the process group the run's host process leads (started with a new session).

    For bwrap, `--die-with-parent` then takes the rest; it is the last resort of every backend.
    """
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
