"""Task-level memory graph: a task's test runs become fixes, and fixes come back as hints.

Runs against the real FalkorDB server on both adapters (native client and Bolt).
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from langchain_core.messages import AIMessage, HumanMessage

from graphs import state
from memory.graph import MemoryGraph
from memory.taskgraph import known_fixes, record_task, run_errors, summaries_from_messages

CODE = """import re
from collections import Counter
import os.path as osp
from . import helpers
from __future__ import annotations


def word_counts(text):
    return Counter(re.findall(r"\\w+", text.lower()))
"""
HELPER = "import json\nimport solution\n"


def check(
    name: str, passed: bool, error: str = "", source: Literal["spec", "model"] = "spec"
) -> state.CheckResult:
    return {"name": name, "source": source, "passed": passed, "error": error}


def run(
    iteration: int, code: str, checks: list[state.CheckResult], error: str = ""
) -> state.TestRun:
    passed = sum(c["passed"] for c in checks)
    return {
        "run_id": f"r{iteration}-{code}-{len(checks)}",
        "iteration": iteration,
        "code_hash": code,
        "spec_passed": passed,
        "spec_total": len(checks),
        "model_passed": 0,
        "model_total": 0,
        "checks": checks,
        "error": error,
    }


KEY_ERROR = "word_counts('a') raised KeyError: 'a'"
WRONG = "word_counts('A a') returned {'A': 1, 'a': 1}, expected {'a': 2}"
RUNS = [
    run(1, "h1", [check("c1", False, KEY_ERROR), check("c2", False, WRONG)]),
    run(2, "h2", [check("c1", True), check("c2", False, WRONG)]),
    run(3, "h3", [check("c1", True), check("c2", True)]),
]
SUMMARIES = {2: "count with collections.Counter instead of indexing a dict", 3: "lowercase first"}


def record(graph: MemoryGraph, tenant: str, task_id: str = "t1", **overrides: Any) -> Any:
    kwargs: dict[str, Any] = {
        "tenant": tenant,
        "task_id": task_id,
        "goal": "Write word_counts(text) counting words case-insensitively.",
        "entry_point": "word_counts",
        "test_runs": RUNS,
        "delivered_files": {"solution.py": CODE, "helpers.py": HELPER},
        "summaries": SUMMARIES,
        "at": 1000,
    }
    kwargs.update(overrides)
    return record_task(graph, **kwargs)


def count_nodes(graph: MemoryGraph) -> tuple[int, int]:
    params = {"ns": graph.namespace}
    nodes = graph.backend.run("MATCH (n {ns: $ns}) RETURN count(n) AS n", params)
    rels = graph.backend.run("MATCH (n {ns: $ns})-[r]->() RETURN count(r) AS n", params)
    return int(nodes[0]["n"]), int(rels[0]["n"])


def test_errors_and_the_iterations_that_fixed_them_are_recorded(graph: MemoryGraph) -> None:
    done = record(graph, graph.namespace)
    assert (done.file, done.function) == ("solution.py", "word_counts")
    assert done.fixes == (
        ("KeyError: 'a'", SUMMARIES[2]),
        (WRONG, SUMMARIES[3]),
    )
    assert done.unresolved == ()
    assert done.libraries == ("collections", "json", "os", "re")

    [fix] = graph.fixes_for("KeyError: 'a'")
    assert (fix.fix, fix.times, fix.functions) == (SUMMARIES[2], 1, ("solution.py::word_counts",))
    assert graph.errors_in("word_counts", file="solution.py") == sorted(["KeyError: 'a'", WRONG])
    uses = [(h.relation, h.text) for h in graph.facts_about("solution.py", subject_label="File")]
    assert uses == [("USES", "collections"), ("USES", "os"), ("USES", "re")]
    assert [h.text for h in graph.facts_about("helpers.py")] == ["json"]


def test_recording_a_task_twice_changes_nothing(graph: MemoryGraph) -> None:
    first = record(graph, graph.namespace)
    before = count_nodes(graph)
    again = record(graph, graph.namespace)  # a replayed deliver node
    assert again == first
    assert count_nodes(graph) == before
    assert [f.times for f in graph.fixes_for("KeyError: 'a'")] == [1]


def test_known_fixes_are_prompt_lines_ranked_by_how_often_they_worked(graph: MemoryGraph) -> None:
    record(graph, graph.namespace, "t1")
    record(graph, graph.namespace, "t2", at=2000)
    other = [run(1, "x1", [check("c1", False, KEY_ERROR)]), run(2, "x2", [check("c1", True)])]
    record(graph, graph.namespace, "t3", test_runs=other, summaries={2: "use dict.get"}, at=3000)

    latest = run(1, "new", [check("c9", False, "word_counts('zz') raised KeyError: 'a'")])
    assert known_fixes(graph, run_errors(latest), graph.namespace, limit=5) == [
        f"last time `KeyError: 'a'` was resolved by: {SUMMARIES[2]}",
        "last time `KeyError: 'a'` was resolved by: use dict.get",
    ]
    assert known_fixes(graph, "KeyError: 'a'", graph.namespace, limit=1) == [
        f"last time `KeyError: 'a'` was resolved by: {SUMMARIES[2]}"
    ]
    # an unseen KeyError falls back to fixes of the same exception type, naming the error
    near = known_fixes(graph, "KeyError: 'other'", graph.namespace)
    assert near[0] == f"last time `KeyError: 'a'` was resolved by: {SUMMARIES[2]}"
    assert known_fixes(graph, "ValueError: nope", graph.namespace) == []
    assert known_fixes(graph, [], graph.namespace) == []


def test_tenants_do_not_see_each_others_fixes(graph: MemoryGraph) -> None:
    other = f"other-{uuid.uuid4().hex[:8]}"
    try:
        record(graph, other)
        assert known_fixes(graph, "KeyError: 'a'", other) != []
        assert known_fixes(graph, "KeyError: 'a'", graph.namespace) == []
        assert graph.fixes_for("KeyError: 'a'") == []
    finally:
        graph.in_namespace(other).clear()


def test_a_crash_fixed_without_a_summary_names_the_code(graph: MemoryGraph) -> None:
    crash = 'File "solution.py", line 3\n    def f(:\n          ^\nSyntaxError: invalid syntax'
    runs = [run(1, "bad", [], error=crash), run(2, "good", [check("c1", True)])]
    done = record(graph, graph.namespace, test_runs=runs, summaries=None)
    assert done.fixes == (("SyntaxError: invalid syntax", "changed code good"),)
    assert [f.fix for f in graph.fixes_for("SyntaxError: invalid syntax")] == ["changed code good"]


def test_what_was_not_fixed_is_not_recorded_as_a_fix(graph: MemoryGraph) -> None:
    runs = [
        run(1, "a", [check("c1", False, KEY_ERROR), check("m1", False, WRONG, "model")]),
        # same code, one check more (a reviewer claim): nothing changed, nothing fixed
        run(
            1,
            "a",
            [
                check("c1", False, KEY_ERROR),
                check("m1", False, WRONG, "model"),
                check("claim", True),
            ],
        ),  # fmt: skip
        # the code does not load: nothing can be said about the KeyError
        run(2, "b", [], error="NameError: name 'Counter' is not defined"),
        # the reviewer rejected m1, so it disappeared; c1 still fails
        run(3, "c", [check("c1", False, KEY_ERROR)]),
    ]
    done = record(graph, graph.namespace, test_runs=runs)
    assert done.fixes == (("NameError: name 'Counter' is not defined", SUMMARIES[3]),)
    assert set(done.unresolved) == {"KeyError: 'a'", WRONG}
    assert graph.fixes_for("KeyError: 'a'") == []


def test_no_entry_point_picks_the_function_the_goal_names(graph: MemoryGraph) -> None:
    code = "def _helper(x):\n    return x\n\n\ndef slugify(title):\n    return title\n"
    done = record(
        graph,
        graph.namespace,
        entry_point=None,
        goal="Write slugify(title) -> str",
        delivered_files={"solution.py": code},
    )
    assert (done.function, done.libraries) == ("slugify", ())
    assert graph.fixes_for("KeyError: 'a'")[0].functions == ("solution.py::slugify",)
    broken = record(graph, graph.namespace, entry_point=None, delivered_files={"x.py": "def ("})
    assert (broken.file, broken.function) == ("x.py", "<module>")


def test_run_errors_and_coder_summaries() -> None:
    crashed = run(1, "h", [check("a", False, KEY_ERROR), check("b", False, KEY_ERROR)])
    assert run_errors(crashed) == ["KeyError: 'a'"]
    assert run_errors(run(1, "h", [check("a", False, "f() raised StopIteration: ")])) == [
        "StopIteration"
    ]
    assert run_errors(run(1, "h", [check("a", True)], error="boom")) == ["boom"]
    odd = "f() returned 'x raised KeyError: y', expected 1"  # a value, not a crash
    assert run_errors(run(1, "h", [check("a", False, odd)])) == [odd]
    messages = [
        HumanMessage("goal"),
        AIMessage("coder: first version", name="coder"),
        AIMessage("tester: spec 0/1", name="tester"),
        AIMessage("coder: no valid edit (bad JSON)", name="coder"),
        AIMessage("coder: handle the empty list", name="coder"),
    ]
    assert summaries_from_messages(messages) == {1: "first version", 3: "handle the empty list"}
