"""The sandbox seam: limits, results, errors and the protocol every backend implements.

Backends (local bubblewrap, gVisor `runsc`, E2B) are interchangeable behind `Sandbox`, so the
tester and the benchmark never know where code runs; they only see a `SandboxResult`. Every
backend also accepts a keyword-only `collect=` list of workspace files to read back after the run
(returned in `SandboxResult.files`); it is not part of the `Sandbox` protocol so that simple test
doubles stay valid.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Backend",
    "InvalidWorkspacePath",
    "LimitHit",
    "PythonEntry",
    "Sandbox",
    "SandboxError",
    "SandboxLimits",
    "SandboxResult",
    "SandboxUnavailable",
    "limits_hit",
    "validate_workspace_path",
]


Backend = Literal["local", "gvisor", "e2b"]
"""Names of the sandbox backends, as settings spell them."""

LimitHit = Literal["timeout", "cpu", "memory", "processes", "output", "file_size"]
"""Which limit visibly stopped or trimmed a run (best effort; backends report what they see)."""


class SandboxError(RuntimeError):
    """Base class for every failure of the sandbox itself (not of the code it runs)."""


class SandboxUnavailable(SandboxError):
    """The sandbox backend cannot start on this machine (for example bubblewrap is missing)."""


class InvalidWorkspacePath(SandboxError, ValueError):
    """A file key would land outside the workspace or is not a plain relative POSIX path."""


class SandboxLimits(BaseModel):
    """Resource limits for one run; defaults suit a HumanEval-sized task."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_s: float = Field(default=20, gt=0, description="Wall-clock limit in seconds.")
    cpu_s: int = Field(default=20, gt=0, description="CPU-time limit (RLIMIT_CPU) in seconds.")
    memory_mb: int = Field(
        default=512,
        gt=0,
        description="Address-space limit per process (RLIMIT_AS) and memory limit of the whole "
        "run (its cgroup, tmpfs pages included).",
    )
    file_size_mb: int = Field(default=16, gt=0, description="Largest file the code may write.")
    max_output_bytes: int = Field(
        default=64_000, gt=0, description="Bytes kept of stdout and of stderr, each."
    )
    open_files: int = Field(default=256, gt=0, description="Open file descriptors (RLIMIT_NOFILE).")
    max_processes: int = Field(
        default=64,
        gt=0,
        le=4096,
        description="Processes and threads alive at once (cgroup pids.max), the command included.",
    )
    disk_mb: int = Field(
        default=256,
        gt=0,
        description="Size of the workspace filesystem (a tmpfs, so it also counts as memory).",
    )
    tmp_mb: int = Field(
        default=64,
        gt=0,
        description="Size of the filesystem behind /tmp and /dev/shm together (a tmpfs, so it "
        "also counts as memory).",
    )
    tmp_files: int = Field(
        default=16384,
        gt=0,
        description="Files and directories /tmp and /dev/shm may hold together (the inode cap "
        "of their tmpfs; each one costs kernel memory even when empty).",
    )


class SandboxResult(BaseModel):
    """What one run produced; output beyond the limit is dropped and flagged, never buffered."""

    model_config = ConfigDict(frozen=True)

    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float
    output_truncated: bool
    files: dict[str, str] = Field(
        default_factory=dict,
        description="Workspace files read back after the run (only those asked for with "
        "`collect=`; a missing, oversized, non-regular or symlinked file is left out).",
    )
    limits_hit: tuple[LimitHit, ...] = Field(
        default=(), description="Limits the backend saw being hit during the run."
    )

    @property
    def ok(self) -> bool:
        """True when the command exited 0 before the wall-clock limit."""
        return self.exit_code == 0 and not self.timed_out


def limits_hit(
    *,
    exit_code: int,
    timed_out: bool,
    truncated: bool,
    cpu: bool = False,
    memory: bool = False,
) -> tuple[LimitHit, ...]:
    """Which limits a run visibly hit, from what every backend can see of it.

    One definition for all backends, so `cpu` and `file_size` mean the same everywhere: the
    kernel's SIGXCPU/SIGXFSZ, seen either as a negative return code or as a shell-style
    128 + signal. `cpu` and `memory` add what only some backends observe (a CPU watchdog, cgroup
    counters). The order is fixed, because reports print the tuple as it is.
    """
    checks: tuple[tuple[LimitHit, bool], ...] = (
        ("timeout", timed_out),
        ("cpu", cpu or _killed_by(exit_code, signal.SIGXCPU)),
        ("file_size", _killed_by(exit_code, signal.SIGXFSZ)),
        ("memory", memory),
        ("output", truncated),
    )
    return tuple(name for name, hit in checks if hit)


def _killed_by(exit_code: int, signum: int) -> bool:
    return exit_code in (-signum, 128 + signum)


@runtime_checkable
class Sandbox(Protocol):
    """Runs a command over a throw-away copy of some files, isolated from the host."""

    async def run(
        self,
        files: Mapping[str, str],
        command: Sequence[str],
        limits: SandboxLimits | None = None,
    ) -> SandboxResult:
        """Copy `files` into a fresh workspace, run `command` there, then delete the workspace.

        Keys of `files` are relative POSIX paths; values are text content.
        """
        ...

    async def run_python(
        self,
        files: Mapping[str, str],
        entry: str,
        limits: SandboxLimits | None = None,
    ) -> SandboxResult:
        """Run `python3 <entry>` over `files`; `entry` is one of the workspace paths."""
        ...


class PythonEntry:
    """`run_python` for a backend whose `run` takes `collect`: `[self.python, entry]` over files.

    One definition for every backend, so the entry's path check cannot drift between them.
    """

    python: str

    async def run(
        self,
        files: Mapping[str, str],
        command: Sequence[str],
        limits: SandboxLimits | None = None,
        *,
        collect: Sequence[str] = (),
    ) -> SandboxResult:
        """The backend's own run (declared here for the type checker)."""
        raise NotImplementedError

    async def run_python(
        self,
        files: Mapping[str, str],
        entry: str,
        limits: SandboxLimits | None = None,
        *,
        collect: Sequence[str] = (),
    ) -> SandboxResult:
        """Run `python3 <entry>` over `files` with the configured interpreter."""
        validate_workspace_path(entry)
        return await self.run(files, [self.python, entry], limits, collect=collect)


def validate_command(command: Sequence[str]) -> None:
    """Reject a command given as one string (it would be split nowhere) or an empty one."""
    if isinstance(command, str) or not command:
        raise ValueError(
            f"command must be a non-empty list of arguments, e.g. ['python3', 'main.py'], "
            f"not {command!r}."
        )


def validate_workspace_path(key: str) -> PurePosixPath:
    """Check a `files` key and return it as a path; reject anything that could escape.

    Raises InvalidWorkspacePath for absolute paths, `..`, `.` or empty components and NUL bytes,
    so a model-written file name can never touch the host outside the workspace.
    """
    if not key:
        raise InvalidWorkspacePath("Empty file name in sandbox files; give a relative path.")
    if "\x00" in key:
        raise InvalidWorkspacePath(f"File name {key!r} contains a NUL byte; remove it.")
    if key.startswith("/"):
        raise InvalidWorkspacePath(
            f"File name {key!r} is absolute; use a path relative to the workspace, "
            f"e.g. {key.lstrip('/')!r}."
        )
    parts = key.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise InvalidWorkspacePath(
                f"File name {key!r} has an empty, '.' or '..' component; use a plain relative "
                "path such as 'pkg/module.py' that stays inside the workspace."
            )
    return PurePosixPath(*parts)
