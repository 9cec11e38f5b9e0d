"""Run-scoped context: policy and limits for one task, plus injectable dependencies.

The LangGraph server fills it from the run's `context` (plain values, validated here by
pydantic); in-process callers may also inject a chat model or a sandbox, which never appear in
the served schema. Nodes never read the environment: what is not given comes from settings.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass
from pydantic.json_schema import SkipJsonSchema


@dataclass(kw_only=True, config=ConfigDict(arbitrary_types_allowed=True, extra="ignore"))
class TeamContext:
    """Policy and limits of one task run."""

    approve: Literal["ask", "auto", "deny"] = Field(
        default="ask", description="Sensitive actions: ask a human, approve, or refuse them."
    )
    out_dir: str | None = Field(default=None, description="Where deliver writes the files.")
    max_steps: int | None = Field(
        default=None, ge=1, description="Agent steps before the task is stopped."
    )
    max_iterations: int | None = Field(
        default=None, ge=1, description="Coder attempts before the best one is delivered."
    )
    token_budget: int | None = Field(
        default=None, ge=1, description="Prompt plus completion tokens for the task."
    )
    run_log: str | None = Field(
        default=None, description="JSONL file recording every sandbox test run."
    )
    tenant: str = Field(
        default="local", min_length=1, max_length=100, description="Whose memories to use."
    )
    use_memory: bool = Field(
        default=True, description="Page in lessons from earlier tasks and store new ones."
    )
    model: SkipJsonSchema[Any] = Field(default=None, exclude=True)
    """Injected chat model (in-process only)."""
    sandbox: SkipJsonSchema[Any] = Field(default=None, exclude=True)
    """Injected sandbox (in-process only)."""
    memory: SkipJsonSchema[Any] = Field(default=None, exclude=True)
    """Injected episodic memory (in-process only)."""
    gateway: SkipJsonSchema[Any] = Field(default=None, exclude=True)
    """Injected tool gateway (in-process only)."""
    memory_graph: SkipJsonSchema[Any] = Field(default=None, exclude=True)
    """Injected memory graph: a MemoryGraph or a graph backend (in-process only)."""
