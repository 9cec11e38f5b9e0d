"""Memory graph helpers that need no server: error signatures and the Bolt parameter guard."""

from __future__ import annotations

from typing import Any

import pytest

from memory.graph import (
    CypherBackend,
    GraphQueryTooLarge,
    MemoryGraph,
    Neo4jBackend,
    error_signature,
)


def test_signature_takes_the_exception_line_of_a_traceback() -> None:
    tb = (
        "Traceback (most recent call last):\n"
        '  File "/tmp/work-81/app.py", line 12, in load\n'
        "    return d[key]\n"
        "KeyError: 'user_id'\n"
    )
    assert error_signature(tb) == "KeyError: 'user_id'"


def test_signature_drops_addresses_paths_and_line_numbers() -> None:
    a = error_signature("ValueError: bad object <Foo at 0x7f3a2b> in /tmp/a1/x.py line 3")
    b = error_signature("ValueError: bad object <Foo at 0x55aa01> in /var/tmp/b2/x.py line 99")
    assert a == b == "ValueError: bad object <Foo at 0x?> in x.py line N"


def test_signature_of_plain_text_and_empty_text() -> None:
    assert error_signature("  something   odd happened \n") == "something odd happened"
    with pytest.raises(ValueError):
        error_signature("  \n ")


def test_signature_is_bounded() -> None:
    assert len(error_signature("RuntimeError: " + "x" * 5000).encode()) <= 256


class _Recorder:
    """Stands in for a Bolt driver: keeps what execute_query received."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def execute_query(self, query: str, params: dict[str, Any], **_: Any) -> tuple[Any, ...]:
        self.calls.append((query, params))
        return [], None, None


def test_falkordb_bolt_mode_escapes_quotes_and_backslashes() -> None:
    rec = _Recorder()
    backend = Neo4jBackend(rec, falkordb_bolt=True)
    backend.run("RETURN $s AS s, $l AS l", {"s": "it's a\\b", "l": ["x'y", 3, None]})
    _, params = rec.calls[0]
    assert params == {"s": "it\\'s a\\\\b", "l": ["x\\'y", 3, None]}


def test_plain_bolt_mode_passes_parameters_untouched() -> None:
    rec = _Recorder()
    Neo4jBackend(rec).run("RETURN $s", {"s": "it's", "f": 0.123456789})
    assert rec.calls[0][1] == {"s": "it's", "f": 0.123456789}


def test_falkordb_bolt_mode_refuses_floats_and_oversized_statements() -> None:
    backend = Neo4jBackend(_Recorder(), falkordb_bolt=True)
    with pytest.raises(TypeError, match="float"):
        backend.run("RETURN $f", {"f": 0.5})
    with pytest.raises(GraphQueryTooLarge):
        backend.run("RETURN $s", {"s": "x" * 4000})
    with pytest.raises(ValueError, match="database"):
        Neo4jBackend(_Recorder(), falkordb_bolt=True, database="other")


def test_graph_writes_fit_the_bolt_buffer_even_for_huge_texts() -> None:
    rec = _Recorder()
    backend = Neo4jBackend(rec, falkordb_bolt=True)
    assert isinstance(backend, CypherBackend)
    graph = MemoryGraph(backend, namespace="n")
    graph.record_fix(
        "E" * 9000 + "Error: boom", "é" * 9000, "f" * 900, file="/" + "d/" * 500, task_id="t"
    )
    graph.add_fact("alice", "ü" * 9000)
    assert len(rec.calls) == 2  # both writes went out instead of raising GraphQueryTooLarge


def test_labels_come_from_a_fixed_set() -> None:
    graph = MemoryGraph(Neo4jBackend(_Recorder()), namespace="n")
    with pytest.raises(ValueError, match="subject label"):
        graph.add_fact("x", "y", subject_label="Robot) DETACH DELETE (n")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="subject label"):
        graph.facts_about("x", subject_label="Nope")  # type: ignore[arg-type]
