"""Remove what SIGKILLed sandbox runs left on the host: containers, cgroups, mounts, directories.

A run cleans up after itself, but not when its process is killed outright (`kill -9`, the OOM
killer, a crashed host agent): its workspace and scratch tmpfs stay mounted, their directories
and its cgroups stay, and a gVisor container keeps running under an orphaned `runsc run`.
`sweep_orphans` finds them by the owner marker in their names (`markers.py`) and removes those
whose owner is gone, in this order:

1. runsc containers in the state directories of dead `GVisorSandbox`es (`runsc kill`, `delete`);
2. cgroups of dead runs (processes still in them are killed first), in every hierarchy;
3. tmpfs mounts of dead runs (found in /proc/self/mountinfo, wherever their root was);
4. directories of dead runs in the temp dir, the alias root, the parents of those mounts and
   any extra `roots`.

Anything without our marker, made in another pid namespace, or whose owner is alive is never
touched. Every step tolerates a concurrent janitor: a directory is first claimed by an atomic
rename (only one janitor wins, and the claimed name carries the claimer's own marker, so a
janitor killed mid-removal is cleaned up by the next one), and unmount/rmdir/kill simply fail
for the loser. `sweep_once` runs it once per process, from `make_sandbox`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tools.child_env import child_env
from tools.sandbox.cgroups import RunCgroup
from tools.sandbox.markers import (
    CGROUP_KINDS,
    CLAIMED_KIND,
    DIRECTORY_KINDS,
    RUNSC_STATE_KIND,
    Marked,
    name_prefix,
    own_pid_namespace,
    parse_marker,
)
from tools.sandbox.workspace import alias_root_path, remove_tree, unmount

__all__ = ["SweepReport", "sweep_once", "sweep_orphans"]

log = logging.getLogger(__name__)

_RUNSC_TIMEOUT_S = 20.0
_CGROUP_REMOVE_S = 2.0
_ESCAPE = re.compile(rb"\\([0-7]{3})")


@dataclass
class SweepReport:
    """What one sweep removed (resources another janitor removed first are not listed)."""

    containers: list[str] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    directories: list[str] = field(default_factory=list)

    @property
    def removed(self) -> int:
        """How many resources this sweep removed."""
        return len(self.containers) + len(self.cgroups) + len(self.mounts) + len(self.directories)

    def summary(self) -> str:
        """One line: counts, then the names."""
        parts = [
            (len(self.containers), "runsc containers", self.containers),
            (len(self.cgroups), "cgroups", self.cgroups),
            (len(self.mounts), "mounts", self.mounts),
            (len(self.directories), "directories", self.directories),
        ]
        counts = ", ".join(f"{count} {label}" for count, label, _ in parts)
        names = " ".join(dict.fromkeys(name for _, _, listed in parts for name in listed))
        return f"{counts}: {names}" if names else counts


@dataclass(frozen=True)
class _Mount:
    """One line of /proc/self/mountinfo, as far as the janitor needs it."""

    point: Path
    fstype: str
    options: frozenset[str]


_swept_pid: int | None = None
_once = threading.Lock()


def sweep_once() -> SweepReport | None:
    """`sweep_orphans` the first time it is called in this process; never raises.

    A failing sweep must not keep a sandbox from being built: it is logged and skipped.
    """
    global _swept_pid
    with _once:
        if _swept_pid == os.getpid():
            return None
        _swept_pid = os.getpid()
    try:
        return sweep_orphans()
    except Exception:
        log.warning("sandbox janitor: the sweep failed; leftovers stay", exc_info=True)
        return None


def sweep_orphans(roots: Iterable[Path] = ()) -> SweepReport:
    """Remove the containers, cgroups, mounts and directories of dead sandbox owners.

    `roots` adds directories to look for leftover workspaces in (a `workspace_root`); the temp
    dir and the alias root are always searched, and so are the parents of orphaned mounts.
    Logs one line with what was removed.
    """
    pidns = own_pid_namespace()
    report = SweepReport()
    mounts = _mount_table()
    orphan_mounts = [m for m in mounts if _is_orphan(m.point.name, DIRECTORY_KINDS, pidns)]
    folders = {Path(tempfile.gettempdir()), alias_root_path(), *roots}
    folders.update(m.point.parent for m in orphan_mounts)
    orphan_dirs = [path for folder in folders for path in _orphan_dirs(folder, pidns)]
    for state in orphan_dirs:
        if _kind(state.name) == RUNSC_STATE_KIND:
            report.containers += _destroy_containers(state)
    report.cgroups += _remove_orphan_cgroups(mounts, pidns)
    for mount in orphan_mounts:
        if unmount(mount.point):
            report.mounts.append(str(mount.point))
    still_mounted = {m.point for m in _mount_table()}
    for path in orphan_dirs:
        if path not in still_mounted and _claim_and_remove(path):
            report.directories.append(str(path))
    if report.removed:
        log.info("sandbox janitor: removed what dead runs left: %s", report.summary())
    else:
        log.debug("sandbox janitor: nothing left by dead runs")
    return report


def _kind(name: str) -> str | None:
    marked = parse_marker(name)
    return marked.kind if marked else None


def _is_orphan(name: str, kinds: frozenset[str], pidns: int) -> bool:
    marked: Marked | None = parse_marker(name)
    return marked is not None and marked.kind in kinds and marked.is_orphan(pidns)


def _orphan_dirs(folder: Path, pidns: int) -> list[Path]:
    """Marked directories (never symlinks) in `folder` whose owner is gone."""
    found: list[Path] = []
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if _is_orphan(entry.name, DIRECTORY_KINDS, pidns) and entry.is_dir(
                follow_symlinks=False
            ):
                found.append(Path(entry.path))
    return found


def _claim_and_remove(path: Path) -> bool:
    """Rename `path` to a name marked as ours, then delete it; False if another janitor won.

    The rename is atomic, so two janitors never delete one tree together; it fails (EBUSY)
    on a directory that is still a mount point, which is never deleted.
    """
    claimed = path.with_name(name_prefix(CLAIMED_KIND) + secrets.token_hex(6))
    try:
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode):
            return False
        path.rename(claimed)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.EBUSY):
            log.debug("sandbox janitor: cannot claim %s: %s", path, exc)
        return False
    remove_tree(claimed)
    return True


def _destroy_containers(state: Path) -> list[str]:
    """Kill and delete every runsc container recorded in a dead `GVisorSandbox`'s state dir.

    Its `runsc run` was started in its own session, so it (and the container) outlived the
    process; its cgroups go with the container.
    """
    runsc = shutil.which("runsc")
    if runsc is None:
        return []
    listing = _runsc(runsc, state, "list", "-quiet")
    destroyed: list[str] = []
    for container in listing.split() if listing else []:
        _runsc(runsc, state, "kill", "--all", container, "KILL")
        if _runsc(runsc, state, "delete", "--force", container) is not None:
            destroyed.append(container)
    return destroyed


def _runsc(runsc: str, state: Path, *args: str) -> str | None:
    """Run one runsc command on a state dir; its stdout, or None when it failed."""
    try:
        done = subprocess.run(
            [runsc, f"--root={state}", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_RUNSC_TIMEOUT_S,
            check=False,
            env=child_env(),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("sandbox janitor: runsc %s failed: %s", " ".join(args), exc)
        return None
    return done.stdout if done.returncode == 0 else None


def _remove_orphan_cgroups(mounts: list[_Mount], pidns: int) -> list[str]:
    """Kill the processes of dead runs' cgroups and remove them, in every cgroup hierarchy."""
    removed: list[str] = []
    seen: set[Path] = set()
    for mount in mounts:
        if mount.fstype not in ("cgroup", "cgroup2") or mount.point in seen:
            continue
        seen.add(mount.point)
        controller = "freezer" if "freezer" in mount.options else mount.fstype
        for group in _orphan_cgroups(mount.point, pidns):
            if _remove_cgroup_tree(group, controller):
                removed.append(str(group))
    return removed


def _orphan_cgroups(hierarchy: Path, pidns: int) -> Iterator[Path]:
    """Marked cgroups of dead owners anywhere in a hierarchy (not descending into them)."""
    for folder, subdirs, _ in os.walk(hierarchy):
        keep: list[str] = []
        for name in subdirs:
            if _is_orphan(name, CGROUP_KINDS, pidns):
                yield Path(folder) / name
            else:
                keep.append(name)
        subdirs[:] = keep


def _remove_cgroup_tree(group: Path, controller: str) -> bool:
    """Remove a cgroup and any child cgroups, children first; True if we removed `group`."""
    children = [Path(folder) for folder, _, _ in os.walk(group, topdown=False)]
    for child in children[:-1]:  # bottom-up: `group` itself comes last
        _remove_cgroup(child, controller)
    return _remove_cgroup(group, controller)


def _remove_cgroup(path: Path, controller: str) -> bool:
    """Kill what is left in one cgroup and rmdir it (retrying while tasks finish exiting)."""
    group = RunCgroup({controller: path})
    deadline = time.monotonic() + _CGROUP_REMOVE_S
    while True:
        group.kill_all(timeout_s=0.5)
        try:
            path.rmdir()
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                log.debug("sandbox janitor: cannot remove cgroup %s: %s", path, exc)
                return False
        time.sleep(0.01)


def _mount_table() -> list[_Mount]:
    """The mounts of our mount namespace, from /proc/self/mountinfo (escapes decoded)."""
    try:
        lines = Path("/proc/self/mountinfo").read_bytes().splitlines()
    except OSError:
        return []
    mounts: list[_Mount] = []
    for line in lines:
        fields = line.split()
        if b"-" not in fields:
            continue
        tail = fields[fields.index(b"-") + 1 :]
        point = _ESCAPE.sub(lambda m: bytes([int(m[1], 8)]), fields[4])
        options = frozenset(os.fsdecode(tail[2]).split(",")) if len(tail) > 2 else frozenset()
        mounts.append(_Mount(Path(os.fsdecode(point)), os.fsdecode(tail[0]), options))
    return mounts
