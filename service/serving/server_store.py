"""The store the LangGraph server serves: `langgraph.json` → `"store": {"path": ...}`.

langgraph-api loads `qdrant_store` at startup, enters it as an async context manager and
uses the yielded `QdrantStore` for `/store` and for `get_store()` inside runs, instead of its
built-in store (so its `index` and `ttl` settings do not apply). It is the same store, on the
same Qdrant client and embedder, that in-process runs get from `service.deps`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from memory.store import QdrantStore
from service import deps

__all__ = ["qdrant_store"]


@asynccontextmanager
async def qdrant_store() -> AsyncIterator[QdrantStore]:
    """Open the store off the event loop (Qdrant, the embedding model); close it at shutdown."""
    store = await asyncio.to_thread(deps.default_store)
    try:
        yield store
    finally:
        await asyncio.to_thread(deps.close_memory)
