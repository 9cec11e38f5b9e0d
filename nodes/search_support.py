"""What the execution-first searches (the selection team, Tree of Thoughts) do alike.

Kept out of their node modules so each imports it without importing another's nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import JsonValue

from graphs.context import TeamContext
from graphs.deps import TeamDeps
from tools.gateway import CallContext, ToolObservation
from tools.workspaces import MemoryWorkspace

TOOL = "run_candidates"


async def run_through_gateway(
    deps: TeamDeps, ctx: TeamContext, args_json: dict[str, JsonValue], call_id: str
) -> ToolObservation:
    """Run candidates once, through the gateway (ledgered under `call_id`, sandboxed)."""
    gateway = await deps.gateway(ctx)
    return await gateway.call(
        TOOL,
        args_json,
        CallContext(
            thread_id=deps.thread_id(),
            tool_call_id=call_id,
            workspace=MemoryWorkspace(),
            tenant_id=ctx.tenant,
        ),
    )


def policy_answer(
    ctx: TeamContext,
    chosen: str | None,
    destination: Callable[[TeamContext, str], str],
    thread_id: str,
) -> dict[str, Any]:
    """The delivery's folder (unless chosen) and the policy's answer (unless a human's).

    What every execution-first search settles at its end, the same way.
    """
    update: dict[str, Any] = {}
    if not chosen:
        update["destination"] = destination(ctx, thread_id)
    if ctx.approve != "ask":
        approved = ctx.approve == "auto"
        comment = "approved by policy (auto)" if approved else "refused by policy (deny)"
        update["approval"] = {"approved": approved, "comment": comment}
    return update
