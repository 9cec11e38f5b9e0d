"""`/store` on `langgraph dev` is our QdrantStore: semantic search through the official SDK.

The server is the one `test_langgraph_server` starts (the repo's `langgraph.json`, a temporary data
dir); its fixtures are reused here. langgraph.json's `store.path` makes langgraph-api serve
`service.serving.server_store.qdrant_store` instead of its built-in store, which, with no `index`
configured, would return every item unscored.
"""

from __future__ import annotations

import uuid

import pytest
from langgraph_sdk.client import LangGraphClient

from tests.integration import test_langgraph_server as served
from tests.integration.test_langgraph_server import Server

# the same fixtures (a module-scoped `langgraph dev` and an SDK client), registered here too
server = served.server
client = served.client

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DOCS = {
    "pasta": {"text": "Boil spaghetti, then toss it with eggs, pecorino and guanciale."},
    "lists": {"text": "Python list comprehensions build a list from an iterable in one line."},
    "kitten": {"text": "A kitten needs small meals several times a day and a litter box."},
}


async def test_semantic_search_through_the_store_api(
    client: LangGraphClient,
    server: Server,
) -> None:
    ns = ["strategos-test", uuid.uuid4().hex[:8]]
    for key, value in DOCS.items():
        await client.store.put_item(ns, key, {**value, "topic": key})
    await client.store.put_item(ns, "note", {"text": "unindexed note"}, index=False)

    found = await client.store.search_items(ns, query="how do I write Python code that makes lists")
    keys = [item["key"] for item in found["items"]]
    assert keys[0] == "lists", (found, served._log_tail(server.log))
    scores = [item["score"] for item in found["items"] if item["key"] != "note"]
    assert all(isinstance(s, float) for s in scores) and scores == sorted(scores, reverse=True)
    assert keys[-1] == "note" and found["items"][-1]["score"] is None  # like InMemoryStore

    dinner = await client.store.search_items(ns, query="an Italian noodle recipe", limit=1)
    assert [item["key"] for item in dinner["items"]] == ["pasta"]

    cats = await client.store.search_items(ns, query="pets", filter={"topic": "kitten"})
    assert [item["key"] for item in cats["items"]] == ["kitten"]

    item = await client.store.get_item(ns, "lists")
    assert item["value"] == {**DOCS["lists"], "topic": "lists"}
    assert item["namespace"] == ns

    await client.store.delete_item(ns, "pasta")
    assert await client.store.get_item(ns, "pasta") is None
    spaces = await client.store.list_namespaces(prefix=ns)
    assert spaces["namespaces"] == [ns]
    assert "custom store" in served._log_tail(server.log, 400).lower()
