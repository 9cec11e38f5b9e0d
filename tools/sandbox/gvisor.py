"""gVisor sandbox: each run is an OCI container under `runsc run`, with its own user-space kernel.

The user's code talks to gVisor's Sentry, not to the host kernel: a kernel exploit in the code
has to break gVisor first. Each run gets a generated OCI bundle (`gvisor_bundle.py`):

- a read-only root filesystem that is an empty skeleton directory (mount points and the host's
  `/bin → usr/bin`-style links), with the host `/usr` bind-mounted read-only on top;
- `/workspace` the run's size-capped host tmpfs (read-write) and `/tmp` a directory of its
  scratch tmpfs, capped in size and inodes (the Sentry's own tmpfs takes no inode cap);
- uid/gid 65534, no capabilities, `noNewPrivileges`, a cleared environment;
- new pid, network, ipc, uts and mount namespaces; `--network=none` gives it loopback only;
- a cgroup (created by runsc, nested under our own cgroup) with `pids.limit` ≥ 256 (the Sentry
  and Gofer threads are host tasks and need headroom) and a memory limit of the run's budget
  plus the Sentry's own overhead; rlimits (CPU, address space, file size, open files, core) on
  the process itself.

`runsc do` is never used: it shares the host root filesystem with the sandbox. The state
directory, skeleton, bundles and container ids carry the owner marker of `markers.py`, so the
janitor can destroy the containers of a SIGKILLed process and remove what they left.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from tools.child_env import child_env
from tools.sandbox.base import (
    PythonEntry,
    SandboxLimits,
    SandboxResult,
    SandboxUnavailable,
    validate_command,
    validate_workspace_path,
)
from tools.sandbox.cgroups import CGROUP_ROOT, _own_cgroup_paths
from tools.sandbox.gvisor_bundle import make_skeleton, oci_spec
from tools.sandbox.layout import SANDBOX_UID
from tools.sandbox.markers import (
    GVISOR_CGROUP_PREFIX,
    RUNSC_BUNDLE_KIND,
    RUNSC_STATE_KIND,
    current_owner,
    name_prefix,
)
from tools.sandbox.spawn import ChildProcess, spawn
from tools.sandbox.supervise import kill_group, supervise
from tools.sandbox.teardown import COLLECT_MAX_BYTES, close_at_exit
from tools.sandbox.workspace import RunWorkspace, create_workspace
from tools.telemetry import SANDBOX_SECONDS, traced

__all__ = ["GVisorSandbox"]

Platform = Literal["ptrace", "kvm", "systrap"]
_INSTALL_HINT = "install it with `apt-get install runsc` (Debian package `runsc`)"
_KILL_GRACE_S = 3.0
_CPU_POLL_S = 0.2


class GVisorSandbox(PythonEntry):
    """Runs commands in a gVisor container; implements `tools.sandbox.Sandbox`.

    `platform="ptrace"` works everywhere, including inside VMs without nested virtualisation
    (systrap needs a newer runsc than Debian 12 ships; kvm needs /dev/kvm and a runsc that
    supports the host kernel). `memory_overhead_mb` is added to the run's memory budget for the
    cgroup, because the Sentry's own memory is charged there too.
    """

    def __init__(
        self,
        *,
        runsc: str = "runsc",
        platform: Platform = "ptrace",
        python: str = "/usr/bin/python3",
        workspace_root: Path | None = None,
        state_root: Path | None = None,
        memory_overhead_mb: int = 256,
        extra_flags: Sequence[str] = (),
    ) -> None:
        runsc_path = shutil.which(runsc)
        if runsc_path is None:
            raise SandboxUnavailable(
                f"gVisor's runsc ({runsc!r}) was not found on PATH; the gvisor sandbox needs it: "
                f"{_INSTALL_HINT}."
            )
        if os.geteuid() != 0:
            raise SandboxUnavailable(
                "The gvisor sandbox runs `runsc` as root (it creates cgroups and namespaces); "
                "run as root, or use the local sandbox."
            )
        self.runsc = runsc_path
        self.platform = platform
        self.python = python
        self.workspace_root = workspace_root
        self.memory_overhead_mb = memory_overhead_mb
        self.extra_flags = list(extra_flags)
        self._own_state = state_root is None
        self.state_root = state_root or Path(tempfile.mkdtemp(prefix=name_prefix(RUNSC_STATE_KIND)))
        self.state_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._rootfs: Path | None = None
        self._probed = False
        close_at_exit(self)

    @property
    def isolation(self) -> dict[str, object]:
        """Which isolation layers are active (for reports and the security table)."""
        return {
            "kernel": f"gVisor Sentry ({self.platform})",
            "namespaces": "pid,net,ipc,uts,mount",
            "network": "none",
            "uid": SANDBOX_UID,
            "rootfs": "read-only skeleton + /usr read-only",
            "workspace_tmpfs": True,
        }

    def global_flags(self) -> list[str]:
        """The runsc flags placed before the subcommand."""
        return [
            f"--root={self.state_root}",
            f"--platform={self.platform}",
            "--network=none",
            "--host-uds=none",
            # Apply the spec's seccomp filter (`gvisor_bundle.SECCOMP`) to the code in the Sentry.
            "--oci-seccomp",
            *self.extra_flags,
        ]

    @traced("sandbox_run", SANDBOX_SECONDS, backend="gvisor")
    async def run(
        self,
        files: Mapping[str, str],
        command: Sequence[str],
        limits: SandboxLimits | None = None,
        *,
        collect: Sequence[str] = (),
    ) -> SandboxResult:
        """Copy `files` into a fresh workspace, run `command` in a new container, clean up."""
        validate_command(command)
        limits = limits or SandboxLimits()
        paths = {validate_workspace_path(key): content for key, content in files.items()}
        wanted = [validate_workspace_path(name) for name in collect]
        await self._ensure_usable()
        return await self._run(paths, list(command), limits, wanted)

    def spec(
        self,
        container_id: str,
        workspace: Path,
        command: Sequence[str],
        limits: SandboxLimits,
        *,
        tmp: Path,
    ) -> dict[str, Any]:
        """The OCI runtime spec (config.json) for one run; `tmp` is the host dir bound at /tmp."""
        return oci_spec(
            container_id,
            command,
            limits,
            rootfs=self._skeleton(),
            workspace=workspace,
            tmp=tmp,
            memory_overhead_mb=self.memory_overhead_mb,
        )

    async def aclose(self) -> None:
        """Remove the private runsc state directory and root filesystem skeleton."""
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Synchronous `aclose`."""
        if self._rootfs is not None:
            shutil.rmtree(self._rootfs.parent, ignore_errors=True)
            self._rootfs = None
        if self._own_state:
            shutil.rmtree(self.state_root, ignore_errors=True)

    # -- internals -------------------------------------------------------------------------

    def _skeleton(self) -> Path:
        """The read-only root filesystem shared by this backend's runs (made on first use)."""
        if self._rootfs is None:
            self._rootfs = make_skeleton()
        return self._rootfs

    async def _ensure_usable(self) -> None:
        if self._probed:
            return
        limits = SandboxLimits(timeout_s=30, disk_mb=1, tmp_mb=1)
        result = await self._run({}, ["/usr/bin/true"], limits, [])
        if not result.ok:
            raise SandboxUnavailable(
                f"gVisor (`{self.runsc} {' '.join(self.global_flags())} run`) cannot start a "
                f"container on this host (exit {result.exit_code}, timed out: {result.timed_out}):"
                f" {result.stderr.strip()[-800:] or 'no message'}. Try another platform "
                "(GVisorSandbox(platform='ptrace')) or check that cgroups are writable."
            )
        self._probed = True

    async def _run(
        self,
        paths: Mapping[PurePosixPath, str],
        command: list[str],
        limits: SandboxLimits,
        wanted: Sequence[PurePosixPath],
    ) -> SandboxResult:
        # The owner tag makes the container (and its cgroups) recognisable to the janitor.
        container_id = f"{current_owner().tag}-{secrets.token_hex(4)}"
        workspace, bundle = await asyncio.to_thread(self._prepare, paths, limits)
        try:
            assert workspace.scratch is not None
            tmp = workspace.scratch.path / "tmp"
            spec = self.spec(container_id, workspace.path, command, limits, tmp=tmp)
            (bundle / "config.json").write_text(json.dumps(spec))
            result = await self._execute(container_id, bundle, limits)
            if wanted:
                files = await asyncio.to_thread(workspace.collect, wanted, COLLECT_MAX_BYTES)
                result = result.model_copy(update={"files": files})
            return result
        finally:
            await asyncio.to_thread(_cleanup, workspace, bundle)

    def _prepare(
        self, paths: Mapping[PurePosixPath, str], limits: SandboxLimits
    ) -> tuple[RunWorkspace, Path]:
        workspace = create_workspace(self.workspace_root, limits, owner=SANDBOX_UID, use_tmpfs=True)
        try:
            workspace.write(paths)
            bundle = Path(tempfile.mkdtemp(prefix=name_prefix(RUNSC_BUNDLE_KIND)))
        except BaseException:
            workspace.remove()
            raise
        return workspace, bundle

    async def _execute(
        self, container_id: str, bundle: Path, limits: SandboxLimits
    ) -> SandboxResult:
        argv = [self.runsc, *self.global_flags(), "run", "--bundle", str(bundle), container_id]
        try:
            # the container's own environment is set in its spec
            proc = await spawn(argv, stdin=False, env=child_env())
        except OSError as exc:
            raise SandboxUnavailable(f"Could not start runsc ({self.runsc}): {exc}.") from exc
        seen: dict[str, int] = {}
        watchdog = asyncio.ensure_future(_cpu_watchdog(container_id, limits.cpu_s, seen))
        stop = functools.partial(self._destroy, container_id, proc)
        try:
            finished = await supervise(proc, limits, stop, watchdog=watchdog)
        finally:
            watchdog.cancel()
            # `runsc run` deletes the container when it exits; make sure of it on every path.
            await self._delete(container_id)
        return finished.result(memory=_memory_hit(seen, finished.exit_code))

    async def _destroy(
        self, container_id: str, proc: ChildProcess, waiter: asyncio.Future[int]
    ) -> None:
        """Kill every process of the container, then make sure `runsc run` itself is gone."""
        await self._runsc_quiet("kill", "--all", container_id, "KILL")
        try:
            await asyncio.wait_for(asyncio.shield(waiter), _KILL_GRACE_S)
        except TimeoutError:
            await self._delete(container_id)
            kill_group(proc)
            await waiter

    async def _delete(self, container_id: str) -> None:
        if (self.state_root / container_id).exists() or any(
            self.state_root.glob(f"*{container_id}*")
        ):
            await self._runsc_quiet("delete", "--force", container_id)

    async def _runsc_quiet(self, *args: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            self.runsc,
            *self.global_flags(),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=child_env(),
        )
        try:
            await asyncio.wait_for(proc.wait(), _KILL_GRACE_S * 2)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def _cpu_watchdog(container_id: str, cpu_s: int, seen: dict[str, int]) -> None:
    """Return once the container's cgroup has used more than `cpu_s` CPU seconds.

    This runsc does not enforce RLIMIT_CPU inside the Sentry, so the limit is applied from the
    host: `cpuacct.usage` of the container's cgroup counts the Sentry's work for the code (a
    little more than the code's own CPU time, so the limit errs on the strict side). Never
    returns when the hierarchy is not there.
    Meanwhile it notes in `seen` the container's memory limit, peak usage and limit hits
    (runsc removes the cgroup with the container, so they are read while it runs).
    """
    own = _own_cgroup_paths()
    name = f"{GVISOR_CGROUP_PREFIX}-{container_id}"
    usage = CGROUP_ROOT / "cpuacct" / own.get("cpuacct", "/").lstrip("/") / name / "cpuacct.usage"
    memory = CGROUP_ROOT / "memory" / own.get("memory", "/").lstrip("/") / name
    budget_ns = cpu_s * 1_000_000_000
    while True:
        await asyncio.sleep(_CPU_POLL_S)
        with contextlib.suppress(OSError, ValueError):
            seen["memory_limit"] = int((memory / "memory.limit_in_bytes").read_text())
            peak = int((memory / "memory.max_usage_in_bytes").read_text())
            failed = int((memory / "memory.failcnt").read_text())
            seen["memory_peak"] = max(seen.get("memory_peak", 0), peak)
            seen["memory_failcnt"] = max(seen.get("memory_failcnt", 0), failed)
        try:
            used = int(usage.read_text())
        except (OSError, ValueError):
            continue
        if used > budget_ns:
            return


def _memory_hit(seen: Mapping[str, int], exit_code: int) -> bool:
    """Whether the container hit its memory limit, from the counters `_cpu_watchdog` noted."""
    near_limit = seen.get("memory_peak", 0) >= 0.9 * seen.get("memory_limit", 1 << 62)
    return seen.get("memory_failcnt", 0) > 0 or (exit_code != 0 and near_limit)


def _cleanup(workspace: RunWorkspace, bundle: Path) -> None:
    try:
        workspace.remove()
    finally:
        shutil.rmtree(bundle, ignore_errors=True)
