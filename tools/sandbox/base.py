"""The sandbox seam: limits, results, errors and the protocol every backend implements.

Backends (local bubblewrap, E2B) are interchangeable behind `Sandbox`, so the tester and the
benchmark never know where code runs; they only see a `SandboxResult`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "InvalidWorkspacePath",
    "Sandbox",
    "SandboxError",
    "SandboxLimits",
    "SandboxResult",
    "SandboxUnavailable",
    "validate_workspace_path",
]


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
    memory_mb: int = Field(default=512, gt=0, description="Address-space limit (RLIMIT_AS).")
    file_size_mb: int = Field(default=16, gt=0, description="Largest file the code may write.")
    max_output_bytes: int = Field(
        default=64_000, gt=0, description="Bytes kept of stdout and of stderr, each."
    )
    open_files: int = Field(default=256, gt=0, description="Open file descriptors (RLIMIT_NOFILE).")


class SandboxResult(BaseModel):
    """What one run produced; output beyond the limit is dropped and flagged, never buffered."""

    model_config = ConfigDict(frozen=True)

    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float
    output_truncated: bool

    @property
    def ok(self) -> bool:
        """True when the command exited 0 before the wall-clock limit."""
        return self.exit_code == 0 and not self.timed_out


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
