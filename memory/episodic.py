"""Episodic memory on Qdrant: what happened in earlier tasks, retrievable by meaning.

Observations, test failures, critiques and solutions are embedded as passages and stored with
their tenant, task, kind, time and importance. Recall embeds a query, filters by tenant (never
leak one user's memories into another's prompt), re-ranks by similarity × relevance (see
`scoring`) and keeps only hits above a threshold, so a weak match never crowds the prompt.

The same `QdrantClient` calls serve `QdrantClient(":memory:")` (tests), `QdrantClient(path=…)`
(embedded default) and `QdrantClient(url=…)` (production): nothing here branches on the mode.
"""

from __future__ import annotations

import time
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from memory.embeddings import Embedder
from memory.recall_query import recall_query
from memory.scoring import ScoringParams, recall_score, relevance, should_evict

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


class EmbeddingDimensionMismatch(ValueError):
    """The collection was created for another embedding width."""


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
    """Store, recall and forget episodic memories in one Qdrant collection."""

    def __init__(
        self,
        client: QdrantClient,
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
        self._ensure_collection()

    def _ensure_collection(self) -> None:
        dim = self.embedder.dim
        if self.client.collection_exists(self.collection):
            vectors = self.client.get_collection(self.collection).config.params.vectors
            size = vectors.size if isinstance(vectors, qm.VectorParams) else None
            if size != dim:
                raise EmbeddingDimensionMismatch(
                    f"collection {self.collection!r} holds vectors of size {size}, the embedder "
                    f"makes {dim}: use another collection name or re-embed the memories"
                )
            return
        self.client.create_collection(
            self.collection,
            vectors_config=qm.VectorParams(size=dim, distance=qm.Distance.COSINE),
        )
        with warnings.catch_warnings():
            # local mode warns that payload indexes are a no-op there; a server uses them
            warnings.simplefilter("ignore", UserWarning)
            for field in ("tenant", "kind", "task_id"):
                self.client.create_payload_index(
                    self.collection, field, qm.PayloadSchemaType.KEYWORD
                )
            for field in ("created_at", "last_access"):
                self.client.create_payload_index(self.collection, field, qm.PayloadSchemaType.FLOAT)

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
        points = [
            qm.PointStruct(id=r.id, vector=v, payload=r.payload())
            for r, v in zip(records, vectors, strict=True)
        ]
        self.client.upsert(self.collection, points=points, wait=True)
        return [r.id for r in records]

    def get(self, memory_id: str) -> MemoryRecord | None:
        """One memory by id, or None."""
        found = self.client.retrieve(self.collection, ids=[memory_id], with_payload=True)
        if not found:
            return None
        return _record(found[0].id, found[0].payload)

    def count(self, tenant: str | None = None) -> int:
        """How many memories are stored (for one tenant, or all)."""
        flt = _filter(tenant=tenant) if tenant is not None else None
        return self.client.count(self.collection, count_filter=flt, exact=True).count

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
        threshold = self.params.min_recall_score if min_relevance is None else min_relevance
        vector = self._embed_query(query)
        response = self.client.query_points(
            self.collection,
            query=vector,
            query_filter=_filter(tenant=tenant, kinds=kinds, task_id=task_id),
            limit=max(4 * k, 16),
            with_payload=True,
        )
        now = self._clock()
        hits: list[Recalled] = []
        for point in response.points:
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
        ops: list[qm.UpdateOperation] = [
            qm.SetPayloadOperation(
                set_payload=qm.SetPayload(
                    payload={"last_access": now, "access_count": h.record.access_count + 1},
                    points=[h.record.id],
                )
            )
            for h in hits
        ]
        self.client.batch_update_points(self.collection, ops, wait=True)

    def _scroll(self, flt: qm.Filter | None) -> Iterator[MemoryRecord]:
        offset: qm.ExtendedPointId | None = None
        while True:
            points, offset = self.client.scroll(
                self.collection,
                scroll_filter=flt,
                limit=256,
                offset=offset,
                with_payload=True,
                with_vectors=False,
            )
            for p in points:
                yield _record(p.id, p.payload)
            if offset is None:
                return

    def forget_below(self, threshold: float | None = None, *, tenant: str | None = None) -> int:
        """Delete memories whose relevance fell below the threshold; returns how many."""
        limit = self.params.eviction_threshold if threshold is None else threshold
        now = self._clock()
        flt = _filter(tenant=tenant) if tenant is not None else None
        doomed = [r.id for r in self._scroll(flt) if should_evict(self.relevance_of(r, now), limit)]
        for start in range(0, len(doomed), 512):
            self.client.delete(
                self.collection,
                points_selector=qm.PointIdsList(points=list(doomed[start : start + 512])),
                wait=True,
            )
        return len(doomed)


def _record(point_id: qm.ExtendedPointId, payload: Mapping[str, object] | None) -> MemoryRecord:
    # ignore payload keys this version does not know (written by a newer one)
    known = {k: v for k, v in (payload or {}).items() if k in MemoryRecord.model_fields}
    return MemoryRecord.model_validate({**known, "id": str(point_id)})


def _filter(
    *,
    tenant: str | None,
    kinds: Collection[str] | None = None,
    task_id: str | None = None,
) -> qm.Filter:
    must: list[qm.Condition] = []
    if tenant is not None:
        must.append(qm.FieldCondition(key="tenant", match=qm.MatchValue(value=tenant)))
    if kinds is not None:
        unknown = set(kinds) - set(MEMORY_KINDS)
        if unknown:
            raise ValueError(f"unknown memory kinds {sorted(unknown)}; use {MEMORY_KINDS}")
        must.append(qm.FieldCondition(key="kind", match=qm.MatchAny(any=sorted(kinds))))
    if task_id is not None:
        must.append(qm.FieldCondition(key="task_id", match=qm.MatchValue(value=task_id)))
    return qm.Filter(must=must)
