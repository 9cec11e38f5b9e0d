"""The error a tool reports to the agent, shared by the registry, the workspaces and the tools."""

from __future__ import annotations

__all__ = ["ToolError"]


class ToolError(Exception):
    """An expected failure a tool reports to the agent (missing file, patch does not apply …).

    The message is shown to the model verbatim, so it says what to do differently.
    """
