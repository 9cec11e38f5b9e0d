"""A task id is bound to its goal: reusing it never re-delivers old code under a new goal.

The operator's incident: `strategos run "another goal" --task-id X` on a finished task made no
model call, re-delivered the old code as "delivered", added a second `deliver_files` ledger
entry and overwrote the task record with the new goal.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.exit_codes import ExitCode
from tests.conftest import cli_env, write_script
from tests.e2e.cli_support import (
    GOAL,
    RIGHT_ADD,
    add_script,
    backend_env,
    executions,
    ledger_entries,
    output,
    strategos,
)

pytestmark = pytest.mark.slow
OTHER_GOAL = "Write mul(a, b) that returns the product.\nExample: mul(2, 3) == 6"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_reusing_a_finished_task_id_for_another_goal_is_refused_and_touches_nothing(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    env = backend_env(
        tmp_path,
        backend,
        request,
        STRATEGOS_SCRIPTED_MODEL=str(add_script(tmp_path / "script.json")),
    )
    out = tmp_path / "out"
    first = strategos(["run", GOAL, "--out", str(out), "--approve", "auto", "--task-id", "x1"], env)
    assert first.returncode == ExitCode.DELIVERED, output(first)
    record = tmp_path / "data" / "tasks" / "x1" / "task.json"
    before = record.read_text()
    delivered = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    # A script that answers nothing: any model call would fail the command with another status.
    silent = write_script(tmp_path / "silent.json", [])
    other_out = tmp_path / "other"
    reused = strategos(
        ["run", OTHER_GOAL, "--out", str(other_out), "--approve", "auto", "--task-id", "x1"],
        {**env, "STRATEGOS_SCRIPTED_MODEL": str(silent)},
    )
    assert reused.returncode == ExitCode.TASK_CONFLICT, output(reused)
    assert reused.stderr.strip().splitlines() == [
        "error: task x1 was started with another goal; use another --task-id (or none)"
    ]
    assert "delivered" not in reused.stdout
    assert record.read_text() == before, "the task record was overwritten"
    assert json.loads(record.read_text())["goal"] == GOAL
    assert not other_out.exists()
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == delivered
    assert ledger_entries(env, "x1", "deliver_files") == 1
    assert executions(env, "x1", "deliver_files") == 1


def test_reusing_a_finished_task_id_with_its_goal_says_it_is_done(tmp_path: Path) -> None:
    env = cli_env(tmp_path, STRATEGOS_SCRIPTED_MODEL=str(add_script(tmp_path / "script.json")))
    out = tmp_path / "out"
    run = ["run", GOAL, "--out", str(out), "--approve", "auto", "--task-id", "x2"]
    assert strategos(run, env).returncode == ExitCode.DELIVERED
    silent = write_script(tmp_path / "silent.json", [])
    again = strategos(run, {**env, "STRATEGOS_SCRIPTED_MODEL": str(silent)})
    # The same outcome as the first run, and where to look: nothing ran again.
    assert again.returncode == ExitCode.DELIVERED, output(again)
    assert "task x2 is already finished; `strategos show x2` shows it" in again.stdout
    assert (out / "solution.py").read_text() == RIGHT_ADD
    assert ledger_entries(env, "x2", "deliver_files") == 1
    assert executions(env, "x2", "deliver_files") == 1


def test_reusing_a_paused_task_id_points_at_approve(tmp_path: Path) -> None:
    env = cli_env(tmp_path, STRATEGOS_SCRIPTED_MODEL=str(add_script(tmp_path / "script.json")))
    run = ["run", GOAL, "--out", str(tmp_path / "out"), "--task-id", "x3"]
    assert strategos(run, env).returncode == ExitCode.PAUSED
    again = strategos(run, env)
    assert again.returncode == ExitCode.TASK_CONFLICT, output(again)
    assert "task x3 is waiting for approval: `strategos approve x3`" in again.stderr
