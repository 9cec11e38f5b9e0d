"""Start a sandbox's host process cheaply, whatever event loop the server runs.

`asyncio.create_subprocess_exec` on uvloop (what the served Aegra instance runs) goes through
libuv, which `fork()`s: the kernel copies the page tables of the whole server (~900 MB of
model client, graphs and drivers) for every sandboxed run, only for the child to `exec` bwrap
a moment later. The bench/aegra profile found that copy to be 27% of the instance's CPU, and a
micro-benchmark in a 900 MB process measured 22 ms of CPU per spawn on uvloop against 0.7 ms on
the standard loop (bench/sandbox/spawn_cost.py). CPython's `subprocess.Popen` uses `vfork()`
(no copy) when nothing has to run in the child before `exec` — true here: the environment, the
new session and the passed fds are all applied by the exec machinery itself.

So every backend spawns with `Popen` and attaches the pipes and the exit to the running loop
(`connect_read_pipe`/`connect_write_pipe`, a pidfd for the exit), which gives the same
`ChildProcess` surface as `asyncio.subprocess.Process` on either loop. `Popen` itself runs in a
worker thread: it blocks reading its exec-status pipe until the child has exec'd, and a blocking
read on the event loop stalls every other run (LangGraph's dev server refuses it outright).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import IO, Protocol

__all__ = ["ChildProcess", "SpawnedProcess", "spawn"]

_STREAM_LIMIT = 2**16
"""The buffer limit `asyncio.subprocess` gives its pipe readers."""


class ChildProcess(Protocol):
    """What the sandbox backends use of a running host process."""

    @property
    def pid(self) -> int:
        """The host process id (the leader of its own session)."""

    @property
    def returncode(self) -> int | None:
        """The exit status once reaped, else None."""

    @property
    def stdin(self) -> asyncio.StreamWriter | None:
        """The child's stdin when it was asked for."""

    @property
    def stdout(self) -> asyncio.StreamReader | None:
        """The child's stdout."""

    @property
    def stderr(self) -> asyncio.StreamReader | None:
        """The child's stderr."""

    async def wait(self) -> int:
        """Wait for the exit and return its status."""

    def kill(self) -> None:
        """SIGKILL the host process."""


class SpawnedProcess:
    """A `Popen` child whose pipes and exit belong to the event loop that started it."""

    def __init__(self, popen: subprocess.Popen[bytes], exited: asyncio.Future[int]) -> None:
        self._popen = popen
        self._exited = exited
        self.stdin: asyncio.StreamWriter | None = None
        self.stdout: asyncio.StreamReader | None = None
        self.stderr: asyncio.StreamReader | None = None

    @property
    def pid(self) -> int:
        """The host process id."""
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """The exit status once the loop has seen the exit."""
        return self._exited.result() if self._exited.done() else None

    async def wait(self) -> int:
        """Wait for the exit (cancelling the wait leaves the watch in place)."""
        return await asyncio.shield(self._exited)

    def kill(self) -> None:
        """SIGKILL the host process unless it was already reaped."""
        if not self._exited.done():
            self._popen.kill()


async def spawn(
    argv: Sequence[str],
    *,
    stdin: bool,
    env: Mapping[str, str],
    pass_fds: Sequence[int] = (),
    start_new_session: bool = True,
) -> SpawnedProcess:
    """Start `argv` with `vfork` semantics; stdout and stderr are always piped.

    Raises OSError as `asyncio.create_subprocess_exec` does when the program cannot start.
    """
    loop = asyncio.get_running_loop()
    starting = asyncio.ensure_future(
        asyncio.to_thread(
            subprocess.Popen,
            list(argv),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            pass_fds=tuple(pass_fds),
            start_new_session=start_new_session,
        )
    )
    try:
        popen = await asyncio.shield(starting)
    except asyncio.CancelledError:
        starting.add_done_callback(_discard_started)  # the thread finishes the start anyway
        raise
    try:
        child = SpawnedProcess(popen, _watch_exit(loop, popen))
        child.stdout = await _reader(loop, popen.stdout)
        child.stderr = await _reader(loop, popen.stderr)
        if popen.stdin is not None:
            child.stdin = await _writer(loop, popen.stdin)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            popen.kill()
        raise
    return child


def _discard_started(starting: asyncio.Future[subprocess.Popen[bytes]]) -> None:
    """Kill a child whose start finished after its caller was cancelled, so none is orphaned."""
    if starting.cancelled() or starting.exception() is not None:
        return
    popen = starting.result()
    with contextlib.suppress(ProcessLookupError):
        popen.kill()
    for pipe in (popen.stdin, popen.stdout, popen.stderr):
        if pipe is not None:
            pipe.close()
    asyncio.get_running_loop().run_in_executor(None, popen.wait)


def _watch_exit(
    loop: asyncio.AbstractEventLoop, popen: subprocess.Popen[bytes]
) -> asyncio.Future[int]:
    """A future with the exit status: a pidfd the loop watches, or a thread on older kernels."""
    exited: asyncio.Future[int] = loop.create_future()
    try:
        pidfd = os.pidfd_open(popen.pid)
    except (AttributeError, OSError):
        waiting = asyncio.ensure_future(asyncio.to_thread(popen.wait))
        waiting.add_done_callback(lambda done: _settle(exited, done.result()))
        return exited

    def reap() -> None:
        status = popen.poll()
        if status is None:  # woken early: not exited yet
            return
        loop.remove_reader(pidfd)
        os.close(pidfd)
        _settle(exited, status)

    loop.add_reader(pidfd, reap)
    return exited


def _settle(exited: asyncio.Future[int], status: int) -> None:
    if not exited.done():
        exited.set_result(status)


async def _reader(loop: asyncio.AbstractEventLoop, pipe: IO[bytes] | None) -> asyncio.StreamReader:
    """A stream reader on the child's pipe (the transport owns and closes the pipe)."""
    assert pipe is not None
    reader = asyncio.StreamReader(limit=_STREAM_LIMIT, loop=loop)
    owned = _loop_owned(loop, pipe, "rb")
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop), owned)
    return reader


async def _writer(loop: asyncio.AbstractEventLoop, pipe: IO[bytes]) -> asyncio.StreamWriter:
    """A stream writer on the child's stdin, with `drain()` flow control."""
    protocol = asyncio.StreamReaderProtocol(asyncio.StreamReader(loop=loop), loop=loop)
    transport, _ = await loop.connect_write_pipe(lambda: protocol, _loop_owned(loop, pipe, "wb"))
    return asyncio.StreamWriter(transport, protocol, None, loop)


def _loop_owned(loop: asyncio.AbstractEventLoop, pipe: IO[bytes], mode: str) -> IO[bytes]:
    """A file object on a copy of `pipe`'s descriptor, closed once, by the loop's transport.

    Popen's own file object is closed here. uvloop's pipe transports close the descriptor in
    libuv and then close the file object too (uvloop issue 763): a descriptor number closed
    twice, the second time after the kernel may have handed it to a socket of another run.
    So on uvloop the file object does not own the descriptor (`closefd=False`); asyncio's
    transports close only the file object, which then does.
    """
    fd = os.dup(pipe.fileno())
    pipe.close()
    return open(fd, mode, buffering=0, closefd=not _is_uvloop(loop))


def _is_uvloop(loop: asyncio.AbstractEventLoop) -> bool:
    return type(loop).__module__.split(".")[0] == "uvloop"
