"""Episodic memory on an in-memory Qdrant with a hashing embedder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from pydantic import ValidationError
from qdrant_client import QdrantClient

from memory.embeddings import HashEmbedder
from memory.episodic import EmbeddingDimensionMismatch, EpisodicMemory, MemoryRecord
from memory.scoring import DAY, ScoringParams

from .conftest import FakeClock

PARAMS = ScoringParams(similarity_floor=0.0)


def make(qdrant: QdrantClient, embedder: HashEmbedder, clock: FakeClock) -> EpisodicMemory:
    return EpisodicMemory(qdrant, embedder, collection="ep", params=PARAMS, clock=clock)


def rec(text: str, clock: FakeClock, **kw: object) -> MemoryRecord:
    fields: dict[str, object] = {"kind": "observation", "tenant": "acme", "created_at": clock()}
    fields.update(kw)
    return MemoryRecord.model_validate({"text": text, **fields})


def test_recall_finds_the_matching_memory_first(
    qdrant: QdrantClient, embedder: HashEmbedder, clock: FakeClock
) -> None:
    mem = make(qdrant, embedder, clock)
    mem.remember(
        rec("slugify crashed on unicode titles with a KeyError", clock, kind="test_failure")
    )
    mem.remember(rec("the parser ignores blank lines in config files", clock))
    mem.remember(rec("use pytest parametrize for the table of cases", clock, kind="fact"))
    hits = mem.recall("why did slugify crash on unicode", "acme", k=3, min_relevance=0.01)
    assert hits, "expected at least one hit"
    assert hits[0].record.text.startswith("slugify crashed")
    assert hits[0].score == pytest.approx(
        max(0.0, hits[0].similarity) * hits[0].relevance, rel=1e-6
    )
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_recall_never_crosses_tenants(
    qdrant: QdrantClient, embedder: HashEmbedder, clock: FakeClock
) -> None:
    mem = make(qdrant, embedder, clock)
    mem.remember(rec("secret deploy key rotation schedule", clock, tenant="globex"))
    assert mem.recall("deploy key rotation schedule", "acme", k=5, min_relevance=0.0) == []
    assert len(mem.recall("deploy key rotation schedule", "globex", k=5, min_relevance=0.0)) == 1


def test_recall_filters_by_kind(
    qdrant: QdrantClient, embedder: HashEmbedder, clock: FakeClock
) -> None:
    mem = make(qdrant, embedder, clock)
    mem.remember(rec("sorting fails on empty input list", clock, kind="test_failure"))
    mem.remember(
        rec("sorting fails on empty input list because of index 0", clock, kind="critique")
    )
    hits = mem.recall("sorting empty input", "acme", k=5, min_relevance=0.0, kinds=["critique"])
    assert [h.record.kind for h in hits] == ["critique"]
    with pytest.raises(ValueError, match="unknown memory kinds"):
        mem.recall("x", "acme", kinds=["bogus"])  # type: ignore[list-item]


def test_threshold_drops_weak_matches(
    qdrant: QdrantClient, embedder: HashEmbedder, clock: FakeClock
) -> None:
    mem = make(qdrant, embedder, clock)
    mem.remember(rec("database migration rolled back after lock timeout", clock))
    assert mem.recall("database migration lock timeout", "acme", k=3, min_relevance=0.05)
    assert (
        mem.recall("unrelated words about gardening tomatoes", "acme", k=3, min_relevance=0.05)
        == []
    )


def test_recall_counts_as_access(
    qdrant: QdrantClient, embedder: HashEmbedder, clock: FakeClock
) -> None:
    mem = make(qdrant, embedder, clock)
    rid = mem.remember(rec("flaky network test needs a retry", clock))
    clock.advance(3600)
    mem.recall("flaky network test", "acme", k=1, min_relevance=0.0)
    stored = mem.get(rid)
    assert stored is not None
    assert stored.access_count == 1
    assert stored.last_access == clock()
    mem.recall("flaky network test", "acme", k=1, min_relevance=0.0, touch=False)
    again = mem.get(rid)
    assert again is not None and again.access_count == 1


def test_older_memory_ranks_below_fresh_one_with_same_text_similarity(
    qdrant: QdrantClient, embedder: HashEmbedder, clock: FakeClock
) -> None:
    mem = make(qdrant, embedder, clock)
    mem.remember(rec("retry the flaky upload test", clock, task_id="old", kind="critique"))
    clock.advance(30 * DAY)
    mem.remember(rec("retry the flaky upload test", clock, task_id="new", kind="critique"))
    hits = mem.recall("retry the flaky upload test", "acme", k=2, min_relevance=0.0)
    assert [h.record.task_id for h in hits] == ["new", "old"]
    assert hits[0].relevance > hits[1].relevance


def test_remember_is_idempotent_for_the_same_content(
    qdrant: QdrantClient, embedder: HashEmbedder, clock: FakeClock
) -> None:
    mem = make(qdrant, embedder, clock)
    first = mem.remember(rec("same lesson", clock, task_id="t1"))
    second = mem.remember(rec("same lesson", clock, task_id="t1"))
    other = mem.remember(rec("same lesson", clock, task_id="t2"))
    assert first == second != other
    assert mem.count("acme") == 2


def test_forget_below_evicts_only_decayed_memories(
    qdrant: QdrantClient, embedder: HashEmbedder, clock: FakeClock
) -> None:
    mem = make(qdrant, embedder, clock)
    mem.remember(rec("ls output of the workspace", clock, kind="observation", importance=0.5))
    mem.remember(rec("always answer in English", clock, kind="instruction", importance=0.9))
    mem.remember(rec("other tenant's tool output", clock, tenant="globex", importance=0.5))
    clock.advance(10 * DAY)
    assert mem.forget_below(0.05, tenant="acme") == 1
    assert [h.record.kind for h in mem.recall("always answer English", "acme", 5, 0.0)] == [
        "instruction"
    ]
    assert mem.count("globex") == 1
    assert mem.forget_below(0.05) == 1
    assert mem.count() == 1


def test_record_validation() -> None:
    with pytest.raises(ValidationError):
        MemoryRecord(text="x", kind="observation", tenant="a", importance=1.5)
    with pytest.raises(ValidationError):
        MemoryRecord.model_validate({"text": "x", "kind": "gossip", "tenant": "a"})
    with pytest.raises(ValidationError):
        MemoryRecord(text="", kind="fact", tenant="a")
    r = MemoryRecord(text="x", kind="fact", tenant="a", created_at=5.0)
    assert r.last_access == 5.0


def test_dimension_mismatch_is_reported(qdrant: QdrantClient, clock: FakeClock) -> None:
    EpisodicMemory(qdrant, HashEmbedder(dim=64), collection="dims", clock=clock)
    with pytest.raises(EmbeddingDimensionMismatch, match="size 64"):
        EpisodicMemory(qdrant, HashEmbedder(dim=32), collection="dims", clock=clock)


def test_local_path_mode_persists_across_clients(
    tmp_path: Path, embedder: HashEmbedder, clock: FakeClock
) -> None:
    client = QdrantClient(path=str(tmp_path / "q"))
    make(client, embedder, clock).remember(rec("persisted lesson about timeouts", clock))
    client.close()
    reopened = QdrantClient(path=str(tmp_path / "q"))
    try:
        hits = make(reopened, embedder, clock).recall("timeouts lesson", "acme", 1, 0.0)
        assert [h.record.text for h in hits] == ["persisted lesson about timeouts"]
    finally:
        reopened.close()


def test_lessons_page_in_critiques_for_a_similar_goal(
    qdrant: QdrantClient, embedder: HashEmbedder, clock: FakeClock
) -> None:
    mem = make(qdrant, embedder, clock)
    mem.remember(
        rec("slugify failed: must strip accents before lowercasing", clock, kind="critique")
    )
    mem.remember(rec("slugify observation: ran the tests", clock, kind="observation"))
    hits = mem.lessons("Write `slugify(title)` that strips accents.\n```py\nx=1\n```", "acme")
    assert [h.record.kind for h in hits] == ["critique"]


class _CountingEmbedder(HashEmbedder):
    def __init__(self) -> None:
        super().__init__(dim=64)
        self.query_calls = 0

    def embed_query(self, texts: Sequence[str]) -> list[list[float]]:
        self.query_calls += 1
        return super().embed_query(texts)


def test_repeated_query_is_embedded_once(qdrant: QdrantClient, clock: FakeClock) -> None:
    counting = _CountingEmbedder()
    mem = EpisodicMemory(qdrant, counting, collection="cache", params=PARAMS, clock=clock)
    mem.remember(rec("cache me if you can", clock))
    first = mem.recall("cache me", "acme", 1, 0.0)
    second = mem.recall("cache me", "acme", 1, 0.0)
    mem.recall("something else", "acme", 1, 0.0)
    assert counting.query_calls == 2
    assert [h.record.id for h in first] == [h.record.id for h in second]


def test_empty_kinds_or_query_recall_nothing(
    qdrant: QdrantClient, embedder: HashEmbedder, clock: FakeClock
) -> None:
    mem = make(qdrant, embedder, clock)
    mem.remember(rec("anything at all", clock))
    assert mem.recall("anything", "acme", 3, 0.0, kinds=[]) == []
    assert mem.recall("   ", "acme", 3, 0.0) == []
    assert mem.recall("anything", "acme", 0, 0.0) == []
    assert len(mem.recall("anything", "acme", 3, 0.0)) == 1
