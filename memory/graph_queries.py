"""The memory graph's Cypher statements, in the subset every backend runs.

Kept together so the portable subset can be checked in one place: no temporal values (times are
epoch ints), no `elementId()`, constraints, `=~`, `shortestPath` or APOC, no floats (FalkorDB's
Bolt endpoint prints them with 6 decimals), no reliance on rollback (it keeps writes). Every node
is matched on `ns` (a tenant namespace) next to its `key`, because that endpoint only serves its
default graph. Labels and relation types cannot be parameters: callers take them from fixed sets.
"""

from __future__ import annotations

__all__ = [
    "CLEAR_NAMESPACE",
    "COUNT_NAMESPACE",
    "ERRORS_IN",
    "facts_query",
    "fixes_query",
    "link_query",
    "record_fix_query",
]

# A relation remembers the distinct tasks that made it (its count) and when it was last seen.
_TASKS_ON_CREATE = "r.tasks = [$task], r.first_at = $at, r.last_at = $at"
_TASKS_ON_MATCH = (
    "r.tasks = CASE WHEN $task IN r.tasks THEN r.tasks ELSE r.tasks + [$task] END, r.last_at = $at"
)

_RECORD_FIX = (
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
_DEFINED_IN = (
    "MERGE (fl:File {ns: $ns, key: $file}) "
    "ON CREATE SET fl.path = $file "
    "MERGE (fn)-[:DEFINED_IN]->(fl) "
)

ERRORS_IN = (
    "MATCH (e:Error {ns: $ns})-[:RAISED_IN]->(fn:Function {ns: $ns, key: $fn_key}) "
    "RETURN e.key AS error ORDER BY error"
)
COUNT_NAMESPACE = "MATCH (n {ns: $ns}) RETURN count(n) AS n"
CLEAR_NAMESPACE = "MATCH (n {ns: $ns}) DETACH DELETE n"


def record_fix_query(with_file: bool) -> str:
    """Merge (Fix)-[:RESOLVES]->(Error)-[:RAISED_IN]->(Function), and its (File) when known."""
    return _RECORD_FIX + (_DEFINED_IN if with_file else "") + "RETURN e.key AS error"


def fixes_query(exact: bool) -> str:
    """Fixes of one error signature (`exact`) or of a signature prefix, most proven first."""
    match = "e.key = $sig" if exact else "e.key STARTS WITH $sig"
    return (
        "MATCH (x:Fix {ns: $ns})-[r:RESOLVES]->(e:Error {ns: $ns}) "
        f"WHERE {match} "
        "OPTIONAL MATCH (x)-[:APPLIED_TO]->(fn:Function {ns: $ns}) "
        "WITH x, r, e, collect(fn.key) AS functions "
        "RETURN x.text AS fix, e.key AS error, functions, size(r.tasks) AS times, "
        "r.last_at AS last_at "
        "ORDER BY times DESC, last_at DESC, fix "
        "LIMIT $limit"
    )


def link_query(subject_label: str, relation: str, target_label: str) -> str:
    """Merge (subject)-[relation]->(target text); labels and relation from fixed sets only."""
    return (
        f"MERGE (s:{subject_label} {{ns: $ns, key: $subject}}) "
        "ON CREATE SET s.name = $subject "
        f"MERGE (t:{target_label} {{ns: $ns, key: $key}}) "
        "ON CREATE SET t.text = $text, t.first_at = $at "
        f"MERGE (s)-[r:{relation}]->(t) "
        f"ON CREATE SET {_TASKS_ON_CREATE} "
        f"ON MATCH SET {_TASKS_ON_MATCH} "
        "RETURN t.key AS key"
    )


def facts_query(subject_label: str | None) -> str:
    """Facts, preferences and libraries of a subject (of any label when None)."""
    label = f":{subject_label}" if subject_label else ""
    return (
        f"MATCH (s{label} {{ns: $ns, key: $subject}})-[r:HAS_FACT|PREFERS|USES]->(t) "
        "RETURN type(r) AS relation, t.text AS text, size(r.tasks) AS times, "
        "r.last_at AS last_at ORDER BY relation, text"
    )
