"""Run untrusted code in isolation; `Sandbox` is the seam, `LocalSandbox` the bubblewrap backend."""

from tools.sandbox.base import (
    InvalidWorkspacePath,
    Sandbox,
    SandboxError,
    SandboxLimits,
    SandboxResult,
    SandboxUnavailable,
)
from tools.sandbox.local import LocalSandbox

__all__ = [
    "InvalidWorkspacePath",
    "LocalSandbox",
    "Sandbox",
    "SandboxError",
    "SandboxLimits",
    "SandboxResult",
    "SandboxUnavailable",
]
