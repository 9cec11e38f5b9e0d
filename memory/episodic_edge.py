"""Qdrant Edge: the embedded engine episodic memory uses when no Qdrant server is configured.

Qdrant's local mode (`QdrantClient(path=…)`) keeps every point in Python objects and checks the
tenant filter and the cosine point by point, so recall grew linearly with the collection: about
300 ms at 10k memories (`bench/memory/README.md`). Qdrant Edge (`qdrant-edge-py`) runs Qdrant's
own segment engine in the process: a keyword index on `tenant` (declared as the tenant field)
narrows a search to the tenant's points before SIMD scoring, and the data lives in segments with
a write-ahead log on disk, so memories survive a restart and even a killed process.

One `EdgeShards` is a folder with one shard per collection, the counterpart of a local-mode
client: open it once per process (a shard's WAL lock refuses a second opener, as local mode's
folder lock did) and hand it to `EpisodicMemory`. A Qdrant server still goes through
`qdrant-client` (`episodic_index.QdrantClientIndex`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import qdrant_edge as qe
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from memory.episodic_index import KEYWORD_FIELDS, EmbeddingDimensionMismatch, Scope, StoredPoint

__all__ = ["EdgeIndex", "EdgeShards"]

_COLLECTION = re.compile(r"[A-Za-z0-9_-]{1,128}")
_PAGE = 256


class EdgeIndex:
    """One collection in a Qdrant Edge shard (see `episodic_index.EpisodeIndex`).

    Searches are exact (`SearchParams(exact=True)`): the tenant index already cuts the work to
    one tenant's points, and exact scoring returns the same neighbours the old brute-force scan
    did, even after `optimize()` builds an approximate HNSW graph.
    """

    def __init__(self, shard: qe.EdgeShard, path: Path, dim: int) -> None:
        self.shard = shard
        self.path = path
        self.dim = dim

    @classmethod
    def open(cls, path: Path, dim: int) -> EdgeIndex:
        """Load the shard at `path`, or create it (with its payload indexes) when absent."""
        config = qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine))
        if path.is_dir() and any(path.iterdir()):
            try:
                shard = qe.EdgeShard.load(str(path), config)
            except Exception as exc:  # the binding raises plain Exception
                if "incompatible" not in str(exc).lower():
                    raise
                raise EmbeddingDimensionMismatch(
                    f"collection {path.name!r} at {path} does not take {dim}-wide cosine vectors "
                    f"({exc}): use another collection name or re-embed the memories"
                ) from exc
            return cls(shard, path, dim)
        shard = qe.EdgeShard.create(str(path), config)
        shard.update(
            qe.UpdateOperation.create_field_index("tenant", qe.KeywordIndexParams(is_tenant=True))
        )
        for field in KEYWORD_FIELDS:
            if field != "tenant":
                shard.update(
                    qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword)
                )
        return cls(shard, path, dim)

    def upsert(
        self,
        ids: Sequence[str],
        vectors: Sequence[Sequence[float]],
        payloads: Sequence[Mapping[str, object]],
    ) -> None:
        """Store points and flush them, so they are on disk when this returns.

        The WAL alone already survives a killed process; the flush (an fsync, ~0.1-0.2 s) also
        covers a power cut, as local mode's SQLite commit did. Memories are written a few times
        per task, so the write pays for this, not recall.
        """
        self._upsert(ids, vectors, payloads)
        self.shard.flush()

    def _upsert(
        self,
        ids: Sequence[str],
        vectors: Sequence[Sequence[float]],
        payloads: Sequence[Mapping[str, object]],
    ) -> None:
        points = [
            qe.Point(i, [float(x) for x in v], dict(p))
            for i, v, p in zip(ids, vectors, payloads, strict=True)
        ]
        if points:
            self.shard.update(qe.UpdateOperation.upsert_points(points))

    def get(self, point_id: str) -> Mapping[str, object] | None:
        """The payload of one point, or None."""
        found = self.shard.retrieve([point_id], True, False)
        return (found[0].payload or {}) if found else None

    def count(self, scope: Scope) -> int:
        """Exact count in the scope."""
        return self.shard.count(qe.CountRequest(exact=True, filter=_filter(scope)))

    def search(self, vector: Sequence[float], scope: Scope, limit: int) -> list[StoredPoint]:
        """Exact nearest points of the scope, best first."""
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest([float(x) for x in vector]),
            filter=_filter(scope),
            with_payload=True,
            params=qe.SearchParams(exact=True),
        )
        return [StoredPoint(str(p.id), p.payload or {}, p.score) for p in self.shard.query(request)]

    def set_payloads(self, updates: Sequence[tuple[str, Mapping[str, object]]]) -> None:
        """Merge fields into payloads; WAL-logged, not flushed (access stats are cheap to lose)."""
        for point_id, payload in updates:
            self.shard.update(qe.UpdateOperation.set_payload([point_id], dict(payload)))

    def scroll(self, scope: Scope) -> Iterator[StoredPoint]:
        """Every point of the scope, a page at a time."""
        offset: qe.PointId | None = None
        while True:
            records, offset = self.shard.scroll(
                qe.ScrollRequest(
                    offset=offset,
                    limit=_PAGE,
                    filter=_filter(scope),
                    with_payload=True,
                    with_vector=False,
                )
            )
            for r in records:
                yield StoredPoint(str(r.id), r.payload or {})
            if offset is None:
                return

    def delete(self, ids: Sequence[str]) -> None:
        """Delete points by id and flush."""
        if ids:
            self.shard.update(qe.UpdateOperation.delete_points(list(ids)))
            self.shard.flush()

    def close(self) -> None:
        """Close the shard (idempotent); the folder's `EdgeShards` normally does this."""
        self.shard.close()


class EdgeShards:
    """A folder of Qdrant Edge shards, one per collection: the embedded episodic store.

    Shards stay open until `close`, and asking twice for a collection returns the same index,
    so several `EpisodicMemory` objects of one process can share a collection.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._open: dict[str, EdgeIndex] = {}

    def index(self, collection: str, dim: int) -> EdgeIndex:
        """The collection's index, opened or created on first use."""
        if not _COLLECTION.fullmatch(collection):
            raise ValueError(
                f"collection name {collection!r} is not a safe folder name ([A-Za-z0-9_-]{{1,128}})"
            )
        with self._lock:
            index = self._open.get(collection)
            if index is None:
                self.path.mkdir(parents=True, exist_ok=True)
                index = EdgeIndex.open(self.path / collection, dim)
                self._open[collection] = index
            elif index.dim != dim:
                raise EmbeddingDimensionMismatch(
                    f"collection {collection!r} holds vectors of size {index.dim}, the embedder "
                    f"makes {dim}: use another collection name or re-embed the memories"
                )
            return index

    def adopted(self, collection: str) -> bool:
        """Whether `adopt` already ran for this collection (then there is nothing to copy)."""
        return self._marker(collection).exists()

    def adopt(self, collection: str, source: QdrantClient) -> int:
        """Copy `collection` from the client that kept it before this engine did, once.

        Until this engine was the default, episodic memory lived in local-mode Qdrant under
        `memory_dir()`; without this, an upgrade would start with an empty memory. Points keep
        their ids, vectors and payloads, and the source is left as it was. A marker file records
        the copy, so later starts skip it; an interrupted copy runs again (upserts are
        idempotent). Returns how many points were copied.
        """
        if self.adopted(collection):
            return 0
        copied = 0
        if source.collection_exists(collection):
            vectors = source.get_collection(collection).config.params.vectors
            size = vectors.size if isinstance(vectors, qm.VectorParams) else None
            if size is None:
                raise EmbeddingDimensionMismatch(f"collection {collection!r} has named vectors")
            index = self.index(collection, size)
            offset: qm.ExtendedPointId | None = None
            while True:
                points, offset = source.scroll(
                    collection, limit=_PAGE, offset=offset, with_payload=True, with_vectors=True
                )
                index._upsert(
                    [str(p.id) for p in points],
                    [_plain(p.vector) for p in points],
                    [p.payload or {} for p in points],
                )
                copied += len(points)
                if offset is None:
                    break
            index.shard.flush()
        self.path.mkdir(parents=True, exist_ok=True)
        self._marker(collection).write_text(f"copied {copied} points from local-mode Qdrant\n")
        return copied

    def _marker(self, collection: str) -> Path:
        return self.path / f".{collection}.adopted"

    def close(self) -> None:
        """Close every open shard (releasing their WAL locks); idempotent."""
        with self._lock:
            for index in self._open.values():
                index.close()
            self._open.clear()


def _plain(vector: object) -> list[float]:
    """The single unnamed vector local mode returns for a point (the only kind memory writes)."""
    if isinstance(vector, list) and all(isinstance(x, float | int) for x in vector):
        return [float(x) for x in vector]
    raise ValueError(f"expected one unnamed dense vector per point, got {type(vector).__name__}")


def _filter(scope: Scope) -> qe.Filter | None:
    must: list[qe.ConditionType] = []
    if scope.tenant is not None:
        must.append(qe.FieldCondition("tenant", match=qe.MatchValue(scope.tenant)))
    if scope.kinds is not None:
        must.append(qe.FieldCondition("kind", match=qe.MatchAny(list(scope.kinds))))
    if scope.task_id is not None:
        must.append(qe.FieldCondition("task_id", match=qe.MatchValue(scope.task_id)))
    return qe.Filter(must=must) if must else None
