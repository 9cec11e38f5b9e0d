"""The sandbox's host-process spawn behaves like asyncio's on both loops the product runs on.

The served instance runs uvloop, the CLI and tests the standard loop; a sandbox run needs its
pipes, its exit status and a kill to work the same on either.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any

import pytest
import uvloop

from tools.sandbox.spawn import spawn

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
