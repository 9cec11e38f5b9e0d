"""Run untrusted code in isolation; `Sandbox` is the seam, with three backends.

- `LocalSandbox` (`local`, default): bubblewrap + rlimits + a per-run cgroup, optional warm pool;
- `GVisorSandbox` (`gvisor`, in `tools.sandbox.gvisor`): `runsc run` with a generated OCI bundle;
- `E2BSandbox` (`e2b`, in `tools.sandbox.e2b`): the official `e2b-code-interpreter` SDK.

`make_sandbox(backend, **options)` builds one by name (the gVisor and E2B modules are imported
only when asked for, so importing this package stays cheap). The first call in a process also
sweeps what SIGKILLed earlier runs left on the host (`janitor.py`).
"""

from __future__ import annotations

from typing import Any

from tools.sandbox.base import (
    Backend,
    InvalidWorkspacePath,
    LimitHit,
    Sandbox,
    SandboxError,
    SandboxLimits,
    SandboxResult,
    SandboxUnavailable,
)
from tools.sandbox.janitor import sweep_once
from tools.sandbox.local import LocalSandbox

__all__ = [
    "Backend",
    "InvalidWorkspacePath",
    "LimitHit",
    "LocalSandbox",
    "Sandbox",
    "SandboxError",
    "SandboxLimits",
    "SandboxResult",
    "SandboxUnavailable",
    "make_sandbox",
]


def make_sandbox(backend: Backend = "local", **options: Any) -> Sandbox:
    """Build the sandbox backend named by settings; `options` go to its constructor.

    Raises SandboxUnavailable when the backend cannot run here (missing binary, no cgroups…)
    and ValueError for an unknown name.
    """
    sweep_once()
    if backend == "local":
        return LocalSandbox(**options)
    if backend == "gvisor":
        from tools.sandbox.gvisor import GVisorSandbox

        return GVisorSandbox(**options)
    if backend == "e2b":
        from tools.sandbox.e2b import E2BSandbox

        return E2BSandbox(**options)
    raise ValueError(f"Unknown sandbox backend {backend!r}; use 'local', 'gvisor' or 'e2b'.")
