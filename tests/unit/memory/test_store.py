"""QdrantStore through LangGraph's public BaseStore API."""

from __future__ import annotations

import pytest
from langgraph.store.base import BaseStore, InvalidNamespaceError
from qdrant_client import QdrantClient

from memory.embeddings import HashEmbedder
from memory.store import QdrantStore


@pytest.fixture
def store(qdrant: QdrantClient, embedder: HashEmbedder) -> QdrantStore:
    return QdrantStore(qdrant, embedder, collection="store", fields=["text"])


def test_is_a_langgraph_store(store: QdrantStore) -> None:
    assert isinstance(store, BaseStore)


def test_put_get_update_delete(store: QdrantStore) -> None:
    ns = ("users", "alice")
    assert store.get(ns, "prefs") is None
    store.put(ns, "prefs", {"text": "prefers pytest", "level": 1})
    item = store.get(ns, "prefs")
    assert item is not None
    assert item.value == {"text": "prefers pytest", "level": 1}
    assert item.namespace == ns and item.key == "prefs"
    created = item.created_at
    store.put(ns, "prefs", {"text": "prefers unittest", "level": 2})
    updated = store.get(ns, "prefs")
    assert updated is not None
    assert updated.value["level"] == 2
    assert updated.created_at == created
    assert updated.updated_at >= created
    store.delete(ns, "prefs")
    assert store.get(ns, "prefs") is None


def test_semantic_search_ranks_by_meaning_and_scores(store: QdrantStore) -> None:
    ns = ("memories", "acme")
    store.put(ns, "a", {"text": "the user prefers pytest fixtures over setUp methods"})
    store.put(ns, "b", {"text": "deploys happen on friday afternoons"})
    store.put(ns, "c", {"text": "database backups run nightly"})
    hits = store.search(("memories",), query="which test framework does the user prefer pytest")
    assert hits[0].key == "a"
    assert hits[0].score is not None
    assert all(h.score is not None for h in hits)
    assert [h.score for h in hits] == sorted((h.score or 0.0 for h in hits), reverse=True)


def test_search_respects_namespace_prefix(store: QdrantStore) -> None:
    store.put(("memories", "acme"), "a", {"text": "acme uses postgres"})
    store.put(("memories", "globex"), "b", {"text": "globex uses postgres"})
    store.put(("memoriesx",), "c", {"text": "postgres everywhere"})
    keys = {h.key for h in store.search(("memories", "acme"), query="postgres")}
    assert keys == {"a"}
    keys = {h.key for h in store.search(("memories",), query="postgres")}
    assert keys == {"a", "b"}


def test_search_filters(store: QdrantStore) -> None:
    ns = ("docs",)
    store.put(
        ns, "1", {"text": "report one", "status": "draft", "score": 3, "meta": {"lang": "en"}}
    )
    store.put(
        ns, "2", {"text": "report two", "status": "final", "score": 5, "meta": {"lang": "de"}}
    )
    store.put(ns, "3", {"text": "report three", "status": "final", "score": 9.5})

    def keys(**flt: object) -> set[str]:
        return {h.key for h in store.search(ns, filter=dict(flt))}

    assert keys(status="final") == {"2", "3"}
    assert keys(score={"$gt": 4}) == {"2", "3"}
    assert keys(score={"$gte": 3, "$lt": 5}) == {"1"}
    assert keys(status={"$ne": "final"}) == {"1"}
    assert keys(meta={"lang": "de"}) == {"2"}
    assert keys(score=9.5) == {"3"}
    hits = store.search(ns, query="report", filter={"status": "final"})
    assert {h.key for h in hits} == {"2", "3"}
    with pytest.raises(ValueError, match="only scalar"):
        store.search(ns, filter={"tags": ["a"]})


def test_listing_without_query_is_newest_first_with_pagination(store: QdrantStore) -> None:
    ns = ("log",)
    for i in range(5):
        store.put(ns, f"k{i}", {"text": f"entry {i}"})
    page1 = store.search(ns, limit=2)
    page2 = store.search(ns, limit=2, offset=2)
    assert [h.key for h in page1] == ["k4", "k3"]
    assert [h.key for h in page2] == ["k2", "k1"]
    assert all(h.score is None for h in page1)


def test_unindexed_items_are_stored_but_unscored(store: QdrantStore) -> None:
    ns = ("mixed",)
    store.put(ns, "indexed", {"text": "vector search works"})
    store.put(ns, "plain", {"text": "no vector for me"}, index=False)
    assert store.get(ns, "plain") is not None
    hits = store.search(ns, query="vector search", limit=5)
    assert [h.key for h in hits] == ["indexed", "plain"]
    assert hits[0].score is not None and hits[1].score is None


def test_index_argument_overrides_fields(store: QdrantStore) -> None:
    ns = ("override",)
    store.put(ns, "t", {"text": "zebra", "title": "giraffe neck length"}, index=["title"])
    store.put(ns, "u", {"text": "giraffe", "title": "zebra stripes"})
    assert store.search(ns, query="giraffe neck", limit=1)[0].key == "t"


def test_list_namespaces(store: QdrantStore) -> None:
    store.put(("a", "b", "c"), "1", {"text": "x"})
    store.put(("a", "b", "d"), "1", {"text": "x"})
    store.put(("a", "e"), "1", {"text": "x"})
    store.put(("z",), "1", {"text": "x"})
    assert store.list_namespaces() == [("a", "b", "c"), ("a", "b", "d"), ("a", "e"), ("z",)]
    assert store.list_namespaces(prefix=("a", "b")) == [("a", "b", "c"), ("a", "b", "d")]
    assert store.list_namespaces(suffix=("d",)) == [("a", "b", "d")]
    assert store.list_namespaces(prefix=("a", "*", "c")) == [("a", "b", "c")]
    assert store.list_namespaces(max_depth=2) == [("a", "b"), ("a", "e"), ("z",)]
    assert store.list_namespaces(limit=1, offset=1) == [("a", "b", "d")]


def test_invalid_namespaces_are_rejected(store: QdrantStore) -> None:
    with pytest.raises(InvalidNamespaceError):
        store.put(("bad.label",), "k", {"text": "x"})
    with pytest.raises(InvalidNamespaceError):
        store.put((), "k", {"text": "x"})


def test_items_survive_a_new_store_on_the_same_client(
    qdrant: QdrantClient, embedder: HashEmbedder
) -> None:
    QdrantStore(qdrant, embedder, collection="shared").put(("n",), "k", {"text": "kept"})
    again = QdrantStore(qdrant, embedder, collection="shared")
    item = again.get(("n",), "k")
    assert item is not None and item.value == {"text": "kept"}


async def test_async_api(store: QdrantStore) -> None:
    ns = ("async", "x")
    await store.aput(ns, "k", {"text": "async put works"})
    item = await store.aget(ns, "k")
    assert item is not None and item.value["text"] == "async put works"
    hits = await store.asearch(("async",), query="async put")
    assert [h.key for h in hits] == ["k"]
    assert await store.alist_namespaces() == [ns]
    await store.adelete(ns, "k")
    assert await store.aget(ns, "k") is None
