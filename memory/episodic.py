"""Episodic memory on Qdrant: what happened in earlier tasks, retrievable by meaning.

Observations, test failures, critiques and solutions are embedded as passages and stored with
their tenant, task, kind, time and importance. Recall embeds a query, filters by tenant (never
leak one user's memories into another's prompt), re-ranks by similarity × relevance (see
`scoring`) and keeps only hits above a threshold, so a weak match never crowds the prompt.

The same `QdrantClient` calls serve `QdrantClient(":memory:")` (tests), `QdrantClient(path=…)`
(embedded default) and `QdrantClient(url=…)` (production): nothing here branches on the mode.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from memory.embeddings import Embedder
from memory.scoring import ScoringParams, recall_score, relevance, should_evict
from tools.registry import MemoryHit

__all__ = [
    "MEMORY_KINDS",
    "EmbeddingDimensionMismatch",
    "EpisodicMemory",
    "MemoryKind",
    "MemoryRecord",
    "Recalled",
    "recall_query",
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

    def payload(self) -> dict[str, Any]:
        """What Qdrant stores beside the vector."""
        return self.model_dump(exclude={"id"})


@dataclass(frozen=True)
class Recalled:
    """A retrieval hit with the numbers that ranked it."""

    record: MemoryRecord
    similarity: float
    relevance: float
    score: float


_FENCED = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_DEF = re.compile(r"^\s*(?:async\s+)?(?:def|class)\s+([A-Za-z_]\w*)", re.MULTILINE)
_BACKTICK = re.compile(r"`([^`\n]{1,60})`")
_ERROR_NAME = re.compile(r"\b([A-Z]\w*(?:Error|Exception|Warning))\b")
_IDENT = re.compile(r"\b([A-Za-z_]\w*_\w+|[a-z]+[A-Z]\w*|[A-Z][a-z0-9]+[A-Z]\w*)\b")
_CALL = re.compile(r"\b([A-Za-z_]\w*)\(")
_CODE_LINE = re.compile(
    r"^\s*(?:>>>|\.\.\.|from\s+\w|import\s+\w|def\s|async\s+def\s|class\s|@|return\b|#)"
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def recall_query(goal: str, *, max_words: int = 24) -> str:
    """Rewrite a goal into a short search query, deterministically.

    Long goals embed badly (e5 reads 512 tokens and averages them), and code blocks drown the
    intent. So: drop code blocks, doctest and code lines; keep the first sentence of the prose;
    append the key identifiers (defined names, backticked names, error types) it lacks.
    """
    goal = goal[:20_000]  # bounds the regex work; the query keeps a few words anyway
    identifiers: list[str] = []

    def add(name: str) -> None:
        name = name.strip()
        if name and name not in identifiers:
            identifiers.append(name)

    for block in _FENCED.findall(goal):
        for name in _DEF.findall(block):
            add(name)
    for name in _DEF.findall(goal):
        add(name)
    for name in _BACKTICK.findall(goal):
        call = _CALL.match(name)
        add(call.group(1) if call else name)
    for name in _ERROR_NAME.findall(goal):
        add(name)

    prose_src = _FENCED.sub(" ", goal)
    prose_lines = [
        line for line in prose_src.splitlines() if line.strip() and not _CODE_LINE.match(line)
    ]
    prose = " ".join(" ".join(prose_lines).replace('"""', " ").replace("'''", " ").split())
    prose = prose.replace("`", "")
    first = _SENTENCE_END.split(prose, maxsplit=1)[0] if prose else ""
    for name in _IDENT.findall(prose):
        add(name)
    for name in _CALL.findall(prose):
        add(name)

    words = first.split()
    extra = [name for name in identifiers if name not in first]
    words = words[:max_words]
    room = max_words - len(words)
    if room < len(extra):
        # identifiers are the most specific words: keep them, shorten the sentence instead
        keep_sentence = max(max_words - len(extra), max_words // 2)
        words = words[:keep_sentence]
        room = max_words - len(words)
    words.extend(extra[:room])
    return " ".join(words)


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


def _record(point_id: qm.ExtendedPointId, payload: dict[str, Any] | None) -> MemoryRecord:
    # ignore payload keys this version does not know (written by a newer one)
    known = {k: v for k, v in (payload or {}).items() if k in MemoryRecord.model_fields}
    return MemoryRecord(id=str(point_id), **known)


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


class EpisodicSearch:
    """Episodic memory behind the `search_memory` tool's seam (`tools.registry.MemorySearch`).

    The tool runs in the gateway's event loop; recall embeds and queries Qdrant, so it runs in
    a thread. Scope `task` keeps to the calling task's memories, `tenant` to the tenant's.
    `open_memory` is called on the first search, so a gateway whose runs never search memory
    never loads the embedding model.
    """

    def __init__(self, open_memory: Callable[[], EpisodicMemory | None]) -> None:
        self.open_memory = open_memory

    async def search(
        self, query: str, *, k: int, tenant_id: str, task_id: str, scope: str
    ) -> list[MemoryHit]:
        """The k best memories as tool hits, best first."""
        memory = await asyncio.to_thread(self.open_memory)
        if memory is None:
            return []
        hits = await asyncio.to_thread(
            memory.recall,
            query,
            tenant_id,
            k,
            task_id=task_id if scope == "task" else None,
        )
        return [
            MemoryHit(
                id=hit.record.id,
                text=hit.record.text,
                score=round(hit.score, 6),
                metadata={
                    "kind": hit.record.kind,
                    "task_id": hit.record.task_id,
                    "importance": hit.record.importance,
                },
            )
            for hit in hits
        ]
