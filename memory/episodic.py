"""Episodic memory on Qdrant: what happened in earlier tasks, retrievable by meaning.

Observations, test failures, critiques and solutions are embedded as passages and stored with
their tenant, task, kind, time and importance. Recall embeds a query, filters by tenant (never
leak one user's memories into another's prompt), re-ranks by similarity × relevance (see
`scoring`) and keeps only hits above a threshold, so a weak match never crowds the prompt.

Where the memories live is an `episodic_index.EpisodeIndex`: `EdgeShards` (Qdrant Edge, the
embedded default, `episodic_edge`) or a `QdrantClient` (`url=…` in production, `":memory:"` in
tests, `path=…` as before). Both are Qdrant with the same filters and cosine scores, so ranking,
decay and tenant isolation here do not depend on the engine.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator
from qdrant_client import QdrantClient

from memory.embeddings import Embedder
from memory.episodic_edge import EdgeShards
from memory.episodic_index import (
    EmbeddingDimensionMismatch,
    EpisodeIndex,
    QdrantClientIndex,
    Scope,
)
from memory.recall_query import recall_query
from memory.scoring import ScoringParams, recall_score, relevance, should_evict
from tools.telemetry import span

__all__ = [
    "MEMORY_KINDS",
    "EmbeddingDimensionMismatch",
    "EpisodicMemory",
    "MemoryKind",
    "MemoryRecord",
    "Recalled",
]

MemoryKind = Literal["observation", "test_failure", "critique", "solution", "fact", "instruction"]
MEMORY_KINDS: tuple[str, ...] = get_args(MemoryKind)

_ID_NAMESPACE = uuid.UUID("6f1c2f0e-5b7a-4c1e-9f51-3c1d8a2b9e47")


class MemoryRecord(BaseModel):
    """One episodic memory. Times are epoch seconds (portable, and cheap to compare)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default="", description="Point id; derived from the content when empty.")
    text: str = Field(min_length=1)
    kind: MemoryKind
    tenant: str = Field(min_length=1)
    task_id: str = ""
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    created_at: float = Field(default_factory=time.time)
    last_access: float = Field(default=-1.0, description="Defaults to created_at.")
    access_count: int = Field(default=0, ge=0)
    meta: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _derive_defaults(self) -> MemoryRecord:
        # A content-derived id makes `remember` idempotent: a retried page-out or a replayed
        # node overwrites the same point instead of storing the memory twice.
        if not self.id:
            key = "\x1f".join((self.tenant, self.task_id, self.kind, self.text))
            self.id = str(uuid.uuid5(_ID_NAMESPACE, key))
        else:
            self.id = str(uuid.UUID(self.id))
        if self.last_access < 0:
            self.last_access = self.created_at
        return self

    def payload(self) -> dict[str, object]:
        """What Qdrant stores beside the vector."""
        return self.model_dump(exclude={"id"})


@dataclass(frozen=True)
class Recalled:
    """A retrieval hit with the numbers that ranked it."""

    record: MemoryRecord
    similarity: float
    relevance: float
    score: float


class EpisodicMemory:
    """Store, recall and forget episodic memories in one Qdrant collection.

    `client` is `EdgeShards` (embedded, one shard per collection) or a `QdrantClient`; either
    may be shared with other users of the same folder or server, so closing it is left to
    whoever opened it.
    """

    def __init__(
        self,
        client: QdrantClient | EdgeShards,
        embedder: Embedder,
        *,
        collection: str = "strategos_episodic",
        params: ScoringParams | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.embedder = embedder
        self.collection = collection
        self.params = params or ScoringParams()
        self._clock = clock
        # An agent loop recalls with the same goal-derived query on every iteration: caching
        # its embedding saves a model call per prompt.
        self._query_cache: OrderedDict[str, list[float]] = OrderedDict()
        self.index: EpisodeIndex = (
            client.index(collection, embedder.dim)
            if isinstance(client, EdgeShards)
            else QdrantClientIndex(client, collection, embedder.dim)
        )

    def now(self) -> float:
        """The memory's clock (epoch seconds); stamp new records with it."""
        return self._clock()

    def remember(self, record: MemoryRecord) -> str:
        """Store one memory; storing the same content again replaces it. Returns its id."""
        return self.remember_many([record])[0]

    def remember_many(self, records: Sequence[MemoryRecord]) -> list[str]:
        """Store several memories with one embedding batch (page-out writes many at once)."""
        if not records:
            return []
        vectors = self.embedder.embed_passages([r.text for r in records])
        self.index.upsert([r.id for r in records], vectors, [r.payload() for r in records])
        return [r.id for r in records]

    def get(self, memory_id: str) -> MemoryRecord | None:
        """One memory by id, or None."""
        payload = self.index.get(str(uuid.UUID(memory_id)))
        return None if payload is None else _record(memory_id, payload)

    def count(self, tenant: str | None = None) -> int:
        """How many memories are stored (for one tenant, or all)."""
        return self.index.count(Scope(tenant=tenant))

    def relevance_of(self, record: MemoryRecord, now: float | None = None) -> float:
        """Relevance of a stored memory now (query-independent)."""
        return relevance(
            importance=record.importance,
            kind=record.kind,
            created_at=record.created_at,
            last_access=record.last_access,
            access_count=record.access_count,
            now=self._clock() if now is None else now,
            params=self.params,
        )

    def recall(
        self,
        query: str,
        tenant: str,
        k: int = 5,
        min_relevance: float | None = None,
        kinds: Collection[MemoryKind] | None = None,
        *,
        task_id: str | None = None,
        touch: bool = True,
    ) -> list[Recalled]:
        """The k best memories of a tenant for `query`, each scoring at least `min_relevance`.

        The score is calibrated similarity × relevance, so `min_relevance` cuts both weak
        matches and stale memories. Returned memories count as accessed (`touch`), which keeps
        memories that keep proving useful from decaying away.
        """
        if k < 1 or not query.strip() or (kinds is not None and not kinds):
            return []
        with span("memory_recall", tenant=tenant, k=k) as current:
            hits = self._recall(query, tenant, k, min_relevance, kinds, task_id, touch)
            current.set_attribute("strategos.hits", len(hits))
        return hits

    def _recall(
        self,
        query: str,
        tenant: str,
        k: int,
        min_relevance: float | None,
        kinds: Collection[MemoryKind] | None,
        task_id: str | None,
        touch: bool,
    ) -> list[Recalled]:
        threshold = self.params.min_recall_score if min_relevance is None else min_relevance
        scope = _scope(tenant=tenant, kinds=kinds, task_id=task_id)
        vector = self._embed_query(query)
        points = self.index.search(vector, scope, limit=max(4 * k, 16))
        now = self._clock()
        hits: list[Recalled] = []
        for point in points:
            record = _record(point.id, point.payload)
            rel = self.relevance_of(record, now)
            score = recall_score(point.score, rel, self.params)
            if score >= threshold and score > 0.0:
                hits.append(Recalled(record, point.score, rel, score))
        hits.sort(key=lambda h: (-h.score, h.record.id))
        hits = hits[:k]
        if touch and hits:
            self._touch(hits, now)
        return hits

    def _embed_query(self, query: str) -> list[float]:
        cached = self._query_cache.get(query)
        if cached is not None:
            self._query_cache.move_to_end(query)
            return cached
        vector = self.embedder.embed_query([query])[0]
        self._query_cache[query] = vector
        if len(self._query_cache) > 256:
            self._query_cache.popitem(last=False)
        return vector

    def lessons(self, goal: str, tenant: str, k: int = 3) -> list[Recalled]:
        """Critiques, failures and solutions from earlier attempts that match a goal."""
        kinds: list[MemoryKind] = ["critique", "test_failure", "solution"]
        return self.recall(recall_query(goal), tenant, k, kinds=kinds)

    def _touch(self, hits: Sequence[Recalled], now: float) -> None:
        self.index.set_payloads(
            [
                (h.record.id, {"last_access": now, "access_count": h.record.access_count + 1})
                for h in hits
            ]
        )

    def forget_below(self, threshold: float | None = None, *, tenant: str | None = None) -> int:
        """Delete memories whose relevance fell below the threshold; returns how many."""
        limit = self.params.eviction_threshold if threshold is None else threshold
        now = self._clock()
        doomed = [
            p.id
            for p in self.index.scroll(Scope(tenant=tenant))
            if should_evict(self.relevance_of(_record(p.id, p.payload), now), limit)
        ]
        self.index.delete(doomed)
        return len(doomed)


def _record(point_id: str, payload: Mapping[str, object]) -> MemoryRecord:
    # ignore payload keys this version does not know (written by a newer one)
    known = {k: v for k, v in payload.items() if k in MemoryRecord.model_fields}
    return MemoryRecord.model_validate({**known, "id": point_id})


def _scope(
    *,
    tenant: str,
    kinds: Collection[str] | None = None,
    task_id: str | None = None,
) -> Scope:
    if kinds is not None:
        unknown = set(kinds) - set(MEMORY_KINDS)
        if unknown:
            raise ValueError(f"unknown memory kinds {sorted(unknown)}; use {MEMORY_KINDS}")
    return Scope(
        tenant=tenant, kinds=None if kinds is None else tuple(sorted(kinds)), task_id=task_id
    )
