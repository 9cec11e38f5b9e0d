"""The local sandbox's warm pool: sandboxes started ahead of time, each used for one command.

bubblewrap's set-up (namespaces, mounts, cgroup, interpreter start) is most of a short run's
latency. A pooled sandbox is already isolated and waits as pid 1 in a tiny agent that reads one
JSON request (argv + rlimits) on stdin and then becomes the command; after that run it is thrown
away like any other, so nothing passes from one run to the next. Memory and disk sizes are fixed
when a sandbox starts, so only runs with the pool's sizes can use one; the others start cold.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from tools.sandbox.base import SandboxError, SandboxLimits
from tools.sandbox.cgroups import RunCgroup
from tools.sandbox.layout import MIB, cgroup_caps
from tools.sandbox.spawn import ChildProcess
from tools.sandbox.supervise import KILL_GRACE_S
from tools.sandbox.teardown import teardown
from tools.sandbox.workspace import RunWorkspace

__all__ = ["AGENT", "Warm", "WarmPool", "wait_ready"]

log = logging.getLogger(__name__)

# Up to this many bytes of files are written on the event loop for a pre-started sandbox.
_INLINE_WRITE_BYTES = 256 * 1024
# How long a pre-started sandbox may take to report ready.
_AGENT_START_S = 30.0

AGENT = """\
import json, os, resource, signal, sys
os.write(1, b"R")
line = sys.stdin.buffer.readline()
if not line:
    raise SystemExit(0)
req = json.loads(line)
fd = os.open("/dev/null", os.O_RDONLY)
os.dup2(fd, 0)
os.close(fd)
for name, soft, hard in req["rlimits"]:
    resource.setrlimit(getattr(resource, name), (soft, hard))
for name in ("SIGPIPE", "SIGXFSZ", "SIGINT"):
    signal.signal(getattr(signal, name), signal.SIG_DFL)
argv = req["argv"]
try:
    os.execvp(argv[0], argv)
except OSError as exc:
    sys.stderr.write("strategos-sandbox: failed to execute %s: %s\\n" % (argv[0], exc.strerror))
    os._exit(127 if exc.errno == 2 else 126)
"""
"""pid 1 of an idle sandbox: says it is ready (one byte on stdout, read by the pool), blocks on
stdin for one JSON request, points stdin at /dev/null, applies the limits, becomes the command."""


@dataclass
class Warm:
    """An idle pre-started sandbox: its agent waits on stdin for exactly one command."""

    proc: ChildProcess
    workspace: RunWorkspace
    group: RunCgroup | None
    loop: asyncio.AbstractEventLoop

    async def hand_over(
        self, paths: Mapping[PurePosixPath, str], command: list[str], limits: SandboxLimits
    ) -> ChildProcess:
        """Give the agent its files, limits and command; from then on it is a normal run."""
        if sum(len(content) for content in paths.values()) <= _INLINE_WRITE_BYTES:
            self.workspace.write(paths)  # a few small files: cheaper than a thread hop
        else:
            await asyncio.to_thread(self.workspace.write, paths)
        if self.group is not None:
            self.group.set_limits(**cgroup_caps(limits))
        assert self.proc.stdin is not None
        self.proc.stdin.write(_request(command, limits))
        with contextlib.suppress(ConnectionError):
            await self.proc.stdin.drain()
        self.proc.stdin.close()
        return self.proc

    async def discard(self) -> None:
        """Kill the idle sandbox (possibly from another, closed event loop) and clean up."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.loop is asyncio.get_running_loop():
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self.proc.wait(), KILL_GRACE_S)
        await asyncio.to_thread(teardown, self.workspace, self.group)


def _request(command: list[str], limits: SandboxLimits) -> bytes:
    """The agent's request line: the argv and the rlimits it sets before exec (soft = hard)."""
    rlimits = [
        ("RLIMIT_CPU", limits.cpu_s),
        ("RLIMIT_AS", limits.memory_mb * MIB),
        ("RLIMIT_FSIZE", limits.file_size_mb * MIB),
        ("RLIMIT_NOFILE", limits.open_files),
        ("RLIMIT_CORE", 0),
    ]
    request = {"argv": command, "rlimits": [[name, v, v] for name, v in rlimits]}
    return json.dumps(request).encode() + b"\n"


async def wait_ready(proc: ChildProcess) -> None:
    """Wait for the agent's ready byte; SandboxError (after killing it) if it does not come."""
    assert proc.stdout is not None
    try:
        ready = await asyncio.wait_for(proc.stdout.readexactly(1), _AGENT_START_S)
    except (TimeoutError, asyncio.IncompleteReadError) as exc:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise SandboxError(f"A pre-started sandbox did not come up: {exc!r}") from exc
    if ready != b"R":
        raise SandboxError(f"A pre-started sandbox answered {ready!r} instead of ready")


class WarmPool:
    """Up to `size` idle sandboxes of `limits`, refilled in the background by `spawn`."""

    def __init__(
        self, size: int, limits: SandboxLimits, spawn: Callable[[], Awaitable[Warm]]
    ) -> None:
        self.size = size
        self.limits = limits
        self.idle: list[Warm] = []
        self.closed = False
        self._spawn = spawn
        self._filler: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    def take(self, limits: SandboxLimits) -> Warm | None:
        """An idle sandbox of this event loop that suits `limits`, or None (then refill)."""
        if self.size == 0 or self.closed:
            return None
        warm = self._pop_live() if self._fits(limits) else None
        if warm is None:
            self.schedule_fill()
        return warm

    def _fits(self, limits: SandboxLimits) -> bool:
        """Whether `limits` use the sizes the pooled sandboxes were started with."""
        pool = self.limits
        return (limits.memory_mb, limits.disk_mb, limits.tmp_mb, limits.tmp_files) == (
            pool.memory_mb,
            pool.disk_mb,
            pool.tmp_mb,
            pool.tmp_files,
        )

    def _pop_live(self) -> Warm | None:
        """The first idle sandbox still alive on this loop; the dead ones are discarded."""
        loop = asyncio.get_running_loop()
        while self.idle:
            candidate = self.idle.pop(0)
            if candidate.loop is loop and candidate.proc.returncode is None:
                return candidate
            task = asyncio.ensure_future(candidate.discard())
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return None

    def schedule_fill(self) -> None:
        """Start refilling in the background unless the pool is full or already filling."""
        filling = self._filler is not None and not self._filler.done()
        if filling and self._filler is not None:
            # A filler left behind by a closed event loop never finishes: replace it.
            filling = self._filler.get_loop() is asyncio.get_running_loop()
        if self.closed or filling:
            return
        if len(self.idle) >= self.size:
            return
        self._filler = asyncio.ensure_future(self._fill())

    async def fill(self) -> None:
        """Fill the pool now and wait until it is full (or could not be filled)."""
        self.schedule_fill()
        if self._filler is not None:
            await asyncio.shield(self._filler)

    async def _fill(self) -> None:
        while not self.closed and len(self.idle) < self.size:
            try:
                warm = await self._spawn()
            except SandboxError as exc:
                log.warning("local sandbox: could not pre-start a sandbox: %s", exc)
                return
            if self.closed:
                await warm.discard()
                return
            self.idle.append(warm)

    async def aclose(self) -> None:
        """Stop refilling and destroy the idle sandboxes."""
        self.closed = True
        if self._filler is not None:
            self._filler.cancel()
            with contextlib.suppress(BaseException):
                await self._filler
        idle, self.idle = self.idle, []
        for warm in idle:
            await warm.discard()

    def close(self) -> None:
        """Synchronous best-effort `aclose` (also run at interpreter exit)."""
        self.closed = True
        idle, self.idle = self.idle, []
        for warm in idle:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(warm.proc.pid, signal.SIGKILL)
            teardown(warm.workspace, warm.group)
