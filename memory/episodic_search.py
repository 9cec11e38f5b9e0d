"""Episodic memory behind the `search_memory` tool, the one way a tool reaches it.

Tools sit below memory, so the tool sees only `tools.registry.MemorySearch`; this adapter is
what the service plugs in there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from memory.episodic import EpisodicMemory
from tools.registry import MemoryHit

__all__ = ["EpisodicSearch"]


class EpisodicSearch:
    """Episodic memory behind the `search_memory` tool's seam (`tools.registry.MemorySearch`).

    The tool runs in the gateway's event loop; recall embeds and queries Qdrant, so it runs in
    a thread. Scope `task` keeps to the calling task's memories, `tenant` to the tenant's.
    `open_memory` is called on the first search, so a gateway whose runs never search memory
    never loads the embedding model.
    """

    def __init__(self, open_memory: Callable[[], EpisodicMemory | None]) -> None:
        self.open_memory = open_memory

    async def search(
        self, query: str, *, k: int, tenant_id: str, task_id: str, scope: str
    ) -> list[MemoryHit]:
        """The k best memories as tool hits, best first."""
        memory = await asyncio.to_thread(self.open_memory)
        if memory is None:
            return []
        hits = await asyncio.to_thread(
            memory.recall,
            query,
            tenant_id,
            k,
            task_id=task_id if scope == "task" else None,
        )
        return [
            MemoryHit(
                id=hit.record.id,
                text=hit.record.text,
                score=round(hit.score, 6),
                metadata={
                    "kind": hit.record.kind,
                    "task_id": hit.record.task_id,
                    "importance": hit.record.importance,
                },
            )
            for hit in hits
        ]
