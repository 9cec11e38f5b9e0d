"""The memory graph: structured facts from tasks, queried with a portable Cypher subset.

Vector recall answers "what looked like this?"; the graph answers relational questions such as
"which fixes resolved this error before?" or "what does this user prefer?". Entities (File,
Function, Error, Fix, Library, Preference, Fact, User) and relations (RESOLVES, RAISED_IN,
APPLIED_TO, DEFINED_IN, USES, PREFERS, HAS_FACT) are written with MERGE on explicit key
properties, one statement per write, so a retried write changes nothing.

Two adapters run the same Cypher: `Neo4jBackend` (the `neo4j` driver over Bolt; production
target Neo4j) and `FalkorDBBackend` (FalkorDB's native client; embedded default and tests).
The Cypher stays inside what FalkorDB's experimental Bolt endpoint also runs: no temporal
values (times are epoch ints), no `elementId()`, constraints, `=~`, `shortestPath` or APOC,
no floats (that endpoint prints them with 6 decimals), no reliance on rollback (it keeps
writes). Every node carries `ns` (a tenant namespace) next to its `key`, because that endpoint
only serves its default graph.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args, runtime_checkable

__all__ = [
    "ENTITY_LABELS",
    "CypherBackend",
    "FactHit",
    "FalkorDBBackend",
    "GraphQueryTooLarge",
    "KnownFix",
    "MemoryGraph",
    "Neo4jBackend",
    "SubjectLabel",
    "error_signature",
]

SubjectLabel = Literal["User", "File", "Function", "Library"]
ENTITY_LABELS: tuple[str, ...] = (
    "Error",
    "Fix",
    "Function",
    "File",
    "Library",
    "Preference",
    "Fact",
    "User",
)
_SUBJECT_LABELS: tuple[str, ...] = get_args(SubjectLabel)
FactRelation = Literal["HAS_FACT", "PREFERS", "USES"]

# Byte budgets per text, so a write always fits FalkorDB Bolt's 4 KiB query buffer (see
# `Neo4jBackend`) with room for the statement itself.
_ERROR_BYTES = 256
_NAME_BYTES = 200
_FIX_BYTES = 1200
_FACT_BYTES = 600


class GraphQueryTooLarge(ValueError):
    """A statement with its parameters would overflow FalkorDB Bolt's 4 KiB buffer."""


@runtime_checkable
class CypherBackend(Protocol):
    """Runs one Cypher statement with parameters and returns rows as dicts."""

    name: str

    def run(self, query: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Execute one statement (atomically) and return its rows."""
        ...

    def close(self) -> None:
        """Release connections the backend owns."""
        ...


# -- adapters ------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
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

    def __init__(self, graph: Any, *, owner: Any = None) -> None:
        self._graph = graph
        self._owner = owner

    @classmethod
    def connect(
        cls, host: str = "127.0.0.1", port: int = 6379, *, graph: str = "strategos", **kwargs: Any
    ) -> FalkorDBBackend:
        """Open a client to a FalkorDB server and select (lazily create) a graph."""
        from falkordb import FalkorDB  # type: ignore[import-untyped]

        db = FalkorDB(host=host, port=port, **kwargs)
        return cls(db.select_graph(graph), owner=db)

    def run(self, query: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
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


_BOLT_BUFFER = 4096
_BOLT_SAFE = 3800


def _bolt_escape(value: Any, path: str) -> Any:
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
        return {k: _bolt_escape(v, f"{path}.{k}") for k, v in value.items()}
    raise TypeError(f"parameter {path!r} has unsupported type {type(value).__name__}")


def _bolt_size(value: Any) -> int:
    """Bytes FalkorDB renders for a value when it inlines Bolt parameters into the query."""
    if isinstance(value, str):
        return len(value.encode()) + 2
    if isinstance(value, list):
        return 2 + sum(_bolt_size(v) + 2 for v in value)
    if isinstance(value, dict):
        return 2 + sum(len(k) + 4 + _bolt_size(v) for k, v in value.items())
    return len(str(value)) + 4


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
        driver: Any,
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
        **driver_kwargs: Any,
    ) -> Neo4jBackend:
        """Open a driver (`auth=None` for FalkorDB) owned by the backend."""
        from neo4j import GraphDatabase

        driver = GraphDatabase.driver(uri, auth=auth, **driver_kwargs)
        return cls(driver, database=database, falkordb_bolt=falkordb_bolt, owns_driver=True)

    def _params(self, query: str, params: Mapping[str, Any]) -> dict[str, Any]:
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

    def run(self, query: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
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


# -- the memory graph -------------------------------------------------------------------


@dataclass(frozen=True)
class KnownFix:
    """A fix that resolved an error before, and how often (distinct tasks)."""

    fix: str
    error: str
    functions: tuple[str, ...]
    times: int
    last_at: int
    exact: bool


@dataclass(frozen=True)
class FactHit:
    """Something known about a subject: a fact, a preference or a library it uses."""

    relation: FactRelation
    text: str
    times: int
    last_at: int


_HEX = re.compile(r"0x[0-9a-fA-F]+")
_LINE = re.compile(r"\bline \d+")
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\w.\-~]*[/\\])+([\w.\-]+)")
_EXC_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Warning|Exit|Interrupt|Failure)\b")


def _clip(text: str, max_bytes: int) -> str:
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode(errors="ignore")


def error_signature(error: str) -> str:
    """A stable key for an error: the exception line, without addresses, paths, line numbers.

    Two runs of the same bug differ in object addresses, temp paths and line numbers; the
    signature drops those so both land on one Error node.
    """
    lines = [ln.strip() for ln in error.strip().splitlines() if ln.strip()]
    if not lines:
        raise ValueError("empty error text")
    line = next((ln for ln in reversed(lines) if _EXC_LINE.match(ln[:200])), lines[-1])
    line = line[:1024]  # bounds the regex work below; the key keeps 256 bytes anyway
    line = _HEX.sub("0x?", line)
    line = _LINE.sub("line N", line)
    line = _PATH.sub(r"\1", line)
    return _clip(" ".join(line.split()), _ERROR_BYTES)


def _text_key(text: str) -> str:
    norm = " ".join(text.lower().split())
    return hashlib.sha256(norm.encode()).hexdigest()[:24]


_TASKS_ON_CREATE = "r.tasks = [$task], r.first_at = $at, r.last_at = $at"
_TASKS_ON_MATCH = (
    "r.tasks = CASE WHEN $task IN r.tasks THEN r.tasks ELSE r.tasks + [$task] END, r.last_at = $at"
)


class MemoryGraph:
    """Records fixes, facts and preferences in a namespace and answers questions about them."""

    def __init__(
        self,
        backend: CypherBackend,
        *,
        namespace: str = "default",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not namespace:
            raise ValueError("namespace must not be empty")
        self.backend = backend
        self.namespace = namespace
        self._clock = clock

    def in_namespace(self, namespace: str) -> MemoryGraph:
        """The same backend and clock scoped to another namespace (one tenant's memories)."""
        if namespace == self.namespace:
            return self
        return MemoryGraph(self.backend, namespace=namespace, clock=self._clock)

    def ensure_indexes(self) -> None:
        """Create the (ns, key) indexes the backend supports; safe to call on every start."""
        ensure = getattr(self.backend, "ensure_indexes", None)
        if ensure is not None:
            ensure(ENTITY_LABELS)

    def _at(self, at: int | None) -> int:
        return int(self._clock()) if at is None else int(at)

    def record_fix(
        self,
        error: str,
        fix: str,
        function: str,
        *,
        file: str | None = None,
        task_id: str = "",
        at: int | None = None,
    ) -> str:
        """Record that `fix` resolved `error` raised in `function`; returns the signature.

        Recording the same fix for the same task again changes nothing; another task bumps the
        count that `fixes_for` ranks by.
        """
        sig = error_signature(error)
        fix_text = _clip(fix.strip(), _FIX_BYTES)
        if not fix_text:
            raise ValueError("empty fix text")
        fn_name = _clip(function.strip(), _NAME_BYTES)
        if not fn_name:
            raise ValueError("empty function name")
        file_path = _clip(file.strip(), _NAME_BYTES) if file else None
        fn_key = f"{file_path}::{fn_name}" if file_path else fn_name
        query = (
            "MERGE (e:Error {ns: $ns, key: $sig}) "
            "ON CREATE SET e.text = $sig, e.first_at = $at "
            "SET e.last_at = $at "
            "MERGE (fn:Function {ns: $ns, key: $fn_key}) "
            "ON CREATE SET fn.name = $fn_name, fn.first_at = $at "
            "MERGE (x:Fix {ns: $ns, key: $fix_key}) "
            "ON CREATE SET x.text = $fix, x.first_at = $at "
            "MERGE (x)-[r:RESOLVES]->(e) "
            f"ON CREATE SET {_TASKS_ON_CREATE} "
            f"ON MATCH SET {_TASKS_ON_MATCH} "
            "MERGE (e)-[:RAISED_IN]->(fn) "
            "MERGE (x)-[:APPLIED_TO]->(fn) "
        )
        params: dict[str, Any] = {
            "ns": self.namespace,
            "sig": sig,
            "fn_key": fn_key,
            "fn_name": fn_name,
            "fix_key": _text_key(fix_text),
            "fix": fix_text,
            "task": task_id,
            "at": self._at(at),
        }
        if file_path:
            query += (
                "MERGE (fl:File {ns: $ns, key: $file}) "
                "ON CREATE SET fl.path = $file "
                "MERGE (fn)-[:DEFINED_IN]->(fl) "
            )
            params["file"] = file_path
        self.backend.run(query + "RETURN e.key AS error", params)
        return sig

    def fixes_for(self, error: str, *, limit: int = 5, same_type: bool = True) -> list[KnownFix]:
        """Fixes that resolved this error before, most often (then most recently) first.

        With `same_type`, when the exact signature is unknown, fall back to errors of the same
        exception type (a `KeyError` fix is a better hint than none).
        """
        sig = error_signature(error)
        rows = self._fixes(sig, exact=True, limit=limit)
        if rows or not same_type:
            return rows
        exc_type = sig.split(":", 1)[0].strip()
        if not exc_type or exc_type == sig:
            return []
        return self._fixes(exc_type + ":", exact=False, limit=limit)

    def _fixes(self, sig: str, *, exact: bool, limit: int) -> list[KnownFix]:
        match = "e.key = $sig" if exact else "e.key STARTS WITH $sig"
        rows = self.backend.run(
            "MATCH (x:Fix {ns: $ns})-[r:RESOLVES]->(e:Error {ns: $ns}) "
            f"WHERE {match} "
            "OPTIONAL MATCH (x)-[:APPLIED_TO]->(fn:Function {ns: $ns}) "
            "WITH x, r, e, collect(fn.key) AS functions "
            "RETURN x.text AS fix, e.key AS error, functions, size(r.tasks) AS times, "
            "r.last_at AS last_at "
            "ORDER BY times DESC, last_at DESC, fix "
            "LIMIT $limit",
            {"ns": self.namespace, "sig": sig, "limit": int(limit)},
        )
        return [
            KnownFix(
                fix=str(row["fix"]),
                error=str(row["error"]),
                functions=tuple(sorted(str(f) for f in row["functions"] or [])),
                times=int(row["times"]),
                last_at=int(row["last_at"]),
                exact=exact,
            )
            for row in rows
        ]

    def errors_in(self, function: str, *, file: str | None = None) -> list[str]:
        """Error signatures raised in a function (keyed like `record_fix` keys it)."""
        fn_key = f"{file}::{function}" if file else function
        rows = self.backend.run(
            "MATCH (e:Error {ns: $ns})-[:RAISED_IN]->(fn:Function {ns: $ns, key: $fn_key}) "
            "RETURN e.key AS error ORDER BY error",
            {"ns": self.namespace, "fn_key": fn_key},
        )
        return [str(r["error"]) for r in rows]

    def _link(
        self,
        subject: str,
        subject_label: str,
        relation: FactRelation,
        target_label: str,
        text: str,
        max_bytes: int,
        task_id: str,
        at: int | None,
    ) -> None:
        if subject_label not in _SUBJECT_LABELS:
            raise ValueError(f"subject label must be one of {_SUBJECT_LABELS}")
        subject = _clip(subject.strip(), _NAME_BYTES)
        body = _clip(text.strip(), max_bytes)
        if not subject or not body:
            raise ValueError("subject and text must not be empty")
        # labels and relation types cannot be parameters; both come from fixed sets above
        self.backend.run(
            f"MERGE (s:{subject_label} {{ns: $ns, key: $subject}}) "
            "ON CREATE SET s.name = $subject "
            f"MERGE (t:{target_label} {{ns: $ns, key: $key}}) "
            "ON CREATE SET t.text = $text, t.first_at = $at "
            f"MERGE (s)-[r:{relation}]->(t) "
            f"ON CREATE SET {_TASKS_ON_CREATE} "
            f"ON MATCH SET {_TASKS_ON_MATCH} "
            "RETURN t.key AS key",
            {
                "ns": self.namespace,
                "subject": subject,
                "key": _text_key(body),
                "text": body,
                "task": task_id,
                "at": self._at(at),
            },
        )

    def add_fact(
        self,
        subject: str,
        fact: str,
        *,
        subject_label: SubjectLabel = "User",
        task_id: str = "",
        at: int | None = None,
    ) -> None:
        """Record a fact about a subject, e.g. ("alice", "is an admin")."""
        self._link(subject, subject_label, "HAS_FACT", "Fact", fact, _FACT_BYTES, task_id, at)

    def add_preference(
        self, user: str, preference: str, *, task_id: str = "", at: int | None = None
    ) -> None:
        """Record (User)-[:PREFERS]->(Preference), e.g. ("alice", "prefers pytest")."""
        self._link(user, "User", "PREFERS", "Preference", preference, _FACT_BYTES, task_id, at)

    def add_library(
        self,
        subject: str,
        library: str,
        *,
        subject_label: SubjectLabel = "File",
        task_id: str = "",
        at: int | None = None,
    ) -> None:
        """Record that a file or function uses a library."""
        self._link(subject, subject_label, "USES", "Library", library, _NAME_BYTES, task_id, at)

    def facts_about(
        self, subject: str, *, subject_label: SubjectLabel | None = None
    ) -> list[FactHit]:
        """Facts, preferences and libraries linked to a subject, ordered by relation and text."""
        if subject_label is not None and subject_label not in _SUBJECT_LABELS:
            raise ValueError(f"subject label must be one of {_SUBJECT_LABELS}")
        label = f":{subject_label}" if subject_label else ""
        rows = self.backend.run(
            f"MATCH (s{label} {{ns: $ns, key: $subject}})-[r:HAS_FACT|PREFERS|USES]->(t) "
            "RETURN type(r) AS relation, t.text AS text, size(r.tasks) AS times, "
            "r.last_at AS last_at ORDER BY relation, text",
            {"ns": self.namespace, "subject": _clip(subject.strip(), _NAME_BYTES)},
        )
        return [
            FactHit(
                relation=_relation(str(r["relation"])),
                text=str(r["text"]),
                times=int(r["times"]),
                last_at=int(r["last_at"]),
            )
            for r in rows
        ]

    def clear(self) -> int:
        """Delete every node of this namespace; returns how many there were."""
        params = {"ns": self.namespace}
        rows = self.backend.run("MATCH (n {ns: $ns}) RETURN count(n) AS n", params)
        self.backend.run("MATCH (n {ns: $ns}) DETACH DELETE n", params)
        return int(rows[0]["n"]) if rows else 0


def _relation(name: str) -> FactRelation:
    if name == "HAS_FACT":
        return "HAS_FACT"
    if name == "PREFERS":
        return "PREFERS"
    if name == "USES":
        return "USES"
    raise ValueError(f"unexpected relation {name!r}")
