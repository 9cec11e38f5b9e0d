"""`strategos resume` after a kill between a node's saved writes and the next checkpoint.

The snapshot of such a task has an empty `next` (the node's writes are saved, so LangGraph lists
no task still to run) and no report: it is not finished, and continuing the graph from that
checkpoint delivers. `resume` once treated it as done, printed "unknown, steps 0" and exited 0.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.conftest import cli_env
from tests.e2e.cli_support import (
    FAULTY,
    GOAL,
    RIGHT_ADD,
    add_script,
    backend_env,
    executions,
    output,
    report_of,
    strategos,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_resume_continues_a_task_killed_after_a_node_saved_its_writes(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    env = backend_env(
        tmp_path,
        backend,
        request,
        STRATEGOS_SCRIPTED_MODEL=str(add_script(tmp_path / "script.json")),
    )
    out = tmp_path / "out"
    run = ["run", GOAL, "--out", str(out), "--approve", "auto", "--task-id", "w1"]
    killed = strategos(run, {**env, "DIE_AFTER_WRITES_OF": "coder"}, command=FAULTY)
    assert killed.returncode == -signal.SIGKILL, output(killed)
    assert not out.exists()

    shown = json.loads(strategos(["show", "w1", "--json"], env).stdout)
    # The incident's shape: the coder's writes are saved, nothing is listed as next.
    assert shown["status"] == "interrupted after coder (its results are saved)", shown
    assert shown["report"] is None

    resumed = strategos(["resume", "w1"], env)
    assert resumed.returncode == 0, output(resumed)
    assert "resuming task w1 after its last saved step" in resumed.stdout
    assert "delivered" in resumed.stdout and "unknown" not in resumed.stdout
    assert (out / "solution.py").read_text() == RIGHT_ADD
    report = report_of(out)
    assert report["status"] == "delivered"
    # The coder's saved answer was used, not asked again: coder, tester, reviewer once each.
    assert report["model_calls"] == 3, report
    assert executions(env, "w1", "deliver_files") == 1
    assert executions(env, "w1", "run_tests") == 1

    again = strategos(["resume", "w1"], env)
    assert again.returncode == 0, output(again)
    assert "already finished" in again.stdout
    assert executions(env, "w1", "deliver_files") == 1


def test_resume_continues_after_the_supervisors_saved_routing(tmp_path: Path) -> None:
    env = cli_env(tmp_path, STRATEGOS_SCRIPTED_MODEL=str(add_script(tmp_path / "script.json")))
    out = tmp_path / "out"
    # Killed once the first routing decision (a `Command(goto=coder)`) is saved.
    killed = strategos(
        ["run", GOAL, "--out", str(out), "--approve", "auto", "--task-id", "w2"],
        {**env, "DIE_AFTER_WRITES_OF": "supervisor"},
        command=FAULTY,
    )
    assert killed.returncode == -signal.SIGKILL, output(killed)
    shown = json.loads(strategos(["show", "w2", "--json"], env).stdout)
    assert shown["status"] == "interrupted after supervisor (its results are saved)", shown

    resumed = strategos(["resume", "w2"], env)
    assert resumed.returncode == 0, output(resumed)
    assert (out / "solution.py").read_text() == RIGHT_ADD
    assert report_of(out)["model_calls"] == 3
    assert executions(env, "w2", "deliver_files") == 1
