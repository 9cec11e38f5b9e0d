"""Run-scoped context: policy and limits for one task, plus injectable dependencies.

The LangGraph server fills it from the run's `context` (plain values); in-process callers may
also inject a chat model or a sandbox. Nodes never read the environment: whatever is not given
here comes from `service.settings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(kw_only=True)
class TeamContext:
    """Policy and limits of one task run."""

    approve: Literal["ask", "auto", "deny"] = field(
        default="ask",
        metadata={"description": "Sensitive actions: ask a human, approve, or refuse them."},
    )
    out_dir: str | None = field(
        default=None, metadata={"description": "Where deliver writes the files."}
    )
    max_steps: int | None = field(
        default=None, metadata={"description": "Agent steps before the task is stopped."}
    )
    max_iterations: int | None = field(
        default=None, metadata={"description": "Coder attempts before the best one is delivered."}
    )
    token_budget: int | None = field(
        default=None, metadata={"description": "Prompt plus completion tokens for the task."}
    )
    run_log: str | None = field(
        default=None, metadata={"description": "JSONL file recording every sandbox test run."}
    )
    model: Any = field(default=None, metadata={"description": "Injected chat model (in-process)."})
    sandbox: Any = field(default=None, metadata={"description": "Injected sandbox (in-process)."})
