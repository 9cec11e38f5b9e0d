"""A LangGraph `BaseStore` on Qdrant with semantic search.

Nodes reach long-term memory through `get_store()` and the Server API through `/store`; both
speak `BaseStore`. This implementation keeps items in a Qdrant collection through
`qdrant-client` (a server, local mode under `memory_dir()`, or `:memory:`), with the embedder
`EpisodicMemory` uses; with a server configured, one Qdrant serves both. Embedded, episodic
memory has its own engine (Qdrant Edge, `episodic_edge`) and the store stays in local mode.

Semantics follow LangGraph's stores: namespaces are tuples of labels without dots, `put(None)`
deletes, `search` without a query lists newest first, with a query ranks by cosine similarity
(scores in `SearchItem.score`) and fills up with unindexed items, like `InMemoryStore`. Items
with several indexed texts are embedded as one passage (their texts joined), not one vector
each. TTLs are not supported.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    get_text_at_path,
    tokenize_path,
    validate_op_namespace,
)
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from memory.embeddings import Embedder

__all__ = ["QdrantStore"]

_VECTOR = "text"
type _Payload = Mapping[str, object]
"""A point's payload as Qdrant returns it: JSON this store wrote, checked where it is read."""
_ID_NAMESPACE = uuid.UUID("0b5e8d53-1f0c-4c55-a2a6-1c1f6c3e7a90")


def _point_id(namespace: tuple[str, ...], key: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, "\x1f".join(namespace) + "\x1e" + key))


def _prefixes(namespace: tuple[str, ...]) -> list[str]:
    # Labels cannot contain dots (BaseStore validates it), so "a.b" is unambiguous.
    return [".".join(namespace[: i + 1]) for i in range(len(namespace))]


class QdrantStore(BaseStore):
    """LangGraph store over one Qdrant collection; `fields` picks the text to embed."""

    def __init__(
        self,
        client: QdrantClient,
        embedder: Embedder,
        *,
        collection: str = "strategos_store",
        fields: Sequence[str] = ("$",),
    ) -> None:
        self.client = client
        self.embedder = embedder
        self.collection = collection
        self.fields = list(fields)
        self._lock = threading.RLock()
        if not client.collection_exists(collection):
            client.create_collection(
                collection,
                vectors_config={
                    _VECTOR: qm.VectorParams(size=embedder.dim, distance=qm.Distance.COSINE)
                },
            )

    # -- batch entry points -------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ops in order; all embeddings of the batch are computed in two calls."""
        op_list = list(ops)
        for op in op_list:
            validate_op_namespace(op)
        passages = self._passages(op_list)
        vectors: dict[int, list[float]] = {}
        if passages:
            embedded = self.embedder.embed_passages(list(passages.values()))
            vectors = dict(zip(passages, embedded, strict=True))
        queries = sorted({op.query for op in op_list if isinstance(op, SearchOp) and op.query})
        qvecs: dict[str, list[float]] = {}
        if queries:
            qvecs = dict(zip(queries, self.embedder.embed_query(queries), strict=True))
        results: list[Result] = []
        with self._lock:
            for i, op in enumerate(op_list):
                if isinstance(op, GetOp):
                    results.append(self._get(op))
                elif isinstance(op, PutOp):
                    self._put(op, vectors.get(i))
                    results.append(None)
                elif isinstance(op, SearchOp):
                    results.append(self._search(op, qvecs.get(op.query or "")))
                elif isinstance(op, ListNamespacesOp):
                    results.append(self._list_namespaces(op))
                else:
                    raise ValueError(f"unknown store operation {type(op).__name__}")
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Same as `batch`, off the event loop: the Qdrant client and the model block."""
        return await asyncio.to_thread(self.batch, list(ops))

    # -- operations ---------------------------------------------------------------------

    def _passages(self, ops: Sequence[Op]) -> dict[int, str]:
        out: dict[int, str] = {}
        for i, op in enumerate(ops):
            if not isinstance(op, PutOp) or op.value is None or op.index is False:
                continue
            paths = self.fields if op.index is None else op.index
            texts: list[str] = []
            for path in paths:
                texts.extend(
                    get_text_at_path(op.value, path if path == "$" else tokenize_path(path))
                )
            if texts:
                out[i] = "\n".join(texts)
        return out

    def _get(self, op: GetOp) -> Item | None:
        found = self.client.retrieve(
            self.collection, ids=[_point_id(op.namespace, op.key)], with_payload=True
        )
        if not found:
            return None
        hit = _item(found[0].payload)
        return Item(
            namespace=hit.namespace,
            key=hit.key,
            value=hit.value,
            created_at=hit.created_at,
            updated_at=hit.updated_at,
        )

    def _put(self, op: PutOp, vector: list[float] | None) -> None:
        pid = _point_id(op.namespace, op.key)
        if op.value is None:
            self.client.delete(
                self.collection, points_selector=qm.PointIdsList(points=[pid]), wait=True
            )
            return
        now = datetime.now(UTC)
        old = self.client.retrieve(self.collection, ids=[pid], with_payload=True)
        created = (old[0].payload or {}).get("created_at") if old else None
        payload = {
            "namespace": list(op.namespace),
            "ns_prefixes": _prefixes(op.namespace),
            "key": op.key,
            "value": dict(op.value),
            "created_at": created or now.isoformat(),
            "updated_at": now.isoformat(),
            "updated_ts": now.timestamp(),
            "indexed": vector is not None,
        }
        vec: dict[str, list[float]] = {_VECTOR: vector} if vector is not None else {}
        self.client.upsert(
            self.collection, points=[qm.PointStruct(id=pid, vector=vec, payload=payload)], wait=True
        )

    def _search(self, op: SearchOp, qvec: list[float] | None) -> list[SearchItem]:
        flt = _search_filter(op)
        want = op.offset + op.limit
        if op.limit <= 0:
            return []
        if qvec is None:
            records = sorted(self._scroll(flt), key=_updated_ts, reverse=True)
            return [_item(p, None) for p in records[op.offset : want]]
        scored = self.client.query_points(
            self.collection,
            query=qvec,
            using=_VECTOR,
            query_filter=flt,
            limit=want,
            with_payload=True,
        ).points
        hits = [_item(p.payload, p.score) for p in scored][op.offset :]
        if len(hits) < op.limit:
            # like InMemoryStore: items stored with index=False still show up, unscored
            unindexed = qm.Filter(
                must=[
                    flt,
                    qm.FieldCondition(key="indexed", match=qm.MatchValue(value=False)),
                ]
            )
            skip = max(op.offset - len(scored), 0)
            rest = sorted(self._scroll(unindexed), key=_updated_ts, reverse=True)
            hits.extend(_item(p, None) for p in rest[skip : skip + op.limit - len(hits)])
        return hits

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        namespaces = {_namespace(p) for p in self._scroll(None, fields=["namespace"])}
        matching = [
            ns
            for ns in namespaces
            if all(_matches(cond, ns) for cond in (op.match_conditions or ()))
        ]
        if op.max_depth is not None:
            matching = list({ns[: op.max_depth] for ns in matching})
        return sorted(matching)[op.offset : op.offset + op.limit]

    def _scroll(self, flt: qm.Filter | None, fields: list[str] | None = None) -> Iterator[_Payload]:
        offset: qm.ExtendedPointId | None = None
        with_payload: bool | list[str] = fields if fields is not None else True
        while True:
            points, offset = self.client.scroll(
                self.collection,
                scroll_filter=flt,
                limit=256,
                offset=offset,
                with_payload=with_payload,
                with_vectors=False,
            )
            for p in points:
                yield dict(p.payload or {})
            if offset is None:
                return


def _item(payload: _Payload | None, score: float | None = None) -> SearchItem:
    p = payload or {}
    key, value = p.get("key"), p.get("value")
    if not isinstance(key, str) or not isinstance(value, dict):
        raise ValueError(f"not a store item (payload keys {sorted(p)})")
    return SearchItem(
        namespace=_namespace(p),
        key=key,
        value=value,
        created_at=_time(p, "created_at"),
        updated_at=_time(p, "updated_at"),
        score=score,
    )


def _namespace(p: _Payload) -> tuple[str, ...]:
    labels = p.get("namespace")
    if not isinstance(labels, list):
        raise ValueError("store item without a namespace")
    return tuple(str(label) for label in labels)


def _time(p: _Payload, name: str) -> datetime:
    text = p.get(name)
    if not isinstance(text, str):
        raise ValueError(f"store item without {name}")
    return datetime.fromisoformat(text)


def _updated_ts(p: _Payload) -> float:
    """Sort key, newest first when reversed; items written before the field count as oldest."""
    ts = p.get("updated_ts", 0.0)
    return float(ts) if isinstance(ts, int | float) else 0.0


def _matches(cond: MatchCondition, ns: tuple[str, ...]) -> bool:
    path = cond.path
    if len(ns) < len(path):
        return False
    pairs = (
        zip(ns, path, strict=False)
        if cond.match_type == "prefix"
        else zip(reversed(ns), reversed(path), strict=False)
    )
    return all(p == "*" or n == p for n, p in pairs)


def _search_filter(op: SearchOp) -> qm.Filter:
    must: list[qm.Condition] = []
    must_not: list[qm.Condition] = []
    if op.namespace_prefix:
        must.append(
            qm.FieldCondition(
                key="ns_prefixes", match=qm.MatchValue(value=".".join(op.namespace_prefix))
            )
        )
    for key, value in (op.filter or {}).items():
        _add_condition(f"value.{key}", value, must, must_not)
    return qm.Filter(must=must, must_not=must_not)


def _add_condition(
    key: str, value: object, must: list[qm.Condition], must_not: list[qm.Condition]
) -> None:
    """Translate one LangGraph filter entry ($eq/$ne/$gt/$gte/$lt/$lte, nesting) to Qdrant."""
    if isinstance(value, dict):
        if any(k.startswith("$") for k in value):
            for op_name, operand in value.items():
                _add_operator(key, op_name, operand, must, must_not)
        else:
            for sub, subval in value.items():
                _add_condition(f"{key}.{sub}", subval, must, must_not)
        return
    must.append(_equals(key, value))


def _add_operator(
    key: str, op_name: str, operand: object, must: list[qm.Condition], must_not: list[qm.Condition]
) -> None:
    ranges = {"$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}
    if op_name == "$eq":
        must.append(_equals(key, operand))
    elif op_name == "$ne":
        must_not.append(_equals(key, operand))
    elif op_name in ranges:
        if not isinstance(operand, int | float | str):
            raise ValueError(f"filter {op_name} on {key!r} needs a number, got {operand!r}")
        must.append(qm.FieldCondition(key=key, range=qm.Range(**{ranges[op_name]: float(operand)})))
    else:
        raise ValueError(f"unsupported filter operator {op_name!r}")


def _equals(key: str, value: object) -> qm.Condition:
    if value is None:
        return qm.IsEmptyCondition(is_empty=qm.PayloadField(key=key))
    if isinstance(value, bool | int | str):
        return qm.FieldCondition(key=key, match=qm.MatchValue(value=value))
    if isinstance(value, float):
        return qm.FieldCondition(key=key, range=qm.Range(gte=value, lte=value))
    raise ValueError(
        f"filter on {key!r}: only scalar values and $-operators are supported, got "
        f"{type(value).__name__}"
    )
