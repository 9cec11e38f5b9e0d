"""Owner markers in the names of what a sandbox run leaves on the host.

A run creates host resources that outlive its process when that process is SIGKILLed: tmpfs
mounts and their directories, cgroups, runsc state. Each one's name says who made it, so the
janitor (`janitor.py`) can tell an orphan from a live run's resource without any shared registry
or lock: `strategos-sandbox-<kind>-<pid>-<start>-<pidns>-<random>`.

- `start` is the owner's start time (clock ticks since boot): a reused pid does not look alive;
- `pidns` is the inode of the owner's pid namespace: a pid only means something in its own
  namespace, so resources made in another one are never judged (nor touched).

gVisor's container cgroups keep runsc's `strategos-gvisor-<container id>` name; the container id
starts with the same owner tag.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CGROUP_KINDS",
    "DIRECTORY_KINDS",
    "GVISOR_CGROUP_PREFIX",
    "PREFIX",
    "Marked",
    "Owner",
    "current_owner",
    "name_prefix",
    "owner_of",
    "own_pid_namespace",
    "parse_marker",
]

PREFIX = "strategos-sandbox"
GVISOR_CGROUP_PREFIX = "strategos-gvisor"
# Kinds of marked resources. Directories (some of them tmpfs mount points):
WORKSPACE_KIND = "ws"  # a run's workspace tmpfs
SCRATCH_KIND = "tmp"  # a run's /tmp and /dev/shm tmpfs
ALIAS_KIND = "alias"  # a reachable bind of a workspace whose parents are private
RUNSC_STATE_KIND = "state"  # a GVisorSandbox's runsc --root
RUNSC_ROOTFS_KIND = "rootfs"  # a GVisorSandbox's root filesystem skeleton
RUNSC_BUNDLE_KIND = "bundle"  # one gVisor run's OCI bundle
CLAIMED_KIND = "reap"  # an orphan a janitor renamed to delete it alone
# cgroups:
RUN_CGROUP_KIND = "run"  # a local run's cgroup, one per hierarchy
PROBE_CGROUP_KIND = "probe"  # the writability probe of `detect_cgroups`
GVISOR_KIND = "gvisor"  # runsc's container cgroup
DIRECTORY_KINDS = frozenset(
    {
        WORKSPACE_KIND,
        SCRATCH_KIND,
        ALIAS_KIND,
        RUNSC_STATE_KIND,
        RUNSC_ROOTFS_KIND,
        RUNSC_BUNDLE_KIND,
        CLAIMED_KIND,
    }
)
CGROUP_KINDS = frozenset({RUN_CGROUP_KIND, PROBE_CGROUP_KIND, GVISOR_KIND})
_NAME = re.compile(
    rf"^(?:{PREFIX}-(?P<kind>[a-z]+)|(?P<gvisor>{GVISOR_CGROUP_PREFIX}))"
    r"-(?P<pid>\d+)-(?P<start>\d+)-(?P<ns>\d+)-[A-Za-z0-9_]+$"
)
_GONE_STATES = ("Z", "X", "x")


@dataclass(frozen=True)
class Owner:
    """The process that created a resource, identified across pid reuse."""

    pid: int
    start: int
    pidns: int

    @property
    def tag(self) -> str:
        """The `<pid>-<start>-<pidns>` part of a marked name."""
        return f"{self.pid}-{self.start}-{self.pidns}"

    def is_alive(self) -> bool:
        """False only when the owner is certainly gone (no such process, pid reused, zombie).

        A zombie counts as gone: it will never run its own cleanup again. (A main thread that
        exited before the others also shows as a zombie: then the process still runs.)
        """
        found = _state_and_start(self.pid)
        if found is None:
            return _exists(self.pid)
        state, start = found
        if start != self.start:
            return False
        return state not in _GONE_STATES or _threads(self.pid) > 1


@dataclass(frozen=True)
class Marked:
    """A parsed marked name: which kind of resource, made by whom."""

    kind: str
    owner: Owner

    def is_orphan(self, pidns: int) -> bool:
        """True when the owner lived in pid namespace `pidns` and is gone."""
        return self.owner.pidns == pidns and not self.owner.is_alive()


_current: Owner | None = None


def current_owner() -> Owner:
    """The current process as an owner (recomputed after a fork: the child has another pid)."""
    global _current
    pid = os.getpid()
    if _current is None or _current.pid != pid:
        _current = owner_of(pid) or Owner(pid, 0, own_pid_namespace())
    return _current


def owner_of(pid: int) -> Owner | None:
    """Process `pid` of our pid namespace as an owner, or None when there is no such process."""
    found = _state_and_start(pid)
    return None if found is None else Owner(pid, found[1], own_pid_namespace())


def name_prefix(kind: str) -> str:
    """`strategos-sandbox-<kind>-<owner tag>-`: append something unique to name a resource."""
    return f"{PREFIX}-{kind}-{current_owner().tag}-"


def parse_marker(name: str) -> Marked | None:
    """Read a marked name back; None for anything that is not one of ours."""
    match = _NAME.match(name)
    if match is None:
        return None
    owner = Owner(int(match["pid"]), int(match["start"]), int(match["ns"]))
    return Marked(match["kind"] or GVISOR_KIND, owner)


def own_pid_namespace() -> int:
    """Inode of this process's pid namespace (0 when /proc does not say)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def _exists(pid: int) -> bool:
    """Whether `pid` exists when /proc hides it from us (hidepid): then it cannot be judged."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _threads(pid: int) -> int:
    """How many threads `pid` still has (0 when it is gone)."""
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def _state_and_start(pid: int) -> tuple[str, int] | None:
    """State letter and start time of `pid` from /proc/<pid>/stat, or None if there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None
