"""The environment of a host-side child process: an allow-list, never a copy of our own.

The service's environment holds secrets (`OPENAI_API_KEY`, `STRATEGOS_API_KEY`, cloud
credentials …). A child process gets whatever environment it is given, and anything it runs or
leaks (`/proc/<pid>/environ`, a crash dump, an error message) can expose it. So the helpers we
start — the math worker, bubblewrap, runsc — get only the names below, which carry no secrets
and which they need to find programs and decode text; everything else must be passed by name.
"""

from __future__ import annotations

import os

__all__ = ["INHERITED", "child_env", "python_path"]

INHERITED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")
"""The only variables a child inherits from this process (when they are set)."""


def child_env(**extra: str) -> dict[str, str]:
    """The allow-listed part of `os.environ`, plus `extra` (which wins)."""
    env = {name: os.environ[name] for name in INHERITED if name in os.environ}
    env.update(extra)
    return env


def python_path(*first: str) -> str:
    """`first`, then this process's own `PYTHONPATH` (so a worker imports what we import)."""
    return os.pathsep.join(filter(None, [*first, os.environ.get("PYTHONPATH")]))
