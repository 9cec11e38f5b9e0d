"""search_memory: look up what the team remembers (episodic memory), scoped to the tenant.

The service wires episodic memory in (`memory.episodic.EpisodicSearch` on the gateway). A
deployment with memory turned off has no `MemorySearch`: the tool then answers with no hits and
says so in `note`, so agents can tell "memory is off" from "nothing matched".
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tools.registry import MemoryHit, ToolContext, ToolExample, ToolSpec

__all__ = ["NOT_WIRED", "SPEC", "SearchMemoryArgs", "SearchMemoryResult", "search_memory"]

NOT_WIRED = "memory is not connected in this deployment yet; no results are available"


class SearchMemoryArgs(BaseModel):
    """Arguments of search_memory."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2000, description="What to look for.")
    k: int = Field(default=5, ge=1, le=50, description="Hits returned at most.")
    scope: Literal["task", "tenant"] = Field(
        default="task", description="This task's memories, or the whole tenant's."
    )


class SearchMemoryResult(BaseModel):
    """Hits, best first; `note` explains an empty answer that is not a real miss."""

    hits: list[MemoryHit]
    note: str = ""


async def search_memory(args: SearchMemoryArgs, ctx: ToolContext) -> SearchMemoryResult:
    """Search the memory seam of the context, or report that there is none."""
    if ctx.memory is None:
        return SearchMemoryResult(hits=[], note=NOT_WIRED)
    hits = await ctx.memory.search(
        args.query, k=args.k, tenant_id=ctx.tenant_id, task_id=ctx.task_id, scope=args.scope
    )
    return SearchMemoryResult(hits=hits[: args.k])


SPEC: ToolSpec[SearchMemoryArgs, SearchMemoryResult] = ToolSpec(
    name="search_memory",
    version="1.0.0",
    description=(
        "Search the team's memory of earlier work (solutions, failures, user preferences) by "
        "meaning. Returns up to `k` hits with a relevance score; an empty list with a `note` "
        "means memory is unavailable, not that nothing matched."
    ),
    args_model=SearchMemoryArgs,
    result_model=SearchMemoryResult,
    handler=search_memory,
    side_effect="read_only",
    approval="never",
    examples=(
        ToolExample(
            title="memory not wired yet",
            args=SearchMemoryArgs(query="how did we slugify titles before?"),
            result=SearchMemoryResult(hits=[], note=NOT_WIRED),
            expect=lambda r: r.hits == [] and r.note == NOT_WIRED,
        ),
    ),
)
