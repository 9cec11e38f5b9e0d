"""What sandbox runs of one owner process have on the host, looked up the way an operator would.

Mounts come from /proc/self/mountinfo, cgroups from a walk of every hierarchy under
/sys/fs/cgroup, directories from the temp dir, processes from /proc/*/cmdline; an owner's
resources are the ones whose name carries its marker tag.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tools.sandbox.markers import Owner, owner_of, parse_marker

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Leftovers:
    """An owner's sandbox resources on the host, by kind."""

    mounts: tuple[Path, ...]
    cgroups: tuple[Path, ...]
    directories: tuple[Path, ...]
    processes: tuple[int, ...]

    @classmethod
    def of(cls, owner: Owner) -> Leftovers:
        return cls(
            mounts=tuple(p for p in mount_points() if _owned(p.name, owner)),
            cgroups=tuple(_cgroups(owner)),
            directories=tuple(
                p for p in Path(tempfile.gettempdir()).iterdir() if _owned(p.name, owner)
            ),
            processes=tuple(_processes(owner)),
        )

    def kinds(self, paths: tuple[Path, ...]) -> set[str]:
        """Marker kinds of some of these paths ("ws", "tmp", "run", "gvisor"…)."""
        return {marked.kind for p in paths if (marked := parse_marker(p.name))}

    @property
    def empty(self) -> bool:
        return not (self.mounts or self.cgroups or self.directories or self.processes)


def owner(pid: int) -> Owner:
    found = owner_of(pid)
    assert found is not None, f"no process {pid}"
    return found


def mount_points() -> list[Path]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        points.append(Path(line.split()[4].replace("\\040", " ")))
    return points


def started_workspace(owner: Owner) -> Path | None:
    """The owner's workspace mount in which the sandboxed code wrote `started`, if any."""
    for point in mount_points():
        marked = parse_marker(point.name)
        if marked and marked.owner == owner and marked.kind == "ws":
            if (point / "started").exists():
                return point
    return None


async def wait_for[T](probe: Callable[[], T | None], what: str, attempts: int = 1200) -> T:
    """Poll `probe` until it returns something (a bounded wait, not a timing assertion)."""
    for _ in range(attempts):
        found = probe()
        if found is not None:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"never saw {what}")


def _owned(name: str, owner: Owner) -> bool:
    marked = parse_marker(name)
    return marked is not None and marked.owner == owner


def _cgroups(owner: Owner) -> list[Path]:
    found = []
    for folder, subdirs, _ in os.walk(CGROUP_ROOT):
        found += [Path(folder) / name for name in subdirs if _owned(name, owner)]
    return found


def _processes(owner: Owner) -> list[int]:
    """Processes whose command line names one of the owner's resources (bwrap, runsc…)."""
    return processes_with(f"-{owner.tag}-".encode())


def processes_with(needle: bytes) -> list[int]:
    """Pids of the processes whose command line contains `needle`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            found.append(int(entry.name))
    return found
