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
  dropped, new session (no TIOCSTI), pid 1 = the command, so nothing outlives it;
- a **seccomp** filter (x86_64) refusing system calls the code never needs (keyrings, BPF,
  perf, io_uring, userfaultfd, ptrace, mount/namespace calls…), and no new privileges;
- **rlimits** (CPU, address space, file size, open files, no core) on the command.

`strict=True` (the default) refuses to run when the cgroup or the tmpfs workspace cannot be set
up (`SandboxUnavailable`); `strict=False` degrades to namespaces + rlimits for development hosts.
A pool of pre-started sandboxes (`pool_size`) takes bubblewrap's set-up off the critical path:
each waits, already isolated, for one command and is then thrown away.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import errno
import json
import logging
import os
import platform
import shutil
import signal
import struct
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tools.sandbox.base import (
    LimitHit,
    PythonEntry,
    SandboxError,
    SandboxLimits,
    SandboxResult,
    SandboxUnavailable,
    validate_command,
    validate_workspace_path,
)
from tools.sandbox.cgroups import CgroupSupport, RunCgroup, detect_cgroups
from tools.sandbox.workspace import (
    SCRATCH_DIRS,
    Workspace,
    create_workspace,
    read_workspace_file,
)

__all__ = ["LocalSandbox", "Workspace", "read_workspace_file", "seccomp_program"]

log = logging.getLogger(__name__)

SANDBOX_UID = 65534
WORKSPACE = "/workspace"
_ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": WORKSPACE,
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
}
# Top-level directories that merged-/usr systems turn into symlinks into /usr.
_ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_CHUNK = 64 * 1024
_MIB = 1024 * 1024
# After a kill, how long to wait for the pipes to close before giving up on the rest of the output.
_DRAIN_GRACE_S = 5.0
# After killing the namespace, how long bwrap gets to notice before it is killed too.
_KILL_GRACE_S = 2.0
# Processes of the run that are not the user's: bubblewrap's outer process.
_BWRAP_OVERHEAD_PIDS = 1
_INSTALL_HINT = "install it with `apt-get install bubblewrap` or run `make setup`"
_COLLECT_MAX_BYTES = 4 * _MIB
# Up to this many bytes of files are written on the event loop for a pre-started sandbox.
_INLINE_WRITE_BYTES = 256 * 1024
# How long a pre-started sandbox may take to report ready.
_AGENT_START_S = 30.0

# The warm-pool agent: pid 1 of an idle sandbox. It says it is ready (one byte on stdout, read
# by the pool), blocks on stdin for one JSON request (argv + rlimits), points stdin at
# /dev/null, applies the limits and becomes the command.
_AGENT = """\
import json, os, resource, signal, sys
os.write(1, b"R")
line = sys.stdin.buffer.readline()
if not line:
    raise SystemExit(0)
req = json.loads(line)
fd = os.open("/dev/null", os.O_RDONLY)
os.dup2(fd, 0)
os.close(fd)
for name, soft, hard in req["rlimits"]:
    resource.setrlimit(getattr(resource, name), (soft, hard))
for name in ("SIGPIPE", "SIGXFSZ", "SIGINT"):
    signal.signal(getattr(signal, name), signal.SIG_DFL)
argv = req["argv"]
try:
    os.execvp(argv[0], argv)
except OSError as exc:
    sys.stderr.write("strategos-sandbox: failed to execute %s: %s\\n" % (argv[0], exc.strerror))
    os._exit(127 if exc.errno == 2 else 126)
"""

# seccomp: system calls the sandboxed code never needs, refused with EPERM (x86_64 numbers).
# Most already fail without capabilities; the filter also shuts kernel surfaces that do not
# need any (keyrings inherited from the host session, BPF, perf, io_uring, userfaultfd, ptrace).
_DENIED_SYSCALLS_X86_64 = {
    "ptrace": 101,
    "syslog": 103,
    "pivot_root": 155,
    "acct": 163,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "init_module": 175,
    "delete_module": 176,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "unshare": 272,
    "perf_event_open": 298,
    "open_by_handle_at": 304,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "finit_module": 313,
    "kexec_file_load": 320,
    "bpf": 321,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
}
_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_SYSCALL_BIT = 0x40000000
_SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_RET_ERRNO_EPERM = 0x00050000 | errno.EPERM


def seccomp_program() -> bytes | None:
    """A classic-BPF seccomp filter (struct sock_filter[]) for `bwrap --seccomp`, or None.

    Refuses `_DENIED_SYSCALLS_X86_64`, any other architecture and the x32 ABI with EPERM and
    allows everything else. Only built on x86_64 hosts (the numbers are per architecture).
    """
    if platform.machine() != "x86_64":
        return None
    ld_w_abs, jeq_k, jge_k, ret_k = 0x20, 0x15, 0x35, 0x06
    numbers = sorted(_DENIED_SYSCALLS_X86_64.values())
    count = len(numbers)
    # Layout: 0 load arch, 1 arch check, 2 load nr, 3 x32 check, 4.. one jeq per number,
    # then ALLOW, then DENY. Jump offsets are relative to the next instruction.
    deny = 5 + count
    program = [
        (ld_w_abs, 0, 0, 4),
        (jeq_k, 0, deny - 2, _AUDIT_ARCH_X86_64),
        (ld_w_abs, 0, 0, 0),
        (jge_k, deny - 4, 0, _X32_SYSCALL_BIT),
    ]
    for index, number in enumerate(numbers):
        position = 4 + index
        program.append((jeq_k, deny - position - 1, 0, number))
    program += [(ret_k, 0, 0, _SECCOMP_RET_ALLOW), (ret_k, 0, 0, _SECCOMP_RET_ERRNO_EPERM)]
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in program)


class _CappedBuffer:
    """Keeps the first `limit` bytes of a stream and drains the rest, so memory stays bounded."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(_CHUNK):
            room = self.limit - len(self.data)
            if room > 0:
                self.data += chunk[:room]
            if len(chunk) > room:
                self.truncated = True

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


@dataclass
class _Warm:
    """An idle pre-started sandbox: its agent waits on stdin for exactly one command."""

    proc: asyncio.subprocess.Process
    workspace: Workspace
    group: RunCgroup | None
    loop: asyncio.AbstractEventLoop


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
        if "/" in python:
            if not os.access(python, os.X_OK):
                raise SandboxUnavailable(
                    f"Python interpreter {python!r} does not exist or is not executable; "
                    "install it with `apt-get install python3` or pass python=<path under /usr>."
                )
            if not Path(python).is_relative_to("/usr") and not _under_root_link(python):
                raise SandboxUnavailable(
                    f"Python interpreter {python!r} is outside /usr, which is the only host tree "
                    "mounted in the sandbox; pass python=<path under /usr>, e.g. /usr/bin/python3."
                )
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, not {pool_size}.")
        self.python = python
        self.bwrap = bwrap_path
        self.prlimit = prlimit_path
        self.workspace_root = workspace_root
        self.strict = strict
        self._layout = _root_layout()
        self._seccomp = seccomp_program()
        self._probed = False
        self._is_root = os.geteuid() == 0
        self._setpriv: str | None = None
        if self._is_root:
            self._setpriv = shutil.which("setpriv", path="/usr/bin:/bin")
            if self._setpriv is None and strict:
                raise SandboxUnavailable(
                    "setpriv was not found in /usr/bin; running as root, the local sandbox needs "
                    "it to start bubblewrap as uid 65534: `apt-get install util-linux`."
                )
        self._cgroups: CgroupSupport | None = None
        try:
            self._cgroups = detect_cgroups()
        except SandboxUnavailable:
            if strict:
                raise
            log.warning("local sandbox: running WITHOUT per-run cgroups (strict=False)")
        self._tmpfs = self._is_root
        if strict and not self._tmpfs:
            raise SandboxUnavailable(
                "The local sandbox in strict mode mounts a size-capped tmpfs per workspace, which "
                "needs root; run as root, or pass strict=False (development machines only)."
            )
        self.pool_size = pool_size
        self.pool_limits = pool_limits or SandboxLimits()
        self._idle: list[_Warm] = []
        self._filler: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        atexit.register(_close_at_exit, weakref.ref(self))

    @property
    def isolation(self) -> dict[str, object]:
        """Which isolation layers are active (for reports and the security table)."""
        return {
            "namespaces": "user,pid,net,ipc,uts,mount,cgroup",
            "host_uid": SANDBOX_UID if self._setpriv else os.geteuid(),
            "cgroup": sorted(self._cgroups.parents) if self._cgroups else [],
            "workspace_tmpfs": self._tmpfs,
            "rlimits": "cpu,as,fsize,nofile,core",
            "seccomp": sorted(_DENIED_SYSCALLS_X86_64) if self._seccomp else [],
            "pool_size": self.pool_size,
        }

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
        warm = self._take_warm(limits)
        if warm is not None:
            try:
                return await self._run_warm(warm, paths, list(command), limits, wanted)
            finally:
                # Refill after the run, so pre-starting does not compete with it for the CPU.
                self._schedule_fill()
        workspace, group = await asyncio.to_thread(self._prepare, paths, limits)
        try:
            tail = [*self._prlimit_args(limits), *command]
            proc = await self._start(workspace, group, limits, tail, stdin=False)
            result = await self._supervise(proc, group, limits)
        except BaseException:
            await asyncio.to_thread(_teardown, workspace, group)
            raise
        return await asyncio.to_thread(_finish, result, workspace, group, wanted)

    def argv(self, workspace: Path, command: Sequence[str], limits: SandboxLimits) -> list[str]:
        """The bwrap + prlimit command line for a workspace path (for inspection and benchmarks).

        Runs use the same arguments prefixed by the cgroup join and, as root, `setpriv`; with a
        tmpfs workspace they also bind their capped scratch tmpfs at /tmp and /dev/shm.
        """
        return [
            *self._argv(_mount_args(workspace, None, limits), limits),
            *self._prlimit_args(limits),
            *command,
        ]

    async def start_pool(self) -> None:
        """Fill the warm pool now (otherwise it fills after the first run) and wait for it."""
        if self.pool_size == 0:
            return
        await self._ensure_usable()
        self._schedule_fill()
        if self._filler is not None:
            await asyncio.shield(self._filler)

    async def aclose(self) -> None:
        """Stop refilling and destroy the idle pre-started sandboxes."""
        self._closed = True
        if self._filler is not None:
            self._filler.cancel()
            with contextlib.suppress(BaseException):
                await self._filler
        idle, self._idle = self._idle, []
        for warm in idle:
            await self._discard(warm)

    def close(self) -> None:
        """Synchronous best-effort cleanup of the pool (also run at interpreter exit)."""
        self._closed = True
        idle, self._idle = self._idle, []
        for warm in idle:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(warm.proc.pid, signal.SIGKILL)
            _teardown(warm.workspace, warm.group)

    # -- internals -------------------------------------------------------------------------

    def _argv(
        self, mounts: list[str], limits: SandboxLimits, seccomp_fd: int | None = None
    ) -> list[str]:
        """Build `setpriv` (as root) + bwrap, up to and including the `--` before the command."""
        args: list[str] = []
        if self._setpriv is not None:
            args += [
                self._setpriv,
                f"--reuid={SANDBOX_UID}",
                f"--regid={SANDBOX_UID}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
            ]
        args += [
            self.bwrap,
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
        for name, value in _ENV.items():
            args += ["--setenv", name, value]
        args += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
        args += ["--ro-bind", "/usr", "/usr", *self._layout]
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += [*mounts, "--chdir", WORKSPACE, "--"]
        return args

    def _prlimit_args(self, limits: SandboxLimits) -> list[str]:
        return [
            self.prlimit,
            # The command is pid 1 of its namespace, which ignores SIGXCPU: soft = hard so the
            # kernel's SIGKILL comes at the limit itself.
            f"--cpu={limits.cpu_s}",
            f"--as={limits.memory_mb * _MIB}",
            f"--fsize={limits.file_size_mb * _MIB}",
            f"--nofile={limits.open_files}",
            "--core=0",
            "--",
        ]

    def _prepare(
        self, paths: Mapping[PurePosixPath, str], limits: SandboxLimits
    ) -> tuple[Workspace, RunCgroup | None]:
        """Workspace with the files + run cgroup (blocking; called in a thread)."""
        workspace = create_workspace(
            self.workspace_root,
            limits,
            owner=SANDBOX_UID if self._setpriv else None,
            use_tmpfs=self._tmpfs,
        )
        try:
            workspace.write(paths)
            group = self._new_cgroup(limits)
        except BaseException:
            workspace.remove()
            raise
        return workspace, group

    def _new_cgroup(self, limits: SandboxLimits) -> RunCgroup | None:
        if self._cgroups is None:
            return None
        return RunCgroup.create(
            self._cgroups,
            pids_max=limits.max_processes + _BWRAP_OVERHEAD_PIDS,
            memory_bytes=limits.memory_mb * _MIB,
        )

    async def _start(
        self,
        workspace: Workspace,
        group: RunCgroup | None,
        limits: SandboxLimits,
        tail: list[str],
        *,
        stdin: bool,
    ) -> asyncio.subprocess.Process:
        """Start `[cgroup join] [setpriv] bwrap … -- tail` with the seccomp filter on an fd."""
        fd: int | None = None
        if self._seccomp is not None:
            fd = await asyncio.to_thread(_seccomp_fd, self._seccomp)
        try:
            mounts = _mount_args(workspace.bind_source, workspace.scratch, limits)
            argv = self._argv(mounts, limits, fd)
            argv += tail
            if group is not None:
                argv = [*group.join_command(), *argv]
            return await self._spawn(argv, stdin=stdin, pass_fds=() if fd is None else (fd,))
        finally:
            if fd is not None:
                os.close(fd)

    async def _spawn(
        self, argv: list[str], *, stdin: bool, pass_fds: tuple[int, ...] = ()
    ) -> asyncio.subprocess.Process:
        try:
            return await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                pass_fds=pass_fds,
            )
        except OSError as exc:
            raise SandboxUnavailable(
                f"Could not start bubblewrap ({self.bwrap}): {exc}; {_INSTALL_HINT}."
            ) from exc

    async def _supervise(
        self, proc: asyncio.subprocess.Process, group: RunCgroup | None, limits: SandboxLimits
    ) -> SandboxResult:
        """Collect output under the wall clock; kill the whole run on timeout or cancellation."""
        out = _CappedBuffer(limits.max_output_bytes)
        err = _CappedBuffer(limits.max_output_bytes)
        start = time.monotonic()
        assert proc.stdout is not None and proc.stderr is not None
        readers = [
            asyncio.ensure_future(out.drain(proc.stdout)),
            asyncio.ensure_future(err.drain(proc.stderr)),
        ]
        waiter = asyncio.ensure_future(proc.wait())
        timed_out = False
        try:
            _, pending = await asyncio.wait([waiter, *readers], timeout=limits.timeout_s)
            if pending:
                timed_out = True
                await _terminate(proc, waiter, group)
            exit_code = await waiter
            duration = time.monotonic() - start
            _, unfinished = await asyncio.wait(readers, timeout=_DRAIN_GRACE_S)
            for task in unfinished:
                task.cancel()
        except BaseException:
            # Cancelled (or failed) while the sandbox runs: never leave it behind.
            try:
                await _terminate(proc, waiter, group)
            finally:
                _kill_group(proc)
                waiter.cancel()
                for task in readers:
                    task.cancel()
            raise
        hits: list[LimitHit] = []
        if timed_out:
            hits.append("timeout")
        if exit_code in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
            hits.append("cpu")
        if exit_code in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):
            hits.append("file_size")
        if out.truncated or err.truncated:
            hits.append("output")
        return SandboxResult(
            exit_code=exit_code,
            stdout=out.text(),
            stderr=err.text(),
            timed_out=timed_out,
            duration_s=round(duration, 3),
            output_truncated=out.truncated or err.truncated,
            limits_hit=tuple(hits),
        )

    async def _ensure_usable(self) -> None:
        """Fail once with an actionable error if bwrap cannot build a sandbox on this host."""
        if self._probed:
            return
        paths: dict[PurePosixPath, str] = {}
        limits = SandboxLimits(timeout_s=10, disk_mb=1, tmp_mb=1)
        workspace, group = await asyncio.to_thread(self._prepare, paths, limits)
        try:
            tail = [*self._prlimit_args(limits), "true"]
            proc = await self._start(workspace, group, limits, tail, stdin=False)
            result = await self._supervise(proc, group, limits)
        finally:
            await asyncio.to_thread(_teardown, workspace, group)
        if not result.ok:
            raise SandboxUnavailable(
                f"bubblewrap at {self.bwrap} cannot create a sandbox on this host "
                f"(exit {result.exit_code}): {result.stderr.strip() or 'no message'}. Check that "
                "unprivileged user namespaces are enabled (sysctl user.max_user_namespaces > 0, "
                "kernel.unprivileged_userns_clone=1) or run `make setup`."
            )
        self._probed = True

    # -- warm pool -------------------------------------------------------------------------

    def _take_warm(self, limits: SandboxLimits) -> _Warm | None:
        if self.pool_size == 0 or self._closed:
            return None
        loop = asyncio.get_running_loop()
        pool = self.pool_limits
        compatible = (limits.memory_mb, limits.disk_mb, limits.tmp_mb, limits.tmp_files) == (
            pool.memory_mb,
            pool.disk_mb,
            pool.tmp_mb,
            pool.tmp_files,
        )
        warm: _Warm | None = None
        if compatible:
            while self._idle:
                candidate = self._idle.pop(0)
                if candidate.loop is loop and candidate.proc.returncode is None:
                    warm = candidate
                    break
                task = asyncio.ensure_future(self._discard(candidate))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        if warm is None:
            self._schedule_fill()
        return warm

    def _schedule_fill(self) -> None:
        filling = self._filler is not None and not self._filler.done()
        if filling and self._filler is not None:
            # A filler left behind by a closed event loop never finishes: replace it.
            filling = self._filler.get_loop() is asyncio.get_running_loop()
        if self._closed or filling:
            return
        if len(self._idle) >= self.pool_size:
            return
        self._filler = asyncio.ensure_future(self._fill())

    async def _fill(self) -> None:
        while not self._closed and len(self._idle) < self.pool_size:
            try:
                warm = await self._spawn_warm()
            except SandboxError as exc:
                log.warning("local sandbox: could not pre-start a sandbox: %s", exc)
                return
            if self._closed:
                await self._discard(warm)
                return
            self._idle.append(warm)

    async def _spawn_warm(self) -> _Warm:
        limits = self.pool_limits
        workspace, group = await asyncio.to_thread(self._prepare, {}, limits)
        try:
            tail = [self.python, "-I", "-S", "-c", _AGENT]
            proc = await self._start(workspace, group, limits, tail, stdin=True)
            assert proc.stdout is not None
            try:
                ready = await asyncio.wait_for(proc.stdout.readexactly(1), _AGENT_START_S)
            except (TimeoutError, asyncio.IncompleteReadError) as exc:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
                raise SandboxError(f"A pre-started sandbox did not come up: {exc!r}") from exc
            if ready != b"R":
                raise SandboxError(f"A pre-started sandbox answered {ready!r} instead of ready")
        except BaseException:
            await asyncio.to_thread(_teardown, workspace, group)
            raise
        return _Warm(proc, workspace, group, asyncio.get_running_loop())

    async def _run_warm(
        self,
        warm: _Warm,
        paths: Mapping[PurePosixPath, str],
        command: list[str],
        limits: SandboxLimits,
        wanted: Sequence[PurePosixPath],
    ) -> SandboxResult:
        try:
            if sum(len(content) for content in paths.values()) <= _INLINE_WRITE_BYTES:
                warm.workspace.write(paths)  # a few small files: cheaper than a thread hop
            else:
                await asyncio.to_thread(warm.workspace.write, paths)
            if warm.group is not None:
                warm.group.set_limits(
                    pids_max=limits.max_processes + _BWRAP_OVERHEAD_PIDS,
                    memory_bytes=limits.memory_mb * _MIB,
                )
            request = {
                "argv": command,
                "rlimits": [
                    ["RLIMIT_CPU", limits.cpu_s, limits.cpu_s],
                    ["RLIMIT_AS", limits.memory_mb * _MIB, limits.memory_mb * _MIB],
                    ["RLIMIT_FSIZE", limits.file_size_mb * _MIB, limits.file_size_mb * _MIB],
                    ["RLIMIT_NOFILE", limits.open_files, limits.open_files],
                    ["RLIMIT_CORE", 0, 0],
                ],
            }
            assert warm.proc.stdin is not None
            warm.proc.stdin.write(json.dumps(request).encode() + b"\n")
            with contextlib.suppress(ConnectionError):
                await warm.proc.stdin.drain()
            warm.proc.stdin.close()
            result = await self._supervise(warm.proc, warm.group, limits)
        except BaseException:
            await asyncio.to_thread(_teardown, warm.workspace, warm.group)
            raise
        return await asyncio.to_thread(_finish, result, warm.workspace, warm.group, wanted)

    async def _discard(self, warm: _Warm) -> None:
        """Kill an idle sandbox (possibly from another, closed event loop) and clean up."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(warm.proc.pid, signal.SIGKILL)
        if warm.loop is asyncio.get_running_loop():
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(warm.proc.wait(), _KILL_GRACE_S)
        await asyncio.to_thread(_teardown, warm.workspace, warm.group)


def _finish(
    result: SandboxResult,
    workspace: Workspace,
    group: RunCgroup | None,
    wanted: Sequence[PurePosixPath],
) -> SandboxResult:
    """After the run: kill leftovers, note cgroup limit hits, read files back, clean up."""
    hits = list(result.limits_hit)
    files: dict[str, str] = {}
    try:
        if group is not None:
            group.kill_all()
            stats = group.stats()
            if stats.pids_limit_hits and "processes" not in hits:
                hits.append("processes")
            if (stats.oom_kills or stats.memory_limit_hits) and "memory" not in hits:
                hits.append("memory")
        if wanted:
            files = workspace.collect(wanted, _COLLECT_MAX_BYTES)
    finally:
        _teardown(workspace, group)
    return result.model_copy(update={"files": files, "limits_hit": tuple(hits)})


def _teardown(workspace: Workspace, group: RunCgroup | None) -> None:
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


def _close_at_exit(ref: weakref.ReferenceType[LocalSandbox]) -> None:
    sandbox = ref()
    if sandbox is not None:
        sandbox.close()


async def _terminate(
    proc: asyncio.subprocess.Process, waiter: asyncio.Future[int], group: RunCgroup | None
) -> None:
    """Kill the sandbox so that bwrap reaps it: no survivors and no zombies left for init.

    SIGKILL to the command (bwrap's only child, pid 1 of the sandbox) ends every process of the
    pid namespace; bwrap then exits. The cgroup kill catches anything else, and the process-group
    kill is the last fallback if bwrap does not follow.
    """
    if proc.returncode is None:
        for pid in _children(proc.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    try:
        await asyncio.wait_for(asyncio.shield(waiter), _KILL_GRACE_S)
    except TimeoutError:
        if group is not None:
            await asyncio.to_thread(group.kill_all, 1.0)
        _kill_group(proc)
        await waiter


def _children(pid: int) -> list[int]:
    """Direct children of `pid`; the kernel keeps this list, the sandbox cannot forge it."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL bwrap's process group (bwrap itself); --die-with-parent takes the rest."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _mount_args(workspace: Path, scratch: Workspace | None, limits: SandboxLimits) -> list[str]:
    """The bubblewrap mounts for /tmp, /dev/shm and /workspace.

    With a scratch tmpfs (as root) its directories are bound at /tmp and /dev/shm, capped in
    size and inodes. Without one, bubblewrap's own tmpfs stands in: capped in size at the
    memory budget only (the memory cgroup bounds what its inodes cost).
    """
    args: list[str] = []
    for name, target in SCRATCH_DIRS.items():
        if scratch is None:
            args += ["--size", str(limits.memory_mb * _MIB), "--tmpfs", target]
        else:
            args += ["--bind", str(scratch.bind_source / name), target]
    return [*args, "--bind", str(workspace), WORKSPACE]


def _root_layout() -> list[str]:
    """Mirror the host's /bin, /lib… as symlinks (merged /usr) or read-only binds (split)."""
    args: list[str] = []
    for name in _ROOT_LINKS:
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{name}"]
    return args


def _under_root_link(path: str) -> bool:
    """True for paths like /bin/python3 that are mounted inside through `_root_layout`."""
    parts = Path(path).parts
    return len(parts) > 1 and parts[1] in _ROOT_LINKS


def _seccomp_fd(program: bytes) -> int:
    """A memfd holding the seccomp program for bwrap (made off the event loop)."""
    fd = os.memfd_create("strategos-seccomp", os.MFD_CLOEXEC)
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
