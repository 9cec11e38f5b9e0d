"""A cgroup per sandbox run: process count and memory caps, and a kill that leaves no survivor.

`RLIMIT_NPROC` does not stop a fork bomb started by root (and counts every process of a uid,
so concurrent runs would starve each other); a cgroup counts only the processes of one run.
This module drives cgroup v1 hierarchies (`pids`, `memory`, and `freezer` when present), which
are what these machines offer. Each run cgroup is created *under the cgroup this process already
sits in* for that controller, so any limit or accounting the host applies to us still covers the
sandbox. Writing a pid into the run's `cgroup.procs` files happens in the sandbox's first process
before it executes anything else (see `join_command`), so user code never runs outside it.
Run cgroups are named with the owner marker of `markers.py`, so the janitor can remove those
of a SIGKILLed run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from tools.sandbox.base import SandboxUnavailable
from tools.sandbox.markers import PROBE_CGROUP_KIND, RUN_CGROUP_KIND, name_prefix

__all__ = ["CgroupStats", "CgroupSupport", "RunCgroup", "detect_cgroups"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
REQUIRED_CONTROLLERS = ("pids", "memory")
OPTIONAL_CONTROLLERS = ("freezer",)
_CONTROL_FILES = {
    "pids": "pids.max",
    "memory": "memory.limit_in_bytes",
    "freezer": "freezer.state",
}
_HINT = (
    "The local sandbox needs writable cgroup v1 hierarchies `pids` and `memory` under "
    "/sys/fs/cgroup (run as root on a host that mounts them), or must be built with "
    "strict=False to run with rlimits only (development machines only)."
)


@dataclass(frozen=True)
class CgroupStats:
    """What the kernel counted for one run; read just before the cgroup is removed."""

    pids_peak: int | None
    pids_limit_hits: int
    memory_peak_bytes: int | None
    memory_limit_hits: int
    oom_kills: int


@dataclass(frozen=True)
class CgroupSupport:
    """Where run cgroups go: one parent directory per controller, all checked writable."""

    parents: dict[str, Path]

    @property
    def has_freezer(self) -> bool:
        """True when the `freezer` hierarchy is usable, so a kill can be made atomic."""
        return "freezer" in self.parents


def _own_cgroup_paths() -> dict[str, str]:
    """Map controller -> path of this process's cgroup in that v1 hierarchy."""
    paths: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(","):
                if controller:
                    paths[controller] = path
    return paths


def _probe(parent: Path, controller: str) -> str | None:
    """Try to create and remove a child cgroup; return why it failed, or None."""
    probe = parent / (name_prefix(PROBE_CGROUP_KIND) + secrets.token_hex(4))
    try:
        probe.mkdir()
    except OSError as exc:
        return f"cannot create a cgroup in {parent}: {exc.strerror}"
    try:
        if not (probe / _CONTROL_FILES[controller]).exists():
            return f"{probe} has no {_CONTROL_FILES[controller]}"
        return None
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


def detect_cgroups(root: Path = CGROUP_ROOT) -> CgroupSupport:
    """Find writable v1 hierarchies for the run cgroups, or raise SandboxUnavailable saying why."""
    own = _own_cgroup_paths()
    parents: dict[str, Path] = {}
    for controller in (*REQUIRED_CONTROLLERS, *OPTIONAL_CONTROLLERS):
        hierarchy = root / controller
        reason: str | None
        if not (hierarchy / "cgroup.procs").exists():
            reason = f"no cgroup v1 hierarchy mounted at {hierarchy}"
        else:
            parent = hierarchy / own.get(controller, "/").lstrip("/")
            reason = _probe(parent, controller)
            if reason is None:
                parents[controller] = parent
        if reason is not None and controller in REQUIRED_CONTROLLERS:
            raise SandboxUnavailable(f"Per-run cgroups are unavailable: {reason}. {_HINT}")
    return CgroupSupport(parents=parents)


class RunCgroup:
    """One run's cgroup in every usable hierarchy; create, join, limit, kill, remove."""

    def __init__(self, dirs: dict[str, Path]) -> None:
        self.dirs = dirs

    @classmethod
    def create(cls, support: CgroupSupport, *, pids_max: int, memory_bytes: int) -> RunCgroup:
        """Make the directories and set the limits; on any failure nothing is left behind."""
        name = name_prefix(RUN_CGROUP_KIND) + secrets.token_hex(6)
        group = cls({})
        try:
            for controller, parent in support.parents.items():
                path = parent / name
                path.mkdir()
                group.dirs[controller] = path
            group.set_limits(pids_max=pids_max, memory_bytes=memory_bytes)
        except OSError as exc:
            group.remove()
            raise SandboxUnavailable(
                f"Could not set up the run cgroup {name}: {exc}. {_HINT}"
            ) from exc
        return group

    @property
    def procs_files(self) -> list[Path]:
        """The `cgroup.procs` files a process writes its pid into to join every hierarchy."""
        return [path / "cgroup.procs" for path in self.dirs.values()]

    def join_command(self) -> list[str]:
        """A `/bin/sh` prefix that moves itself into the cgroup, then execs the rest of argv.

        Used as `[*group.join_command(), real_program, *args]`: the shell writes its own pid
        (`$$`) into each hierarchy and only then `exec`s, so the program and all its
        descendants start inside the cgroup. A failed write aborts the run (exit 125).
        """
        script = "".join(f'echo $$ > "{path}" || exit 125; ' for path in self.procs_files)
        return ["/bin/sh", "-c", script + 'exec "$@"', "strategos-cgroup-join"]

    def set_limits(self, *, pids_max: int, memory_bytes: int) -> None:
        """Set `pids.max` and the memory (and memory+swap) limits."""
        if "pids" in self.dirs:
            (self.dirs["pids"] / "pids.max").write_text(str(pids_max))
        if "memory" in self.dirs:
            memory = self.dirs["memory"]
            limit = memory / "memory.limit_in_bytes"
            memsw = memory / "memory.memsw.limit_in_bytes"
            # memsw must stay >= limit: raise memsw first when growing, limit first when shrinking.
            order = [limit, memsw]
            with contextlib.suppress(OSError, ValueError):
                if int(limit.read_text()) < memory_bytes:
                    order = [memsw, limit]
            for path in order:
                if path.exists():
                    path.write_text(str(memory_bytes))

    def members(self) -> set[int]:
        """Every pid in any of the run's hierarchies (host pid namespace)."""
        pids: set[int] = set()
        for path in self.procs_files:
            with contextlib.suppress(OSError):
                pids.update(int(pid) for pid in path.read_text().split())
        return pids

    def kill_all(self, timeout_s: float = 5.0) -> bool:
        """SIGKILL every process of the run; True when the cgroup is empty afterwards.

        With a freezer the group is frozen first, so nothing can fork while it is being killed;
        without one the kill is repeated until the member list stays empty.
        """
        if not self.members():
            return True
        deadline = time.monotonic() + timeout_s
        frozen = self._freeze(deadline)
        try:
            for pid in self.members():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            if frozen:
                self._write_state("THAWED")
        delay = 0.001
        while True:
            members = self.members()
            if not members:
                return True
            if time.monotonic() >= deadline:
                return False
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def stats(self) -> CgroupStats:
        """Peak pids, memory high-water mark, limit hits and OOM kills of the run so far."""
        pids = self.dirs.get("pids")
        memory = self.dirs.get("memory")
        return CgroupStats(
            pids_peak=_read_int(pids / "pids.peak") if pids else None,
            pids_limit_hits=_read_keyed(pids / "pids.events", "max") if pids else 0,
            memory_peak_bytes=_read_int(memory / "memory.max_usage_in_bytes") if memory else None,
            memory_limit_hits=(_read_int(memory / "memory.failcnt") or 0) if memory else 0,
            oom_kills=_read_keyed(memory / "memory.oom_control", "oom_kill") if memory else 0,
        )

    def remove(self, timeout_s: float = 2.0) -> None:
        """Remove the run's directories (retrying while the kernel finishes exiting tasks)."""
        deadline = time.monotonic() + timeout_s
        for controller, path in list(self.dirs.items()):
            while True:
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                        break
                    self.kill_all(timeout_s=0.2)
                    time.sleep(0.005)
            if not path.exists():
                del self.dirs[controller]

    def _freeze(self, deadline: float) -> bool:
        if "freezer" not in self.dirs or not self._write_state("FROZEN"):
            return False
        state = self.dirs["freezer"] / "freezer.state"
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if state.read_text().strip() == "FROZEN":
                    return True
            time.sleep(0.001)
        return True

    def _write_state(self, value: str) -> bool:
        try:
            (self.dirs["freezer"] / "freezer.state").write_text(value)
        except OSError:
            return False
        return True


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _read_keyed(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0
