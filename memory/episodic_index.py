"""Where episodic memories are kept: the few operations `EpisodicMemory` needs, two engines.

`EpisodicMemory` ranks, decays and touches memories; it needs only to store a vector with its
payload, find the nearest ones inside a scope (tenant, kinds, task), read, count, update and
delete them. This module names those operations (`EpisodeIndex`) and implements them on
`qdrant-client` (`QdrantClientIndex`: a Qdrant server in production, `:memory:` in tests). The
embedded default, Qdrant Edge, is in `episodic_edge`. Both are Qdrant, so they filter and score
alike (cosine over stored vectors) and a memory ranks the same whichever engine keeps it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from qdrant_client import QdrantClient
from qdrant_client import models as qm

__all__ = [
    "KEYWORD_FIELDS",
    "EmbeddingDimensionMismatch",
    "EpisodeIndex",
    "QdrantClientIndex",
    "Scope",
    "StoredPoint",
]

KEYWORD_FIELDS = ("tenant", "kind", "task_id")
"""Payload fields recall filters on: indexed by both engines, so a filter never scans."""

_FLOAT_FIELDS = ("created_at", "last_access")


class EmbeddingDimensionMismatch(ValueError):
    """The collection was created for another embedding width."""


@dataclass(frozen=True)
class Scope:
    """Which memories an operation sees; None means "any". Tenant is the isolation boundary."""

    tenant: str | None = None
    kinds: tuple[str, ...] | None = None
    task_id: str | None = None


@dataclass(frozen=True)
class StoredPoint:
    """A point as an engine returns it: id (a UUID string), payload and, for a search, score."""

    id: str
    payload: Mapping[str, object]
    score: float = 0.0


class EpisodeIndex(Protocol):
    """One collection of episodic memories: vectors of a fixed width with their payloads."""

    def upsert(
        self,
        ids: Sequence[str],
        vectors: Sequence[Sequence[float]],
        payloads: Sequence[Mapping[str, object]],
    ) -> None:
        """Store points, replacing those with the same ids; durable when it returns."""
        ...

    def get(self, point_id: str) -> Mapping[str, object] | None:
        """The payload of one point, or None."""
        ...

    def count(self, scope: Scope) -> int:
        """How many points are in the scope (exactly)."""
        ...

    def search(self, vector: Sequence[float], scope: Scope, limit: int) -> list[StoredPoint]:
        """The `limit` points of the scope nearest to `vector` by cosine, best first."""
        ...

    def set_payloads(self, updates: Sequence[tuple[str, Mapping[str, object]]]) -> None:
        """Merge fields into the payloads of existing points (access statistics)."""
        ...

    def scroll(self, scope: Scope) -> Iterator[StoredPoint]:
        """Every point of the scope, in pages, without vectors."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Delete points by id (unknown ids are ignored); durable when it returns."""
        ...


class QdrantClientIndex:
    """A collection reached through `qdrant-client`: a server, `:memory:` or local mode.

    The client may be shared (the LangGraph store uses the same one), so this index never
    closes it: whoever built it does.
    """

    def __init__(self, client: QdrantClient, collection: str, dim: int) -> None:
        self.client = client
        self.collection = collection
        self._ensure(dim)

    def _ensure(self, dim: int) -> None:
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
            for field in KEYWORD_FIELDS:
                self.client.create_payload_index(
                    self.collection, field, qm.PayloadSchemaType.KEYWORD
                )
            for field in _FLOAT_FIELDS:
                self.client.create_payload_index(self.collection, field, qm.PayloadSchemaType.FLOAT)

    def upsert(
        self,
        ids: Sequence[str],
        vectors: Sequence[Sequence[float]],
        payloads: Sequence[Mapping[str, object]],
    ) -> None:
        """Store points with `wait=True`: applied (and committed in local mode) on return."""
        points = [
            qm.PointStruct(id=i, vector=list(v), payload=dict(p))
            for i, v, p in zip(ids, vectors, payloads, strict=True)
        ]
        self.client.upsert(self.collection, points=points, wait=True)

    def get(self, point_id: str) -> Mapping[str, object] | None:
        """The payload of one point, or None."""
        found = self.client.retrieve(self.collection, ids=[point_id], with_payload=True)
        return (found[0].payload or {}) if found else None

    def count(self, scope: Scope) -> int:
        """Exact count in the scope."""
        return self.client.count(self.collection, count_filter=_filter(scope), exact=True).count

    def search(self, vector: Sequence[float], scope: Scope, limit: int) -> list[StoredPoint]:
        """Nearest points of the scope, best first."""
        response = self.client.query_points(
            self.collection,
            query=list(vector),
            query_filter=_filter(scope),
            limit=limit,
            with_payload=True,
        )
        return [StoredPoint(str(p.id), p.payload or {}, p.score) for p in response.points]

    def set_payloads(self, updates: Sequence[tuple[str, Mapping[str, object]]]) -> None:
        """All updates in one batch request."""
        if not updates:
            return
        ops: list[qm.UpdateOperation] = [
            qm.SetPayloadOperation(set_payload=qm.SetPayload(payload=dict(p), points=[i]))
            for i, p in updates
        ]
        self.client.batch_update_points(self.collection, ops, wait=True)

    def scroll(self, scope: Scope) -> Iterator[StoredPoint]:
        """Every point of the scope, 256 at a time."""
        offset: qm.ExtendedPointId | None = None
        while True:
            points, offset = self.client.scroll(
                self.collection,
                scroll_filter=_filter(scope),
                limit=256,
                offset=offset,
                with_payload=True,
                with_vectors=False,
            )
            for p in points:
                yield StoredPoint(str(p.id), p.payload or {})
            if offset is None:
                return

    def delete(self, ids: Sequence[str]) -> None:
        """Delete in batches of 512 ids."""
        for start in range(0, len(ids), 512):
            self.client.delete(
                self.collection,
                points_selector=qm.PointIdsList(points=list(ids[start : start + 512])),
                wait=True,
            )


def _filter(scope: Scope) -> qm.Filter | None:
    must: list[qm.Condition] = []
    if scope.tenant is not None:
        must.append(qm.FieldCondition(key="tenant", match=qm.MatchValue(value=scope.tenant)))
    if scope.kinds is not None:
        must.append(qm.FieldCondition(key="kind", match=qm.MatchAny(any=list(scope.kinds))))
    if scope.task_id is not None:
        must.append(qm.FieldCondition(key="task_id", match=qm.MatchValue(value=scope.task_id)))
    return qm.Filter(must=must) if must else None
