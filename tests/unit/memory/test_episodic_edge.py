"""Episodic memory on the embedded engine (Qdrant Edge): what a user of the default install sees.

Real shards in a temporary folder and the hashing embedder; the same calls run against
`qdrant-client` to show that switching engines changes no result.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from memory.embeddings import HashEmbedder
from memory.episodic import (
    EmbeddingDimensionMismatch,
    EpisodicMemory,
    MemoryKind,
    MemoryRecord,
)
from memory.episodic_edge import EdgeShards
from memory.scoring import DAY, ScoringParams

from .conftest import FakeClock

PARAMS = ScoringParams(similarity_floor=0.0)
REPO = Path(__file__).resolve().parents[3]

TEXTS = [
    "slugify crashed on unicode titles with a KeyError",
    "the parser ignores blank lines in config files",
    "use pytest parametrize for the table of cases",
    "database migration rolled back after a lock timeout",
    "flaky network test needs a retry with backoff",
    "parse_duration returned minutes instead of seconds",
    "the CSV reader broke on quoted fields with commas",
    "compare floats with math.isclose in the tests",
]
QUERIES = [
    "why did slugify crash on unicode",
    "config parser and blank lines",
    "table driven tests with pytest",
    "migration lock timeout",
    "retry the flaky network test",
    "duration in seconds not minutes",
]


@pytest.fixture
def shards(tmp_path: Path) -> Iterator[EdgeShards]:
    folder = EdgeShards(tmp_path / "episodic")
    yield folder
    folder.close()


def make(
    client: QdrantClient | EdgeShards, embedder: HashEmbedder, clock: FakeClock
) -> EpisodicMemory:
    return EpisodicMemory(client, embedder, collection="ep", params=PARAMS, clock=clock)


def rec(text: str, clock: FakeClock, **kw: object) -> MemoryRecord:
    fields: dict[str, object] = {"kind": "observation", "tenant": "acme", "created_at": clock()}
    fields.update(kw)
    return MemoryRecord.model_validate({"text": text, **fields})


def fill(mem: EpisodicMemory, clock: FakeClock) -> None:
    """The same memories for two tenants, of mixed kinds and ages."""
    kinds = ("observation", "critique", "test_failure", "solution")
    for tenant in ("acme", "globex"):
        for i, text in enumerate(TEXTS):
            mem.remember(rec(text, clock, tenant=tenant, kind=kinds[i % 4], task_id=f"t{i % 3}"))
            clock.advance(DAY / 2)


def test_a_tenant_never_sees_another_tenants_memories(
    shards: EdgeShards, embedder: HashEmbedder, clock: FakeClock
) -> None:
    mem = make(shards, embedder, clock)
    mem.remember(rec("secret deploy key rotation schedule", clock, tenant="globex"))
    mem.remember(rec("acme rotates its deploy key monthly", clock))
    acme = mem.recall("deploy key rotation schedule", "acme", k=5, min_relevance=0.0)
    assert [h.record.text for h in acme] == ["acme rotates its deploy key monthly"]
    globex = mem.recall("deploy key rotation schedule", "globex", k=5, min_relevance=0.0)
    assert [h.record.text for h in globex] == ["secret deploy key rotation schedule"]
    assert mem.recall("deploy key rotation schedule", "initech", k=5, min_relevance=0.0) == []
    assert (mem.count("acme"), mem.count("globex"), mem.count()) == (1, 1, 2)
    clock.advance(30 * DAY)
    assert mem.forget_below(1.0, tenant="globex") == 1
    assert (mem.count("acme"), mem.count("globex")) == (1, 0)


def test_memories_and_their_access_stats_survive_a_reopen(
    tmp_path: Path, embedder: HashEmbedder, clock: FakeClock
) -> None:
    first = EdgeShards(tmp_path / "episodic")
    mem = make(first, embedder, clock)
    rid = mem.remember(rec("persisted lesson about timeouts", clock, kind="critique"))
    clock.advance(3600)
    mem.recall("timeouts lesson", "acme", 1, 0.0)
    first.close()

    reopened = EdgeShards(tmp_path / "episodic")
    try:
        again = make(reopened, embedder, clock)
        hits = again.recall("timeouts lesson", "acme", 1, 0.0, touch=False)
        assert [h.record.text for h in hits] == ["persisted lesson about timeouts"]
        stored = again.get(rid)
        assert stored is not None
        assert (stored.kind, stored.access_count, stored.last_access) == ("critique", 1, clock())
    finally:
        reopened.close()


def test_memories_survive_a_killed_process(tmp_path: Path, embedder: HashEmbedder) -> None:
    folder = tmp_path / "episodic"
    script = textwrap.dedent(
        f"""
        import os, signal
        from memory.embeddings import HashEmbedder
        from memory.episodic import EpisodicMemory, MemoryRecord
        from memory.episodic_edge import EdgeShards
        mem = EpisodicMemory(EdgeShards({str(folder)!r}), HashEmbedder(dim=128), collection="ep")
        mem.remember(MemoryRecord(text="written just before the crash", kind="fact", tenant="a"))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, timeout=120, check=False)
    assert done.returncode == -9
    shards = EdgeShards(folder)
    try:
        mem = EpisodicMemory(shards, embedder, collection="ep", params=PARAMS)
        hits = mem.recall("written before the crash", "a", 1, 0.0)
        assert [h.record.text for h in hits] == ["written just before the crash"]
    finally:
        shards.close()


def test_same_results_as_qdrant_client(
    shards: EdgeShards, qdrant: QdrantClient, embedder: HashEmbedder
) -> None:
    edge_clock, client_clock = FakeClock(), FakeClock()
    edge, client = make(shards, embedder, edge_clock), make(qdrant, embedder, client_clock)
    fill(edge, edge_clock)
    fill(client, client_clock)
    for query in QUERIES:
        scopes: list[tuple[str, list[MemoryKind] | None, str | None]] = [
            ("acme", None, None),
            ("globex", ["critique", "solution"], None),
            ("acme", None, "t1"),
        ]
        for tenant, kinds, task_id in scopes:
            got = edge.recall(query, tenant, 5, 0.0, kinds, task_id=task_id, touch=False)
            want = client.recall(query, tenant, 5, 0.0, kinds, task_id=task_id, touch=False)
            assert [h.record for h in got] == [h.record for h in want], (query, tenant)
            assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-6)
    assert edge.count("acme") == client.count("acme") == len(TEXTS)


def test_shards_are_shared_in_a_process_and_check_the_width(
    shards: EdgeShards, clock: FakeClock
) -> None:
    one = EpisodicMemory(shards, HashEmbedder(dim=64), collection="dims", clock=clock)
    two = EpisodicMemory(shards, HashEmbedder(dim=64), collection="dims", clock=clock)
    one.remember(rec("shared between two memories", clock))
    assert two.count("acme") == 1
    with pytest.raises(EmbeddingDimensionMismatch, match="size 64"):
        EpisodicMemory(shards, HashEmbedder(dim=32), collection="dims", clock=clock)
    shards.close()
    with pytest.raises(EmbeddingDimensionMismatch, match="32-wide"):
        EpisodicMemory(EdgeShards(shards.path), HashEmbedder(dim=32), collection="dims")
    with pytest.raises(ValueError, match="safe folder name"):
        EpisodicMemory(shards, HashEmbedder(dim=64), collection="../escape")


def test_local_mode_memories_are_adopted_once(
    tmp_path: Path, embedder: HashEmbedder, clock: FakeClock
) -> None:
    legacy = QdrantClient(path=str(tmp_path / "memory"))
    try:
        old = make(legacy, embedder, clock)
        fill(old, clock)
        old.recall("migration lock timeout", "acme", 1, 0.0)  # access stats are copied too
        before = {
            q: [h.record for h in old.recall(q, "acme", 3, 0.0, touch=False)] for q in QUERIES
        }
        shards = EdgeShards(tmp_path / "episodic")
        try:
            assert not shards.adopted("ep")
            assert shards.adopt("ep", legacy) == 2 * len(TEXTS)
            assert shards.adopted("ep")
            assert shards.adopt("ep", legacy) == 0
            new = make(shards, embedder, clock)
            for query, records in before.items():
                assert [h.record for h in new.recall(query, "acme", 3, 0.0, touch=False)] == records
            assert legacy.count("ep").count == 2 * len(TEXTS)  # the source is left as it was
        finally:
            shards.close()
    finally:
        legacy.close()


def test_adopting_from_an_install_without_memories_copies_nothing(
    shards: EdgeShards, qdrant: QdrantClient
) -> None:
    assert shards.adopt("strategos_episodic", qdrant) == 0
    assert shards.adopted("strategos_episodic")
