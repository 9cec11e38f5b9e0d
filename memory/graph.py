"""The memory graph: structured facts from tasks, queried with a portable Cypher subset.

Vector recall answers "what looked like this?"; the graph answers relational questions such as
"which fixes resolved this error before?" or "what does this user prefer?". Entities (File,
Function, Error, Fix, Library, Preference, Fact, User) and relations (RESOLVES, RAISED_IN,
APPLIED_TO, DEFINED_IN, USES, PREFERS, HAS_FACT) are written with MERGE on explicit key
properties, one statement per write, so a retried write changes nothing.

The statements are in `memory.graph_queries`, the backends that run them (Neo4j over Bolt,
FalkorDB's native client) in `memory.cypher`; this module is what the rest of the code asks.
Every node carries `ns` (a tenant namespace) next to its `key`, so one graph holds every tenant.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

from memory import graph_queries as q
from memory.cypher import (
    CypherBackend,
    CypherValue,
    FalkorDBBackend,
    GraphQueryTooLarge,
    Neo4jBackend,
)

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
        params: dict[str, CypherValue] = {
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
            params["file"] = file_path
        self.backend.run(q.record_fix_query(with_file=bool(file_path)), params)
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
        rows = self.backend.run(
            q.fixes_query(exact),
            {"ns": self.namespace, "sig": sig, "limit": int(limit)},
        )
        return [
            KnownFix(
                fix=str(row["fix"]),
                error=str(row["error"]),
                functions=tuple(sorted(_strings(row["functions"]))),
                times=_int(row["times"]),
                last_at=_int(row["last_at"]),
                exact=exact,
            )
            for row in rows
        ]

    def errors_in(self, function: str, *, file: str | None = None) -> list[str]:
        """Error signatures raised in a function (keyed like `record_fix` keys it)."""
        fn_key = f"{file}::{function}" if file else function
        rows = self.backend.run(q.ERRORS_IN, {"ns": self.namespace, "fn_key": fn_key})
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
            q.link_query(subject_label, relation, target_label),
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
        rows = self.backend.run(
            q.facts_query(subject_label),
            {"ns": self.namespace, "subject": _clip(subject.strip(), _NAME_BYTES)},
        )
        return [
            FactHit(
                relation=_relation(str(r["relation"])),
                text=str(r["text"]),
                times=_int(r["times"]),
                last_at=_int(r["last_at"]),
            )
            for r in rows
        ]

    def clear(self) -> int:
        """Delete every node of this namespace; returns how many there were."""
        params = {"ns": self.namespace}
        rows = self.backend.run(q.COUNT_NAMESPACE, params)
        self.backend.run(q.CLEAR_NAMESPACE, params)
        return _int(rows[0]["n"]) if rows else 0


def _relation(name: str) -> FactRelation:
    if name == "HAS_FACT":
        return "HAS_FACT"
    if name == "PREFERS":
        return "PREFERS"
    if name == "USES":
        return "USES"
    raise ValueError(f"unexpected relation {name!r}")


def _int(value: object) -> int:
    """A count or time from a row: drivers answer ints, a float or numeric text is tolerated."""
    if isinstance(value, int | float | str):
        return int(value)
    raise TypeError(f"expected a number from the graph, got {type(value).__name__}")


def _strings(value: object) -> list[str]:
    """A list column (e.g. `collect(...)`) as texts; a missing one (null) as none."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise TypeError(f"expected a list from the graph, got {type(value).__name__}")
    return [str(v) for v in value]
