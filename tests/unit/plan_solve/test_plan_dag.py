"""The plan validator and the wave scheduler (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from graphs.plan_state import SubtaskResult
from nodes.plan_dag import Plan, find_cycle, plan_problems, ready, specs_of, waves

FILES = {
    "pkg/__init__.py": "",
    "pkg/calc.py": "def add(a, b):\n    return a - b\n",
    "tests/test_calc.py": "from pkg.calc import add\n",
}


def subtask(id_: str, *deps: str, files: tuple[str, ...] = ("pkg/calc.py",)) -> dict[str, Any]:
    return {
        "id": id_,
        "goal": f"do {id_}",
        "files": list(files),
        "depends_on": list(deps),
        "check": {"kind": "test", "target": "tests/test_calc.py::test_add"},
    }


def plan_of(*subtasks: dict[str, Any]) -> Plan:
    return Plan.model_validate({"subtasks": list(subtasks)})


def test_a_one_subtask_plan_is_valid() -> None:
    assert plan_problems(plan_of(subtask("s1")), FILES, max_subtasks=6) == []


def test_a_cycle_is_refused_and_spelled_out() -> None:
    plan = plan_of(subtask("a", "c"), subtask("b", "a"), subtask("c", "b"))
    problems = plan_problems(plan, FILES, max_subtasks=6)
    assert problems == [
        "the dependencies form a cycle: a -> c -> b -> a (each depends on the next)"
    ]


def test_a_self_dependency_is_a_cycle() -> None:
    assert find_cycle({"a": ["a"]}) == ["a", "a"]
    assert find_cycle({"a": [], "b": ["a"]}) is None


def test_an_unknown_dependency_is_refused() -> None:
    problems = plan_problems(plan_of(subtask("a", "zz")), FILES, max_subtasks=6)
    assert problems == ["subtask 'a' depends on unknown subtask 'zz'"]


def test_unknown_files_are_refused_but_new_files_under_existing_folders_are_not() -> None:
    fine = subtask("a", files=("pkg/calc.py", "pkg/new_module.py", "setup.py"))
    wrong = subtask("b", files=("lib/calc.py", "../etc/passwd", "/abs.py"))
    problems = plan_problems(plan_of(fine, wrong), FILES, max_subtasks=6)
    assert problems == [
        "subtask 'b' names unknown files (not in the workspace, nor new files under an existing "
        "folder): lib/calc.py, ../etc/passwd, /abs.py"
    ]


def test_too_many_subtasks_and_duplicate_ids_are_refused() -> None:
    plan = plan_of(subtask("a"), subtask("a"), subtask("b"))
    problems = plan_problems(plan, FILES, max_subtasks=2)
    assert problems == ["3 subtasks, at most 2 are allowed", "duplicate subtask ids: a"]


def test_a_check_must_name_a_known_test_file_or_be_python() -> None:
    bad_test = subtask("a")
    bad_test["check"] = {"kind": "test", "target": "tests/test_nothing.py::test_x"}
    bad_code = subtask("b")
    bad_code["check"] = {"kind": "python", "target": "assert ("}
    good_code = subtask("c")
    good_code["check"] = {
        "kind": "python",
        "target": "from pkg.calc import add\nassert add(2, 3) == 5",
    }
    problems = plan_problems(plan_of(bad_test, bad_code, good_code), FILES, max_subtasks=6)
    assert len(problems) == 2
    assert (
        problems[0] == "subtask 'a': its check names an unknown test file 'tests/test_nothing.py'"
    )
    assert problems[1].startswith("subtask 'b': its check is not valid python")


def test_waves_are_the_dependency_layers_in_plan_order() -> None:
    plan = specs_of(
        plan_of(subtask("d", "b", "c"), subtask("b", "a"), subtask("a"), subtask("c"), subtask("e"))
    )
    assert waves(plan) == [["a", "c", "e"], ["b"], ["d"]]


def result(id_: str, status: str) -> SubtaskResult:
    return {
        "id": id_,
        "status": status,  # type: ignore[typeddict-item]
        "wave": 1,
        "attempt": 0,
        "summary": "",
        "changes": {},
        "patch": "",
        "check": "",
    }


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ({}, ["a", "c"]),
        ({"a": result("a", "done"), "c": result("c", "done")}, ["b"]),
        ({"a": result("a", "failed"), "c": result("c", "done")}, []),
        ({"a": result("a", "done"), "c": result("c", "replanned")}, ["c"]),
        ({"a": result("a", "done"), "c": result("c", "conflict")}, []),
    ],
)
def test_ready_subtasks_have_every_dependency_done(
    results: dict[str, SubtaskResult], expected: list[str]
) -> None:
    plan = specs_of(plan_of(subtask("a"), subtask("b", "a", "c"), subtask("c")))
    assert ready(plan, results) == expected
