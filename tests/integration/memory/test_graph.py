"""The memory graph, the same cases on both adapters (FalkorDB native and Bolt)."""

from __future__ import annotations

import uuid

import pytest

from memory.graph import FalkorDBBackend, GraphQueryTooLarge, MemoryGraph, Neo4jBackend

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/tmp/task-1/app/users.py", line 14, in load_user\n'
    "    return row['user_id']\n"
    "KeyError: 'user_id'\n"
)


def test_which_fixes_resolved_this_error_before(graph: MemoryGraph) -> None:
    graph.record_fix(
        TRACEBACK,
        "use row.get('user_id') and 404 when missing",
        "load_user",
        file="app/users.py",
        task_id="t1",
        at=1000,
    )
    graph.record_fix(
        "KeyError: 'user_id'",
        "use row.get('user_id') and 404 when missing",
        "load_user",
        file="app/users.py",
        task_id="t2",
        at=2000,
    )
    graph.record_fix(
        "KeyError: 'user_id'", "check `'user_id' in row` first", "load_admin", task_id="t3", at=3000
    )
    graph.record_fix("ValueError: bad port", "parse the port with int()", "connect", at=4000)
    fixes = graph.fixes_for("KeyError: 'user_id'")
    assert [(f.fix, f.times, f.last_at) for f in fixes] == [
        ("use row.get('user_id') and 404 when missing", 2, 2000),
        ("check `'user_id' in row` first", 1, 3000),
    ]
    assert fixes[0].functions == ("app/users.py::load_user",)
    assert all(f.exact and f.error == "KeyError: 'user_id'" for f in fixes)


def test_recording_twice_for_one_task_is_idempotent(graph: MemoryGraph) -> None:
    for at in (10, 20, 30):
        graph.record_fix(
            "IndexError: list index out of range",
            "guard empty list",
            "head",
            task_id="same-task",
            at=at,
        )
    [fix] = graph.fixes_for("IndexError: list index out of range")
    assert fix.times == 1 and fix.last_at == 30


def test_unknown_signature_falls_back_to_same_exception_type(graph: MemoryGraph) -> None:
    graph.record_fix("KeyError: 'a'", "default the key", "f", at=1)
    near = graph.fixes_for("KeyError: 'zzz'")
    assert [(f.fix, f.exact) for f in near] == [("default the key", False)]
    assert graph.fixes_for("KeyError: 'zzz'", same_type=False) == []
    assert graph.fixes_for("TypeError: nope") == []


def test_errors_raised_in_a_function(graph: MemoryGraph) -> None:
    graph.record_fix("ZeroDivisionError: division by zero", "check n", "mean", file="stats.py")
    graph.record_fix("TypeError: unsupported operand", "cast to float", "mean", file="stats.py")
    assert graph.errors_in("mean", file="stats.py") == [
        "TypeError: unsupported operand",
        "ZeroDivisionError: division by zero",
    ]
    assert graph.errors_in("mean") == []  # keyed with its file


def test_facts_preferences_and_libraries(graph: MemoryGraph) -> None:
    graph.add_preference("alice", "prefers pytest", task_id="t1", at=5)
    graph.add_preference("alice", "prefers pytest", task_id="t2", at=6)
    graph.add_fact("alice", "is an admin", at=7)
    graph.add_library("app/users.py", "requests", at=8)
    about = graph.facts_about("alice", subject_label="User")
    assert [(h.relation, h.text, h.times, h.last_at) for h in about] == [
        ("HAS_FACT", "is an admin", 1, 7),
        ("PREFERS", "prefers pytest", 2, 6),
    ]
    assert [(h.relation, h.text) for h in graph.facts_about("app/users.py")] == [
        ("USES", "requests")
    ]
    assert graph.facts_about("bob") == []


def test_quotes_backslashes_and_unicode_survive(graph: MemoryGraph) -> None:
    text = "it's a \\d+ regex — naïve \"quoted\" 'single' ✓\nsecond line"
    graph.add_fact("carol", text)
    assert [h.text for h in graph.facts_about("carol")] == [text]


def test_namespaces_are_isolated(graph: MemoryGraph) -> None:
    other = MemoryGraph(graph.backend, namespace=f"other-{uuid.uuid4().hex[:8]}")
    try:
        other.add_fact("alice", "is a guest")
        graph.add_fact("alice", "is an admin")
        assert [h.text for h in graph.facts_about("alice")] == ["is an admin"]
        assert [h.text for h in other.facts_about("alice")] == ["is a guest"]
    finally:
        other.clear()


def test_clear_removes_the_namespace(graph: MemoryGraph) -> None:
    graph.record_fix("OSError: disk full", "clean tmp", "save", file="io.py")
    assert graph.clear() == 4  # Error, Function, Fix, File
    assert graph.fixes_for("OSError: disk full") == []


def test_both_adapters_read_what_the_other_wrote(
    native_backend: FalkorDBBackend, bolt_backend: Neo4jBackend
) -> None:
    ns = f"cross-{uuid.uuid4().hex[:8]}"
    native, bolt = (
        MemoryGraph(native_backend, namespace=ns),
        MemoryGraph(bolt_backend, namespace=ns),
    )
    try:
        native.record_fix("KeyError: 'k'", "use .get('k')", "f", task_id="a", at=1)
        bolt.record_fix("KeyError: 'k'", "use .get('k')", "f", task_id="b", at=2)
        for g in (native, bolt):
            [fix] = g.fixes_for("KeyError: 'k'")
            assert (fix.fix, fix.times, fix.last_at) == ("use .get('k')", 2, 2)
    finally:
        native.clear()


def test_bolt_guard_refuses_what_would_crash_the_server(
    bolt_backend: Neo4jBackend, native_backend: FalkorDBBackend
) -> None:
    # a 4.1 kB parameter aborts FalkorDB (stack buffer); the adapter refuses it up front
    with pytest.raises(GraphQueryTooLarge):
        bolt_backend.run("RETURN size($s) AS n", {"s": "x" * 4100})
    assert native_backend.run("RETURN 1 AS one") == [{"one": 1}]
    assert bolt_backend.run("RETURN size($s) AS n", {"s": "x" * 2000}) == [{"n": 2000}]


def test_indexes_are_created_once_and_writes_still_work(
    graph: MemoryGraph, native_backend: FalkorDBBackend
) -> None:
    graph.ensure_indexes()
    graph.ensure_indexes()  # idempotent
    indexed = native_backend.run(
        "CALL db.indexes() YIELD label, properties RETURN label, properties"
    )
    if graph.backend is native_backend:
        assert {r["label"] for r in indexed} >= {"Error", "Fix", "Function", "User"}
        assert all(r["properties"] == ["ns", "key"] for r in indexed)
    graph.record_fix("KeyError: 'x'", "use get", "f")
    assert [f.fix for f in graph.fixes_for("KeyError: 'x'")] == ["use get"]
