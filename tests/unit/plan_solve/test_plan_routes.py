"""Plan-and-Solve's routers and the wave fan-out: pure functions of the state."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.types import Send

from graphs.plan_state import PlanState, SubtaskResult, SubtaskSpec
from nodes.plan_dag import Replan
from nodes.plan_steps import after_merge, after_plan, dispatch, final_outcome
from nodes.planner import revised_plan

CHECK: Any = {"kind": "test", "target": "tests/test_a.py"}
PLAN: list[SubtaskSpec] = [
    {"id": "a", "goal": "do a", "files": ["a.py"], "depends_on": [], "check": CHECK},
    {"id": "b", "goal": "do b", "files": ["b.py"], "depends_on": ["a"], "check": CHECK},
    {"id": "c", "goal": "do c", "files": ["a.py"], "depends_on": [], "check": CHECK},
]
STOPPED: Any = {"status": "stopped", "reason": "r", "summary": ""}


def result(id_: str, status: str, check: str = "passed") -> SubtaskResult:
    return {
        "id": id_,
        "status": status,  # type: ignore[typeddict-item]
        "wave": 1,
        "attempt": 0,
        "summary": f"{id_} ok",
        "changes": {},
        "patch": "",
        "check": check,
    }


def state(**values: Any) -> PlanState:
    base: dict[str, Any] = {"goal": "g", "files": {"a.py": "x\n"}, "plan": PLAN, "wave": 1}
    return base | values  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("values", "expected"),
    [({}, "schedule"), ({"outcome": STOPPED}, "finish")],
)
def test_after_plan(values: dict[str, Any], expected: str) -> None:
    assert after_plan(state(**values)) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, "schedule"),
        ({"conflicts": []}, "schedule"),
        ({"conflicts": [{"path": "a.py", "kept": "a", "dropped": "c", "lines": ""}]}, "replan"),
        ({"outcome": STOPPED, "conflicts": [{"dropped": "c"}]}, "finish"),
    ],
)
def test_after_merge(values: dict[str, Any], expected: str) -> None:
    assert after_merge(state(**values)) == expected


def test_dispatch_sends_every_ready_subtask_with_its_own_copy_of_the_files() -> None:
    sends = dispatch(state(results={}))
    assert isinstance(sends, list)
    assert [s.arg["subtask"]["id"] for s in sends] == ["a", "c"]
    assert all(isinstance(s, Send) and s.node == "solve" for s in sends)
    assert sends[0].arg["files"] == {"a.py": "x\n"}
    assert sends[0].arg["files"] is not sends[1].arg["files"]


def test_dispatch_runs_a_replanned_subtask_again_as_its_second_attempt() -> None:
    sends = dispatch(state(results={"a": result("a", "done"), "c": result("c", "replanned")}))
    assert isinstance(sends, list)
    assert [(s.arg["subtask"]["id"], s.arg["attempt"]) for s in sends] == [("b", 0), ("c", 1)]


def test_dispatch_finishes_when_nothing_is_ready() -> None:
    assert dispatch(state(results={"a": result("a", "failed"), "c": result("c", "done")})) == (
        "finish"
    )


def test_the_outcome_names_failed_and_blocked_subtasks() -> None:
    results = {"a": result("a", "failed", "failed (0 passed, 1 failed)"), "c": result("c", "done")}
    outcome = final_outcome(state(results=results))
    assert outcome == {
        "status": "stopped",
        "reason": "a failed its check (failed (0 passed, 1 failed)); "
        "b did not run (a subtask they depend on is not done)",
        "summary": "c: c ok",
    }
    done = {i: result(i, "done") for i in ("a", "b", "c")}
    assert final_outcome(state(results=done))["status"] == "finished"


def test_a_revision_changes_only_the_dropped_subtask_and_keeps_known_files() -> None:
    answer = Replan.model_validate(
        {
            "revisions": [
                {"id": "c", "goal": "do c on top of a", "files": ["nowhere/x.py"]},
                {"id": "a", "goal": "not dropped: ignored"},
            ]
        }
    )
    plan = revised_plan(PLAN, answer, ["c"], {"a.py": "x\n"})
    assert plan[0] == PLAN[0]
    assert plan[2]["goal"] == "do c on top of a"
    assert plan[2]["files"] == ["a.py"]  # an unknown path is not taken over
