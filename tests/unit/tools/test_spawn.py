"""The sandbox's host-process spawn behaves like asyncio's on both loops the product runs on.

The served instance runs uvloop, the CLI and tests the standard loop; a sandbox run needs its
pipes, its exit status and a kill to work the same on either.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
import uvloop
from blockbuster import blockbuster_ctx

from tools.sandbox.spawn import _loop_owned, spawn

LOOPS = pytest.mark.parametrize("loop", ["asyncio", "uvloop"])


def run_on[T](loop: str, coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on a fresh event loop of the named kind."""
    return uvloop.run(coro) if loop == "uvloop" else asyncio.run(coro)


async def _echo() -> tuple[bytes, bytes, int]:
    proc = await spawn(
        ["/bin/sh", "-c", "cat; echo oops >&2; exit 3"], stdin=True, env={"PATH": "/bin"}
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(b"line one\n" * 10_000)  # more than a pipe holds: drain must wait
    await proc.stdin.drain()
    proc.stdin.close()
    out, err = await asyncio.gather(proc.stdout.read(), proc.stderr.read())
    return out, err, await proc.wait()


@LOOPS
def test_pipes_and_exit_status(loop: str) -> None:
    out, err, code = run_on(loop, _echo())
    assert out == b"line one\n" * 10_000
    assert err == b"oops\n"
    assert code == 3


async def _killed() -> tuple[int | None, int, int | None]:
    proc = await spawn(["/bin/sleep", "30"], stdin=False, env={})
    before = proc.returncode
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(proc.wait(), 0.2)  # a cancelled wait keeps watching the exit
    proc.kill()
    return before, await proc.wait(), proc.returncode


@LOOPS
def test_kill_is_seen_as_the_exit(loop: str) -> None:
    before, code, after = run_on(loop, _killed())
    assert before is None
    assert code == after == -signal.SIGKILL


async def _missing() -> None:
    await spawn(["/nonexistent/program"], stdin=False, env={})


@LOOPS
def test_a_program_that_cannot_start_raises_oserror(loop: str) -> None:
    with pytest.raises(FileNotFoundError):
        run_on(loop, _missing())


async def _echo_watched_for_blocking_calls() -> tuple[bytes, bytes, int]:
    with blockbuster_ctx():  # what LangGraph's dev server turns on: a blocking call raises
        return await _echo()


@LOOPS
def test_spawning_never_blocks_the_event_loop(loop: str) -> None:
    out, _, code = run_on(loop, _echo_watched_for_blocking_calls())
    assert out == b"line one\n" * 10_000 and code == 3


async def _cancelled_while_starting(marker: str) -> None:
    starting = asyncio.create_task(
        spawn(["/bin/sh", "-c", f"sleep 30 # {marker}"], stdin=False, env={"PATH": "/bin"})
    )
    await asyncio.sleep(0)  # the start is under way in its thread
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    await asyncio.sleep(0.5)  # the thread finishes the start, then the child is killed


def _running_with(marker: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if marker.encode() in cmdline.read_bytes():
                found.append(cmdline.parent.name)
    return found


@LOOPS
def test_a_start_cancelled_midway_leaves_no_child_running(loop: str) -> None:
    marker = f"strategos-spawn-cancel-{uuid.uuid4().hex}"
    run_on(loop, _cancelled_while_starting(marker))
    assert _running_with(marker) == []


async def _owners_of_a_pipe_given_to_the_loop() -> tuple[bool, bool]:
    """(Popen's file object still open, the loop's file object closes the descriptor)."""
    read_end, write_end = os.pipe()
    os.close(write_end)
    popen_side = open(read_end, "rb")  # what Popen holds
    given = _loop_owned(asyncio.get_running_loop(), popen_side, "rb")
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(asyncio.Protocol, given)
    transport.close()
    await asyncio.sleep(0.05)
    return not popen_side.closed, bool(getattr(given, "closefd", True))


def test_each_pipe_descriptor_has_one_closer_on_either_loop() -> None:
    """uvloop's pipe transports close the descriptor in libuv and then the file object too
    (uvloop issue 763); a second close after the kernel reused the number closed a socket of
    another run, and the 2,000-task push lost both instances to it. So Popen's file object is
    closed at once, and on uvloop the file object handed over does not own its descriptor."""
    assert uvloop.run(_owners_of_a_pipe_given_to_the_loop()) == (False, False)
    assert asyncio.run(_owners_of_a_pipe_given_to_the_loop()) == (False, True)
