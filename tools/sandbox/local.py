"""Local sandbox: bubblewrap namespaces, rlimits and a per-run cgroup, on this host.

Each run gets a fresh workspace bound at `/workspace`, a read-only `/usr`, private `/proc`, `/dev`
and `/tmp`, no network (its own empty network namespace), no host environment and uid 65534.
Layers, outermost first:

- a **per-run cgroup** (`cgroups.py`): `pids.max` stops fork bombs (RLIMIT_NPROC does not when
  the caller is root), the memory limit bounds the whole run including its tmpfs pages, and at
  the end every process in it is killed and the cgroup removed;
- **host uid 65534**: when we run as root, bubblewrap itself is started as `nobody` (`setpriv`),
  so even the kernel sees the sandbox as an unprivileged user, not root in a user namespace;
- the **workspace is a tmpfs** of `SandboxLimits.disk_mb`, so filling it cannot fill the host
  disk, and hard links into it from elsewhere are impossible; `/tmp` and `/dev/shm` share a
  second one of `tmp_mb` and `tmp_files` (`workspace.py`);
- **bubblewrap** namespaces (user, pid, net, ipc, uts, mount, cgroup) with every capability
  dropped, new session (no TIOCSTI), pid 1 = the command, so nothing outlives it (`layout.py`);
- a **seccomp** filter (x86_64) refusing system calls the code never needs (keyrings, BPF,
  perf, io_uring, userfaultfd, ptrace, mount/namespace calls…), and no new privileges
  (`seccomp.py`);
- **rlimits** (CPU, address space, file size, open files, no core) on the command.

`strict=True` (the default) refuses to run when the cgroup or the tmpfs workspace cannot be set
up (`SandboxUnavailable`); `strict=False` degrades to namespaces + rlimits for development hosts.
A pool of pre-started sandboxes (`pool_size`, `pool.py`) takes bubblewrap's set-up off the
critical path: each waits, already isolated, for one command and is then thrown away. Every run,
cold or pre-started, is watched by `_supervise` (`supervise.py`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shutil
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath

from tools.child_env import child_env
from tools.sandbox.base import (
    PythonEntry,
    SandboxLimits,
    SandboxResult,
    SandboxUnavailable,
    validate_command,
    validate_workspace_path,
)
from tools.sandbox.cgroups import CgroupSupport, RunCgroup, detect_cgroups
from tools.sandbox.layout import (
    SANDBOX_UID,
    bwrap_argv,
    cgroup_caps,
    mount_args,
    prlimit_args,
    root_layout,
    under_root_link,
)
from tools.sandbox.pool import AGENT, Warm, WarmPool, wait_ready
from tools.sandbox.seccomp import DENIED_SYSCALLS_X86_64, seccomp_fd, seccomp_program
from tools.sandbox.spawn import ChildProcess, spawn
from tools.sandbox.supervise import kill_run, supervise
from tools.sandbox.teardown import close_at_exit, finish_run, teardown
from tools.sandbox.workspace import RunWorkspace, create_workspace
from tools.telemetry import SANDBOX_SECONDS, traced

__all__ = ["LocalSandbox"]

log = logging.getLogger(__name__)

_INSTALL_HINT = "install it with `apt-get install bubblewrap` or run `make setup`"
_PROBE_LIMITS = SandboxLimits(timeout_s=10, disk_mb=1, tmp_mb=1)


class LocalSandbox(PythonEntry):
    """Runs commands under bubblewrap on this machine; implements `tools.sandbox.Sandbox`.

    `python` must live under `/usr` (the only host tree mounted inside). Workspaces are created
    under `workspace_root` (default: the system temp dir). See the module docstring for the
    layers; `isolation` says which of them are active.
    """

    def __init__(
        self,
        *,
        python: str = "/usr/bin/python3",
        bwrap: str = "bwrap",
        workspace_root: Path | None = None,
        strict: bool = True,
        pool_size: int = 0,
        pool_limits: SandboxLimits | None = None,
    ) -> None:
        self.bwrap, self.prlimit = _host_tools(bwrap)
        _check_python(python)
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, not {pool_size}.")
        self.python = python
        self.workspace_root = workspace_root
        self.strict = strict
        self._layout = root_layout()
        self._seccomp = seccomp_program()
        self._probed = False
        self._is_root = os.geteuid() == 0
        self._setpriv = _find_setpriv(strict) if self._is_root else None
        self._cgroups = _find_cgroups(strict)
        self._tmpfs = self._is_root
        if strict and not self._tmpfs:
            raise SandboxUnavailable(
                "The local sandbox in strict mode mounts a size-capped tmpfs per workspace, which "
                "needs root; run as root, or pass strict=False (development machines only)."
            )
        self.pool_size = pool_size
        self.pool_limits = pool_limits or SandboxLimits()
        self._pool = WarmPool(pool_size, self.pool_limits, self._spawn_warm)
        close_at_exit(self)

    @property
    def isolation(self) -> dict[str, object]:
        """Which isolation layers are active (for reports and the security table)."""
        return {
            "namespaces": "user,pid,net,ipc,uts,mount,cgroup",
            "host_uid": SANDBOX_UID if self._setpriv else os.geteuid(),
            "cgroup": sorted(self._cgroups.parents) if self._cgroups else [],
            "workspace_tmpfs": self._tmpfs,
            "rlimits": "cpu,as,fsize,nofile,core",
            "seccomp": sorted(DENIED_SYSCALLS_X86_64) if self._seccomp else [],
            "pool_size": self.pool_size,
        }

    @property
    def _idle(self) -> list[Warm]:
        """The idle pre-started sandboxes (tests and benchmarks watch the pool fill)."""
        return self._pool.idle

    @traced("sandbox_run", SANDBOX_SECONDS, backend="local")
    async def run(
        self,
        files: Mapping[str, str],
        command: Sequence[str],
        limits: SandboxLimits | None = None,
        *,
        collect: Sequence[str] = (),
    ) -> SandboxResult:
        """Copy `files` into a fresh workspace, run `command` there, then delete the workspace.

        `collect` names workspace files to read back into `SandboxResult.files`.
        """
        validate_command(command)
        limits = limits or SandboxLimits()
        paths = {validate_workspace_path(key): content for key, content in files.items()}
        wanted = [validate_workspace_path(name) for name in collect]
        await self._ensure_usable()
        warm = self._pool.take(limits)
        if warm is None:
            return await self._run_cold(paths, list(command), limits, wanted)
        try:
            launch = functools.partial(warm.hand_over, paths, list(command), limits)
            return await self._watch(warm.workspace, warm.group, limits, wanted, launch)
        finally:
            # Refill after the run, so pre-starting does not compete with it for the CPU.
            self._pool.schedule_fill()

    def argv(self, workspace: Path, command: Sequence[str], limits: SandboxLimits) -> list[str]:
        """The bwrap + prlimit command line for a workspace path (for inspection and benchmarks).

        Runs use the same arguments prefixed by the cgroup join and, as root, `setpriv`; with a
        tmpfs workspace they also bind their capped scratch tmpfs at /tmp and /dev/shm.
        """
        return [
            *self._bwrap_argv(mount_args(workspace, None, limits)),
            *prlimit_args(self.prlimit, limits),
            *command,
        ]

    async def start_pool(self) -> None:
        """Fill the warm pool now (otherwise it fills after the first run) and wait for it."""
        if self.pool_size == 0:
            return
        await self._ensure_usable()
        await self._pool.fill()

    async def aclose(self) -> None:
        """Stop refilling and destroy the idle pre-started sandboxes."""
        await self._pool.aclose()

    def close(self) -> None:
        """Synchronous best-effort cleanup of the pool (also run at interpreter exit)."""
        self._pool.close()

    # -- internals -------------------------------------------------------------------------

    async def _run_cold(
        self,
        paths: Mapping[PurePosixPath, str],
        command: list[str],
        limits: SandboxLimits,
        wanted: Sequence[PurePosixPath],
    ) -> SandboxResult:
        """Start a fresh sandbox for one command: workspace, cgroup, bwrap, then `_watch`."""
        workspace, group = await asyncio.to_thread(self._prepare, paths, limits)
        tail = [*prlimit_args(self.prlimit, limits), *command]
        launch = functools.partial(self._start, workspace, group, limits, tail, stdin=False)
        return await self._watch(workspace, group, limits, wanted, launch)

    async def _watch(
        self,
        workspace: RunWorkspace,
        group: RunCgroup | None,
        limits: SandboxLimits,
        wanted: Sequence[PurePosixPath],
        launch: Callable[[], Awaitable[ChildProcess]],
    ) -> SandboxResult:
        """Launch the command, supervise it, then release the run whatever happened."""
        try:
            proc = await launch()
            result = await self._supervise(proc, group, limits)
        except BaseException:
            await asyncio.to_thread(teardown, workspace, group)
            raise
        return await asyncio.to_thread(finish_run, result, workspace, group, wanted)

    async def _supervise(
        self, proc: ChildProcess, group: RunCgroup | None, limits: SandboxLimits
    ) -> SandboxResult:
        """Collect output under the wall clock; kill the whole run on timeout or cancellation.

        Every run, cold or pre-started, passes here: fault-injection tests replace this method.
        """
        finished = await supervise(proc, limits, kill_run(proc, group))
        return finished.result()

    def _bwrap_argv(self, mounts: list[str], seccomp: int | None = None) -> list[str]:
        return bwrap_argv(
            self.bwrap, mounts, setpriv=self._setpriv, layout=self._layout, seccomp_fd=seccomp
        )

    def _prepare(
        self, paths: Mapping[PurePosixPath, str], limits: SandboxLimits
    ) -> tuple[RunWorkspace, RunCgroup | None]:
        """The run workspace with the files + run cgroup (blocking; called in a thread)."""
        workspace = create_workspace(
            self.workspace_root,
            limits,
            owner=SANDBOX_UID if self._setpriv else None,
            use_tmpfs=self._tmpfs,
        )
        try:
            workspace.write(paths)
            caps = cgroup_caps(limits)
            group = None if self._cgroups is None else RunCgroup.create(self._cgroups, **caps)
        except BaseException:
            workspace.remove()
            raise
        return workspace, group

    async def _start(
        self,
        workspace: RunWorkspace,
        group: RunCgroup | None,
        limits: SandboxLimits,
        tail: list[str],
        *,
        stdin: bool,
    ) -> ChildProcess:
        """Start `[cgroup join] [setpriv] bwrap … -- tail` with the seccomp filter on an fd."""
        fd: int | None = None
        if self._seccomp is not None:
            fd = await asyncio.to_thread(seccomp_fd, self._seccomp)
        try:
            mounts = mount_args(workspace.bind_source, workspace.scratch, limits)
            argv = [*self._bwrap_argv(mounts, fd), *tail]
            if group is not None:
                argv = [*group.join_command(), *argv]
            return await self._spawn(argv, stdin=stdin, pass_fds=() if fd is None else (fd,))
        finally:
            if fd is not None:
                os.close(fd)

    async def _spawn(
        self, argv: list[str], *, stdin: bool, pass_fds: tuple[int, ...] = ()
    ) -> ChildProcess:
        try:
            # bwrap clears the environment inside anyway; the host-side helpers (the cgroup
            # join shell, setpriv, bwrap's outer process) get no secrets to leak either.
            return await spawn(argv, stdin=stdin, pass_fds=pass_fds, env=child_env())
        except OSError as exc:
            raise SandboxUnavailable(
                f"Could not start bubblewrap ({self.bwrap}): {exc}; {_INSTALL_HINT}."
            ) from exc

    async def _ensure_usable(self) -> None:
        """Fail once with an actionable error if bwrap cannot build a sandbox on this host."""
        if self._probed:
            return
        result = await self._run_cold({}, ["true"], _PROBE_LIMITS, [])
        if not result.ok:
            raise SandboxUnavailable(
                f"bubblewrap at {self.bwrap} cannot create a sandbox on this host "
                f"(exit {result.exit_code}): {result.stderr.strip() or 'no message'}. Check that "
                "unprivileged user namespaces are enabled (sysctl user.max_user_namespaces > 0, "
                "kernel.unprivileged_userns_clone=1) or run `make setup`."
            )
        self._probed = True

    async def _spawn_warm(self) -> Warm:
        """Start a sandbox whose pid 1 is the pool's agent and wait until it is ready."""
        limits = self.pool_limits
        workspace, group = await asyncio.to_thread(self._prepare, {}, limits)
        try:
            tail = [self.python, "-I", "-S", "-c", AGENT]
            proc = await self._start(workspace, group, limits, tail, stdin=True)
            await wait_ready(proc)
        except BaseException:
            await asyncio.to_thread(teardown, workspace, group)
            raise
        return Warm(proc, workspace, group, asyncio.get_running_loop())


def _host_tools(bwrap: str) -> tuple[str, str]:
    """Paths of bwrap and prlimit; SandboxUnavailable saying how to install a missing one."""
    bwrap_path = shutil.which(bwrap)
    if bwrap_path is None:
        raise SandboxUnavailable(
            f"bubblewrap ({bwrap!r}) was not found on PATH; the local sandbox needs it: "
            f"{_INSTALL_HINT}."
        )
    prlimit_path = shutil.which("prlimit", path="/usr/bin:/bin")
    if prlimit_path is None:
        raise SandboxUnavailable(
            "prlimit was not found in /usr/bin; the local sandbox needs it for resource "
            "limits: install it with `apt-get install util-linux` or run `make setup`."
        )
    return bwrap_path, prlimit_path


def _check_python(python: str) -> None:
    """Refuse an interpreter path that will not exist inside the sandbox."""
    if "/" not in python:
        return
    if not os.access(python, os.X_OK):
        raise SandboxUnavailable(
            f"Python interpreter {python!r} does not exist or is not executable; "
            "install it with `apt-get install python3` or pass python=<path under /usr>."
        )
    if not Path(python).is_relative_to("/usr") and not under_root_link(python):
        raise SandboxUnavailable(
            f"Python interpreter {python!r} is outside /usr, which is the only host tree "
            "mounted in the sandbox; pass python=<path under /usr>, e.g. /usr/bin/python3."
        )


def _find_setpriv(strict: bool) -> str | None:
    """setpriv, which starts bwrap as uid 65534 when we are root (required when strict)."""
    setpriv = shutil.which("setpriv", path="/usr/bin:/bin")
    if setpriv is None and strict:
        raise SandboxUnavailable(
            "setpriv was not found in /usr/bin; running as root, the local sandbox needs "
            "it to start bubblewrap as uid 65534: `apt-get install util-linux`."
        )
    return setpriv


def _find_cgroups(strict: bool) -> CgroupSupport | None:
    """Per-run cgroup support, or None on a relaxed (strict=False) development host."""
    try:
        return detect_cgroups()
    except SandboxUnavailable:
        if strict:
            raise
        log.warning("local sandbox: running WITHOUT per-run cgroups (strict=False)")
        return None
