"""Helper processes that cannot outlive the process that started them.

`strategos serve` runs Aegra in a child, and that child starts `llama-server` (the embedded
model) and FalkorDB (the embedded memory graph) on first use. If any of them outlives its
parent, it keeps a port, a directory lock and gigabytes of memory with nobody to stop it, and
the next start finds them taken. Exit handlers do not run when a parent is killed, so the kernel
has to do it: `popen_tied` asks for a parent-death signal (`PR_SET_PDEATHSIG`).

Linux sends that signal when the *thread* that forked the child ends, not the process. Helpers
are started lazily from whatever thread needs them first (an executor thread that a library may
shut down), so every tied child is forked from one daemon thread that lives as long as the
process does.

A supervisor (`strategos serve`) becomes a subreaper (`become_subreaper`): a helper orphaned by
its parent's death is reparented to the supervisor instead of init, whatever session or process
group it is in, and `stop_children` stops and reaps what is left.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

__all__ = [
    "become_subreaper",
    "die_with_parent",
    "own_children",
    "popen_tied",
    "stop_children",
]

_PR_SET_PDEATHSIG = 1
_LIBC: Any = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def die_with_parent(parent: int, signum: int = signal.SIGKILL) -> Callable[[], None]:
    """A `preexec_fn`: the kernel sends `signum` to the child when its parent thread ends.

    Runs in the forked child, so it only calls into the already loaded libc. If the parent
    died before the request took effect, the child exits at once instead of being orphaned.
    """
    prctl = _LIBC.prctl if _LIBC is not None else None

    def setup() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return setup


_Job = tuple[Callable[[], subprocess.Popen[bytes]], "Future[subprocess.Popen[bytes]]"]
_jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
_spawner: threading.Thread | None = None
_spawner_lock = threading.Lock()


def _serve_jobs() -> None:
    while True:
        start, result = _jobs.get()
        try:
            result.set_result(start())
        except BaseException as exc:  # handed to the caller, whatever it is
            result.set_exception(exc)


def _on_spawner_thread(start: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    global _spawner
    with _spawner_lock:
        if _spawner is None or not _spawner.is_alive():
            _spawner = threading.Thread(target=_serve_jobs, name="tied-children", daemon=True)
            _spawner.start()
    result: Future[subprocess.Popen[bytes]] = Future()
    _jobs.put((start, result))
    return result.result()


def popen_tied(
    args: list[str], *, death_signal: int = signal.SIGTERM, **kwargs: Any
) -> subprocess.Popen[bytes]:
    """`subprocess.Popen(args, **kwargs)` for a child that gets `death_signal` when we die.

    SIGTERM lets a server write its state on the way out; SIGKILL suits one with nothing to
    save. Off Linux this is a plain `Popen` (the exit handlers remain the only cleanup).
    """

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: PLW1509 - only calls prctl, see die_with_parent
            args, preexec_fn=die_with_parent(os.getpid(), death_signal), **kwargs
        )

    if _LIBC is None:
        return subprocess.Popen(args, **kwargs)
    return _on_spawner_thread(start)


_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Adopt our orphaned descendants (instead of init), so `stop_children` can stop them.

    A helper whose parent was killed is reparented to the nearest subreaper: then it is ours to
    stop and reap, whatever session or process group it put itself in.
    """
    if _LIBC is None:
        return False
    return int(_LIBC.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0


def own_children() -> list[int]:
    """The pids of this process's children, adopted orphans included (Linux `/proc`)."""
    pids: list[int] = []
    tasks = f"/proc/{os.getpid()}/task"
    try:
        threads = os.listdir(tasks)
    except OSError:
        return pids
    for tid in threads:
        try:
            with open(f"{tasks}/{tid}/children") as listing:
                pids += [int(pid) for pid in listing.read().split()]
        except OSError:
            continue
    return pids


def _reap(pids: list[int]) -> list[int]:
    """Reap those that exited; the ones still running."""
    alive = []
    for pid in pids:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        if done == 0:
            alive.append(pid)
    return alive


def stop_children(grace_s: float, *, poll_s: float = 0.1) -> list[int]:
    """SIGTERM every child we still have, SIGKILL those alive after `grace_s`; reap all.

    Returns the pids that were still there: after the main child has been waited for, these are
    helpers it left behind.
    """
    found = own_children()
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    alive = _reap(found)
    while alive and time.monotonic() < deadline:
        time.sleep(poll_s)
        alive = _reap(alive)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return found
