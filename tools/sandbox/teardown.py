"""What a run leaves on the host, and taking it down: processes, cgroup, workspace.

Shared by the cold and the pre-started path of the local sandbox (a run is released the same
way whichever started it) and by backends that close their resources at interpreter exit.
"""

from __future__ import annotations

import atexit
import weakref
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Protocol

from tools.sandbox.base import LimitHit, SandboxResult
from tools.sandbox.cgroups import RunCgroup
from tools.sandbox.workspace import RunWorkspace

__all__ = ["COLLECT_MAX_BYTES", "close_at_exit", "finish_run", "teardown"]

COLLECT_MAX_BYTES = 4 * 1024 * 1024
"""Largest workspace file read back after a run (`collect=`)."""


class _Closable(Protocol):
    def close(self) -> None: ...


def finish_run(
    result: SandboxResult,
    workspace: RunWorkspace,
    group: RunCgroup | None,
    wanted: Sequence[PurePosixPath],
) -> SandboxResult:
    """After the run: kill leftovers, note cgroup limit hits, read files back, clean up."""
    hits = list(result.limits_hit)
    files: dict[str, str] = {}
    try:
        if group is not None:
            group.kill_all()
            hits += _cgroup_hits(group, hits)
        if wanted:
            files = workspace.collect(wanted, COLLECT_MAX_BYTES)
    finally:
        teardown(workspace, group)
    return result.model_copy(update={"files": files, "limits_hit": tuple(hits)})


def _cgroup_hits(group: RunCgroup, seen: list[LimitHit]) -> list[LimitHit]:
    """Limits only the cgroup's counters can tell were hit (not already in `seen`)."""
    stats = group.stats()
    hits: list[LimitHit] = []
    if stats.pids_limit_hits and "processes" not in seen:
        hits.append("processes")
    if (stats.oom_kills or stats.memory_limit_hits) and "memory" not in seen:
        hits.append("memory")
    return hits


def teardown(workspace: RunWorkspace, group: RunCgroup | None) -> None:
    """Kill everything left in the cgroup, then remove the workspace and the cgroup."""
    try:
        if group is not None:
            group.kill_all()
    finally:
        try:
            workspace.remove()
        finally:
            if group is not None:
                group.remove()


def close_at_exit(backend: _Closable) -> None:
    """Call `backend.close()` at interpreter exit, unless it is garbage by then."""
    atexit.register(_close_ref, weakref.ref(backend))


def _close_ref(ref: weakref.ReferenceType[_Closable]) -> None:
    backend = ref()
    if backend is not None:
        backend.close()
