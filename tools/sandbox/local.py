"""Local sandbox: bubblewrap namespaces plus rlimits, for running model-written code on this host.

Each run gets a fresh workspace directory bound at `/workspace`, a read-only `/usr`, private
`/proc`, `/dev` and `/tmp`, no network (its own empty network namespace), no host environment and
uid 65534. Limits are applied with `prlimit` inside the sandbox, so they bind the user's command
but not bubblewrap itself; the wall clock is enforced here with asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from tools.sandbox.base import (
    SandboxError,
    SandboxLimits,
    SandboxResult,
    SandboxUnavailable,
    validate_workspace_path,
)

__all__ = ["LocalSandbox"]

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
_INSTALL_HINT = "install it with `apt-get install bubblewrap` or run `make setup`"


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


class LocalSandbox:
    """Runs commands under bubblewrap on this machine; implements `tools.sandbox.Sandbox`.

    `python` must live under `/usr` (the only host tree mounted inside). Workspaces are created
    under `workspace_root` (default: the system temp dir) with mode 0700: bubblewrap maps the
    sandbox uid 65534 onto the calling user, so the owner-only directory is writable inside and
    private outside.
    """

    def __init__(
        self,
        *,
        python: str = "/usr/bin/python3",
        bwrap: str = "bwrap",
        workspace_root: Path | None = None,
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
        self.python = python
        self.bwrap = bwrap_path
        self.prlimit = prlimit_path
        self.workspace_root = workspace_root
        self._layout = _root_layout()
        self._probed = False

    async def run(
        self,
        files: Mapping[str, str],
        command: Sequence[str],
        limits: SandboxLimits | None = None,
    ) -> SandboxResult:
        """Copy `files` into a fresh workspace, run `command` there, then delete the workspace."""
        if isinstance(command, str) or not command:
            raise ValueError(
                f"command must be a non-empty list of arguments, e.g. ['python3', 'main.py'], "
                f"not {command!r}."
            )
        limits = limits or SandboxLimits()
        paths = {validate_workspace_path(key): content for key, content in files.items()}
        await self._ensure_usable()
        workspace = await asyncio.to_thread(self._make_workspace, paths)
        try:
            return await self._execute(workspace, list(command), limits)
        finally:
            await asyncio.to_thread(_remove_tree, workspace)

    async def run_python(
        self,
        files: Mapping[str, str],
        entry: str,
        limits: SandboxLimits | None = None,
    ) -> SandboxResult:
        """Run `python3 <entry>` over `files` with the configured interpreter."""
        validate_workspace_path(entry)
        return await self.run(files, [self.python, entry], limits)

    def argv(self, workspace: Path, command: Sequence[str], limits: SandboxLimits) -> list[str]:
        """Build the full bwrap + prlimit command line (public so benchmarks can inspect it)."""
        memory = limits.memory_mb * _MIB
        args = [
            self.bwrap,
            "--unshare-all",
            # Explicit, not "try": without a user namespace --uid and --disable-userns fail.
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            # The command is the namespace's pid 1: when it exits every leftover process dies,
            # and bwrap reaps it (bwrap's own pid-1 reaper is left as a zombie for host init).
            "--as-pid-1",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--hostname",
            "sandbox",
            "--clearenv",
        ]
        for name, value in _ENV.items():
            args += ["--setenv", name, value]
        args += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
        args += ["--ro-bind", "/usr", "/usr", *self._layout]
        args += ["--proc", "/proc", "--dev", "/dev"]
        # tmpfs lives in RAM, so cap each one at the memory budget.
        args += ["--size", str(memory), "--tmpfs", "/tmp"]
        args += ["--size", str(memory), "--tmpfs", "/dev/shm"]
        args += ["--bind", str(workspace), WORKSPACE, "--chdir", WORKSPACE]
        args += [
            "--",
            self.prlimit,
            f"--cpu={limits.cpu_s}",
            f"--as={memory}",
            f"--fsize={limits.file_size_mb * _MIB}",
            f"--nofile={limits.open_files}",
            "--core=0",
            "--",
            *command,
        ]
        return args

    async def _ensure_usable(self) -> None:
        """Fail once with an actionable error if bwrap cannot build a sandbox on this host."""
        if self._probed:
            return
        workspace = await asyncio.to_thread(self._make_workspace, {})
        try:
            result = await self._execute(workspace, ["true"], SandboxLimits(timeout_s=10))
        finally:
            await asyncio.to_thread(_remove_tree, workspace)
        if not result.ok:
            raise SandboxUnavailable(
                f"bubblewrap at {self.bwrap} cannot create a sandbox on this host "
                f"(exit {result.exit_code}): {result.stderr.strip() or 'no message'}. Check that "
                "unprivileged user namespaces are enabled (sysctl user.max_user_namespaces > 0, "
                "kernel.unprivileged_userns_clone=1) or run `make setup`."
            )
        self._probed = True

    def _make_workspace(self, files: Mapping[PurePosixPath, str]) -> Path:
        root = Path(tempfile.mkdtemp(prefix="strategos-sandbox-", dir=self.workspace_root))
        try:
            for rel, content in files.items():
                target = root.joinpath(*rel.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content, encoding="utf-8")
        except OSError as exc:
            _remove_tree(root)
            raise SandboxError(
                f"Could not write {exc.filename or rel} into the sandbox workspace: "
                f"{exc.strerror}. Check that no file name is also used as a directory name."
            ) from exc
        except BaseException:
            _remove_tree(root)
            raise
        return root

    async def _execute(
        self, workspace: Path, command: list[str], limits: SandboxLimits
    ) -> SandboxResult:
        argv = self.argv(workspace, command, limits)
        out = _CappedBuffer(limits.max_output_bytes)
        err = _CappedBuffer(limits.max_output_bytes)
        start = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise SandboxUnavailable(
                f"Could not start bubblewrap ({self.bwrap}): {exc}; {_INSTALL_HINT}."
            ) from exc
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
                await _terminate(proc, waiter)
            exit_code = await waiter
            duration = time.monotonic() - start
            _, unfinished = await asyncio.wait(readers, timeout=_DRAIN_GRACE_S)
            for task in unfinished:
                task.cancel()
        except BaseException:
            # Cancelled (or failed) while the sandbox runs: never leave it behind.
            try:
                await _terminate(proc, waiter)
            finally:
                _kill_group(proc)
                waiter.cancel()
                for task in readers:
                    task.cancel()
            raise
        return SandboxResult(
            exit_code=exit_code,
            stdout=out.text(),
            stderr=err.text(),
            timed_out=timed_out,
            duration_s=round(duration, 3),
            output_truncated=out.truncated or err.truncated,
        )


async def _terminate(proc: asyncio.subprocess.Process, waiter: asyncio.Future[int]) -> None:
    """Kill the sandbox so that bwrap reaps it: no survivors and no zombies left for init.

    With --new-session the command (bwrap's only child, pid 1 of the sandbox) sits in its own
    session, so killing our process group would orphan it. SIGKILL to it ends every process of the
    pid namespace; bwrap then exits. The group kill is the fallback if bwrap does not follow.
    """
    if proc.returncode is None:
        for pid in _children(proc.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    try:
        await asyncio.wait_for(asyncio.shield(waiter), _KILL_GRACE_S)
    except TimeoutError:
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


def _remove_tree(root: Path) -> None:
    """Delete a workspace even if the sandboxed code removed permissions from its own files."""

    def make_writable_and_retry(func: object, path: str, _exc: BaseException) -> None:
        with contextlib.suppress(OSError):
            parent = os.path.dirname(path)
            os.chmod(parent, os.stat(parent).st_mode | stat.S_IRWXU)
            if os.path.isdir(path) and not os.path.islink(path):
                os.chmod(path, stat.S_IRWXU)
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)

    shutil.rmtree(root, onexc=make_writable_and_retry)
