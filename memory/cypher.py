"""Cypher backends: one statement with parameters in, rows of plain data out.

Two adapters run the memory graph's Cypher: `Neo4jBackend` (the `neo4j` driver over Bolt;
production target Neo4j) and `FalkorDBBackend` (FalkorDB's native client; embedded default and
tests). Kept apart from `memory.graph` because they are the part that knows drivers and wire
quirks; the graph above them only speaks `CypherBackend`.

FalkorDB's experimental Bolt endpoint inlines parameters into the query text unescaped and into
a fixed 4 KiB stack buffer, prints floats with 6 decimals and serves only its default graph:
`Neo4jBackend(falkordb_bolt=True)` adapts to that.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from neo4j import RoutingControl

__all__ = [
    "BoltDriver",
    "CypherBackend",
    "CypherParams",
    "CypherRow",
    "CypherValue",
    "FalkorDBBackend",
    "GraphQueryTooLarge",
    "Neo4jBackend",
]

type CypherValue = (
    str | int | float | bool | None | Sequence[CypherValue] | Mapping[str, CypherValue]
)
"""What a Cypher parameter can hold: scalars, lists and maps of them."""
type CypherParams = Mapping[str, CypherValue]
type CypherRow = dict[str, object]
"""One result row: column name to whatever the driver returned (nodes become their maps)."""


class GraphQueryTooLarge(ValueError):
    """A statement with its parameters would overflow FalkorDB Bolt's 4 KiB buffer."""


@runtime_checkable
class CypherBackend(Protocol):
    """Runs one Cypher statement with parameters and returns rows as dicts."""

    name: str

    def run(self, query: str, params: CypherParams | None = None) -> list[CypherRow]:
        """Execute one statement (atomically) and return its rows."""
        ...

    def close(self) -> None:
        """Release connections the backend owns."""
        ...


# -- FalkorDB's native client ------------------------------------------------------------------


class _FalkorResult(Protocol):
    """What `Graph.query` answers (the `falkordb` package ships no types)."""

    @property
    def header(self) -> Sequence[Sequence[object]] | None:
        """Column descriptions: (type, name) pairs."""
        ...

    @property
    def result_set(self) -> Sequence[Sequence[object]] | None:
        """The rows, values in column order."""
        ...


class _FalkorGraph(Protocol):
    """One selected graph of a FalkorDB client."""

    def query(self, q: str, params: dict[str, CypherValue]) -> _FalkorResult:
        """Run a statement with native parameters."""
        ...


class _Closeable(Protocol):
    def close(self) -> None:
        """Release the connection."""
        ...


def _plain(value: object) -> object:
    """FalkorDB's client returns Node/Edge objects; rows should be plain data."""
    props = getattr(value, "properties", None)
    if isinstance(props, dict):
        return dict(props)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class FalkorDBBackend:
    """FalkorDB through its native client (`falkordb` package), one named graph."""

    name = "falkordb"

    def __init__(self, graph: _FalkorGraph, *, owner: _Closeable | None = None) -> None:
        self._graph = graph
        self._owner = owner

    @classmethod
    def connect(
        cls,
        host: str = "127.0.0.1",
        port: int = 6379,
        *,
        graph: str = "strategos",
        **kwargs: object,
    ) -> FalkorDBBackend:
        """Open a client to a FalkorDB server and select (lazily create) a graph."""
        from falkordb import FalkorDB  # type: ignore[import-untyped]

        db = FalkorDB(host=host, port=port, **kwargs)
        return cls(db.select_graph(graph), owner=db)

    def run(self, query: str, params: CypherParams | None = None) -> list[CypherRow]:
        """Execute with native parameters (the client quotes strings correctly)."""
        result = self._graph.query(query, dict(params or {}))
        names = [str(h[1]) for h in (result.header or [])]
        return [
            {n: _plain(v) for n, v in zip(names, row, strict=True)}
            for row in (result.result_set or [])
        ]

    def close(self) -> None:
        """Close the client if this backend opened it."""
        if self._owner is not None:
            self._owner.close()

    def ensure_indexes(self, labels: Sequence[str]) -> None:
        """Index (ns, key) per label so MERGE finds nodes without a label scan."""
        for label in labels:
            try:
                self.run(f"CREATE INDEX FOR (n:{label}) ON (n.ns, n.key)")
            except Exception as exc:  # the client raises redis' ResponseError
                if "already indexed" not in str(exc):
                    raise


# -- Bolt (Neo4j, or FalkorDB's experimental endpoint) -----------------------------------------

_BOLT_BUFFER = 4096
_BOLT_SAFE = 3800


def _bolt_escape(value: object, path: str) -> CypherValue:
    if isinstance(value, str):
        return value.replace("\\", "\\\\").replace("'", "\\'")
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        raise TypeError(
            f"parameter {path!r} is a float: FalkorDB's Bolt endpoint keeps 6 decimals; "
            "store an int (scaled) instead"
        )
    if isinstance(value, list | tuple):
        return [_bolt_escape(v, f"{path}[]") for v in value]
    if isinstance(value, dict):
        for k in value:
            if not re.fullmatch(r"[A-Za-z_]\w*", str(k)):
                raise ValueError(f"map key {k!r} in {path!r} must be a plain identifier")
        return {str(k): _bolt_escape(v, f"{path}.{k}") for k, v in value.items()}
    raise TypeError(f"parameter {path!r} has unsupported type {type(value).__name__}")


def _bolt_size(value: CypherValue) -> int:
    """Bytes FalkorDB renders for a value when it inlines Bolt parameters into the query."""
    if isinstance(value, str):
        return len(value.encode()) + 2
    if isinstance(value, list):
        return 2 + sum(_bolt_size(v) + 2 for v in value)
    if isinstance(value, dict):
        return 2 + sum(len(k) + 4 + _bolt_size(v) for k, v in value.items())
    return len(str(value)) + 4


class _BoltRecord(Protocol):
    def data(self) -> Mapping[str, object]:
        """The record as a column → value map."""
        ...


class BoltDriver(Protocol):
    """The part of `neo4j.Driver` the backend uses (tests hand in a recorder)."""

    def execute_query(
        self,
        query_: str,
        parameters_: dict[str, CypherValue] | None = None,
        *,
        routing_: RoutingControl,
        database_: str | None = None,
    ) -> tuple[Sequence[_BoltRecord], object, object]:
        """Run one statement in a managed transaction; (records, summary, keys)."""
        ...

    def close(self) -> None:
        """Close the driver's connections."""
        ...


class Neo4jBackend:
    """Any Bolt server through the official `neo4j` driver.

    With `falkordb_bolt=True` the parameters are adapted to FalkorDB's experimental endpoint,
    which inlines them into the query text unescaped and into a fixed 4 KiB stack buffer:
    strings are pre-escaped (a quote would otherwise break the statement), floats are refused
    (rounded to 6 decimals there), and an oversized statement raises `GraphQueryTooLarge`
    instead of crashing the server. That endpoint serves only its default graph: leave
    `database` unset (selecting one hangs the session).
    """

    name = "neo4j"

    def __init__(
        self,
        driver: BoltDriver,
        *,
        database: str | None = None,
        falkordb_bolt: bool = False,
        owns_driver: bool = False,
    ) -> None:
        if falkordb_bolt and database is not None:
            raise ValueError("FalkorDB's Bolt endpoint serves one graph: leave database unset")
        self._driver = driver
        self._database = database
        self._falkordb_bolt = falkordb_bolt
        self._owns = owns_driver

    @classmethod
    def connect(
        cls,
        uri: str,
        auth: tuple[str, str] | None = None,
        *,
        database: str | None = None,
        falkordb_bolt: bool = False,
        # The driver's own config keywords, typed one by one in its overloads: passed through.
        **driver_kwargs: Any,
    ) -> Neo4jBackend:
        """Open a driver (`auth=None` for FalkorDB) owned by the backend."""
        from neo4j import GraphDatabase

        driver = GraphDatabase.driver(uri, auth=auth, **driver_kwargs)
        return cls(driver, database=database, falkordb_bolt=falkordb_bolt, owns_driver=True)

    def _params(self, query: str, params: CypherParams) -> dict[str, CypherValue]:
        if not self._falkordb_bolt:
            return dict(params)
        out = {k: _bolt_escape(v, k) for k, v in params.items()}
        size = 7 + len(query.encode()) + sum(len(k) + 2 + _bolt_size(v) for k, v in out.items())
        if size > _BOLT_SAFE:
            raise GraphQueryTooLarge(
                f"statement with parameters is ~{size} bytes; FalkorDB's Bolt endpoint crashes "
                f"above {_BOLT_BUFFER}: shorten the texts or use the native FalkorDB adapter"
            )
        return out

    def run(self, query: str, params: CypherParams | None = None) -> list[CypherRow]:
        """Execute in a managed write transaction (the driver retries transient failures)."""
        from neo4j import RoutingControl

        records, _, _ = self._driver.execute_query(
            query,
            self._params(query, params or {}),
            database_=self._database,
            routing_=RoutingControl.WRITE,
        )
        return [dict(r.data()) for r in records]

    def close(self) -> None:
        """Close the driver if this backend opened it."""
        if self._owns:
            self._driver.close()

    def ensure_indexes(self, labels: Sequence[str]) -> None:
        """Index (ns, key) per label on Neo4j; on FalkorDB's Bolt endpoint, do nothing.

        That endpoint reports every error as "unknown", so an existing index cannot be told
        from a failure: index FalkorDB through `FalkorDBBackend` instead.
        """
        if self._falkordb_bolt:
            return
        for label in labels:
            self.run(
                f"CREATE INDEX strategos_{label.lower()}_key IF NOT EXISTS "
                f"FOR (n:{label}) ON (n.ns, n.key)"
            )
