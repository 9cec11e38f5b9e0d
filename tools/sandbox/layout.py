"""What the inside of a host-kernel sandbox looks like, and the bubblewrap command that builds it.

The local and gVisor backends agree on the inside: uid 65534, the workspace at `/workspace`, a
fixed environment and the host's `/bin → usr/bin` style links; a run cannot tell them apart by
its paths. The local backend builds it with bubblewrap: `setpriv` (as root), then `bwrap` with
every namespace, no capabilities and a read-only `/usr`, then `prlimit` for the rlimits.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tools.sandbox.base import SandboxLimits
from tools.sandbox.workspace import SCRATCH_DIRS, RunWorkspace

__all__ = [
    "MIB",
    "ROOT_LINKS",
    "SANDBOX_ENV",
    "SANDBOX_UID",
    "WORKSPACE",
    "bwrap_argv",
    "cgroup_caps",
    "mount_args",
    "prlimit_args",
    "root_layout",
    "under_root_link",
]

SANDBOX_UID = 65534
WORKSPACE = "/workspace"
SANDBOX_ENV: Mapping[str, str] = {
    "PATH": "/usr/bin:/bin",
    "HOME": WORKSPACE,
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
}
"""The whole environment of sandboxed code (nothing of the host's is passed in)."""
ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
"""Top-level directories that merged-/usr systems turn into symlinks into /usr."""
MIB = 1024 * 1024
# Processes of the run that are not the user's: bubblewrap's outer process.
_BWRAP_OVERHEAD_PIDS = 1


def bwrap_argv(
    bwrap: str,
    mounts: list[str],
    *,
    setpriv: str | None,
    layout: list[str],
    seccomp_fd: int | None = None,
) -> list[str]:
    """Build `setpriv` (as root) + bwrap, up to and including the `--` before the command."""
    args = _setpriv_args(setpriv)
    args += [
        bwrap,
        "--unshare-all",
        # Explicit, not "try": without a user namespace --uid and --disable-userns fail.
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        # The command is the namespace's pid 1: when it exits every leftover process dies.
        "--as-pid-1",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--hostname",
        "sandbox",
        "--clearenv",
    ]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    for name, value in SANDBOX_ENV.items():
        args += ["--setenv", name, value]
    args += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    args += ["--ro-bind", "/usr", "/usr", *layout]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += [*mounts, "--chdir", WORKSPACE, "--"]
    return args


def _setpriv_args(setpriv: str | None) -> list[str]:
    """Start bwrap as uid 65534 with no capabilities, so the kernel never sees root inside."""
    if setpriv is None:
        return []
    return [
        setpriv,
        f"--reuid={SANDBOX_UID}",
        f"--regid={SANDBOX_UID}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
    ]


def prlimit_args(prlimit: str, limits: SandboxLimits) -> list[str]:
    """`prlimit … --` setting the run's rlimits on the command it then executes."""
    return [
        prlimit,
        # The command is pid 1 of its namespace, which ignores SIGXCPU: soft = hard so the
        # kernel's SIGKILL comes at the limit itself.
        f"--cpu={limits.cpu_s}",
        f"--as={limits.memory_mb * MIB}",
        f"--fsize={limits.file_size_mb * MIB}",
        f"--nofile={limits.open_files}",
        "--core=0",
        "--",
    ]


def cgroup_caps(limits: SandboxLimits) -> dict[str, int]:
    """The run cgroup's `pids_max` and `memory_bytes` for `limits` (bwrap's own pid included)."""
    return {
        "pids_max": limits.max_processes + _BWRAP_OVERHEAD_PIDS,
        "memory_bytes": limits.memory_mb * MIB,
    }


def mount_args(workspace: Path, scratch: RunWorkspace | None, limits: SandboxLimits) -> list[str]:
    """The bubblewrap mounts for /tmp, /dev/shm and /workspace.

    With a scratch tmpfs (as root) its directories are bound at /tmp and /dev/shm, capped in
    size and inodes. Without one, bubblewrap's own tmpfs stands in: capped in size at the
    memory budget only (the memory cgroup bounds what its inodes cost).
    """
    args: list[str] = []
    for name, target in SCRATCH_DIRS.items():
        if scratch is None:
            args += ["--size", str(limits.memory_mb * MIB), "--tmpfs", target]
        else:
            args += ["--bind", str(scratch.bind_source / name), target]
    return [*args, "--bind", str(workspace), WORKSPACE]


def root_layout() -> list[str]:
    """Mirror the host's /bin, /lib… as symlinks (merged /usr) or read-only binds (split)."""
    args: list[str] = []
    for name in ROOT_LINKS:
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{name}"]
    return args


def under_root_link(path: str) -> bool:
    """True for paths like /bin/python3 that are mounted inside through `root_layout`."""
    parts = Path(path).parts
    return len(parts) > 1 and parts[1] in ROOT_LINKS
