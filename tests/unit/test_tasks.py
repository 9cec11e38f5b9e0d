"""Task records and the human's approval answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from graphs.state import TeamState
from nodes.approval import describe
from nodes.approvers import parse_resume
from service.settings import Settings
from service.tasks import TaskNotFoundError, TaskRecord, load, new_task_id, save


@pytest.mark.parametrize(
    "task_id", ["../x", "a/b", "..", "", ".hidden", "-rf", "a b", "x" * 65, "é", "a\n"]
)
def test_task_record_rejects_unsafe_ids(task_id: str) -> None:
    with pytest.raises(ValidationError, match="task ids are"):
        TaskRecord(task_id=task_id, goal="g", out_dir="/tmp/out")


@pytest.mark.parametrize("task_id", ["a", "abc-123_X", "x" * 64, new_task_id()])
def test_task_record_accepts_safe_ids(task_id: str) -> None:
    assert TaskRecord(task_id=task_id, goal="g", out_dir="/tmp/out").task_id == task_id


def test_saved_record_loads_back_and_unsafe_ids_are_not_looked_up(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    record = TaskRecord(
        task_id="t1", goal="Write f.", out_dir=str(tmp_path / "out"), approve="auto"
    )
    save(settings, record)
    assert load(settings, "t1") == record
    with pytest.raises(TaskNotFoundError, match="not a task id"):
        load(settings, "../t1")
    with pytest.raises(TaskNotFoundError, match="no task 'nope'"):
        load(settings, "nope")


@pytest.mark.parametrize("value", ["yes", None, 42, [], {"comment": "ok"}, {"approved": "maybe"}])
def test_malformed_resume_is_a_rejection_that_says_it_was_invalid(value: Any) -> None:
    answer = parse_resume(value)
    assert answer.approved is False
    assert "invalid approval answer" in answer.comment


@pytest.mark.parametrize("value", [True, False])
def test_a_bare_bool_is_the_decision(value: bool) -> None:
    answer = parse_resume(value)
    assert answer.approved is value
    assert answer.comment == ""


def test_a_well_formed_resume_keeps_the_comment() -> None:
    answer = parse_resume({"approved": False, "comment": "rename the function"})
    assert answer.approved is False
    assert answer.comment == "rename the function"
    assert parse_resume({"approved": True}).approved is True


def test_describe_shows_the_best_candidate_and_the_latest_tests() -> None:
    st: dict[str, Any] = {
        "goal": "g",
        "files": {"solution.py": "bad", "scratch.py": "x"},
        "best": {"files": {"solution.py": "good"}, "iteration": 1, "score": (2, 1)},
        "test_runs": [
            {
                "run_id": "r",
                "iteration": 2,
                "code_hash": "h",
                "spec_passed": 2,
                "spec_total": 3,
                "model_passed": 1,
                "model_total": 4,
                "checks": [],
                "error": "",
            }
        ],
        "stop_reason": "iteration limit reached (4 attempts)",
    }
    request = describe(st, "/tmp/out")  # type: ignore[arg-type]
    assert request.files == ["solution.py"]
    assert request.destination == "/tmp/out"
    assert request.tests == "goal examples 2/3, team tests 1/4"
    assert request.summary == "iteration limit reached (4 attempts)"
    assert request.model_dump()["kind"] == "approval_request"


def test_describe_without_runs_says_no_tests_ran() -> None:
    st: TeamState = {"goal": "g", "files": {"solution.py": "x"}}  # type: ignore[typeddict-item]
    request = describe(st, "/tmp/out")
    assert request.tests == "no tests ran"
    assert request.files == ["solution.py"]
    assert "reviewer approved" in request.summary


def _run(iteration: int, checks: list[dict[str, Any]], error: str = "") -> dict[str, Any]:
    passed = sum(1 for c in checks if c["passed"])
    return {
        "run_id": f"r{iteration}",
        "iteration": iteration,
        "code_hash": "h",
        "spec_passed": passed,
        "spec_total": len(checks),
        "model_passed": 0,
        "model_total": 0,
        "checks": checks,
        "error": error,
    }


def test_the_approver_sees_the_code_and_the_checks_it_fails() -> None:
    failing = {"name": "f([1, 2]) == 3", "source": "spec", "passed": False, "error": "got 2"}
    passing = {"name": "f([]) == 0", "source": "spec", "passed": True, "error": ""}
    st: dict[str, Any] = {
        "goal": "g",
        "best": {"files": {"solution.py": "def f(x): ..."}, "iteration": 1, "score": (1, 0)},
        # The latest run is of a worse attempt; the request shows the run of what is delivered.
        "test_runs": [_run(1, [passing, failing]), _run(2, [], error="SyntaxError")],
    }
    request = describe(st, "/tmp/out")  # type: ignore[arg-type]
    assert request.contents == {"solution.py": "def f(x): ..."}
    assert request.failing == ["f([1, 2]) == 3: got 2"]
    assert request.tests == "goal examples 1/2, team tests 0/0"
    long = describe({"goal": "g", "files": {"big.py": "x" * 30_000}}, "/o")  # type: ignore[typeddict-item]
    assert len(long.contents["big.py"]) < 20_100
    assert long.contents["big.py"].endswith("(10000 more characters not shown)")


def test_the_terminal_shows_the_code_and_each_failure_verbatim() -> None:
    from service import cli_output

    request = {
        "kind": "approval_request",
        "action": "deliver",
        "destination": "/srv/out",
        "files": ["solution.py"],
        "contents": {"solution.py": "def f(x):\n    return [x]\n"},
        "tests": "goal examples 0/1",
        "failing": ["f([red]) == [1]: got [bold]"],
        "summary": "iteration limit reached",
    }
    with cli_output.console.capture() as captured:
        cli_output.show_request(request)
    shown = captured.get()
    assert "return [x]" in shown
    assert "f([red]) == [1]: got [bold]" in shown  # printed as text, not read as markup
