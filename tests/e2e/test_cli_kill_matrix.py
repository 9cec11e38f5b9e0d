"""One task SIGKILLed at every node boundary of the team, and inside the sandbox, in turn.

The task is started, then killed right after each node of the team saved its writes (before the
next checkpoint) and once while the sandbox runs the tests; each kill is followed by
`strategos resume`, which is killed at the next point, until the last resume finishes. Whatever
the point, nothing is lost (the task is delivered, with the code the model wrote), nothing is
repeated (one delivery, no saved model answer asked again) and nothing is left on the host (the
killed sandbox run's mounts, cgroups and directories are swept by the next resume). On SQLite and
on PostgreSQL.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

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
from tests.integration.sandbox.leftovers import Leftovers
from tools.sandbox.markers import Owner

pytestmark = pytest.mark.slow

RUN = ["run", GOAL, "--out", "{out}", "--task-id", "k1"]  # no terminal: approval pauses
RESUME = ["resume", "k1"]
APPROVE = ["approve", "k1"]
KILLED = -signal.SIGKILL
PAUSED = 10
# The team's order on this task: a command, its fault, and how it ends.
STEPS: list[tuple[list[str], str | None, str | None, int]] = [
    (RUN, "DIE_AFTER_WRITES_OF", "supervisor", KILLED),
    (RESUME, "DIE_AFTER_WRITES_OF", "coder", KILLED),
    (RESUME, "DIE_INSIDE_SANDBOX", "{tag_file}", KILLED),
    (RESUME, "DIE_AFTER_WRITES_OF", "tester", KILLED),
    (RESUME, "DIE_AFTER_WRITES_OF", "reviewer", KILLED),
    (RESUME, None, None, PAUSED),
    (APPROVE, "DIE_AFTER_WRITES_OF", "approval", KILLED),
    (RESUME, "DIE_AFTER_WRITES_OF", "deliver", KILLED),
    (RESUME, None, None, 0),
]


def _owner(tag: str) -> Owner:
    pid, start, pidns = (int(part) for part in tag.split("-"))
    return Owner(pid, start, pidns)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_task_killed_at_every_boundary_in_turn_is_delivered_once(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    env = backend_env(
        tmp_path,
        backend,
        request,
        STRATEGOS_SCRIPTED_MODEL=str(add_script(tmp_path / "script.json")),
    )
    out = tmp_path / "out"
    tag_file = tmp_path / "sandbox-owner"
    for args, fault, value, ends in STEPS:
        faults = {fault: str(value).format(tag_file=tag_file)} if fault else {}
        step = [arg.format(out=out) for arg in args]
        done = strategos(step, {**env, **faults}, command=FAULTY)
        assert done.returncode == ends, (step, faults, output(done))
        if ends == KILLED and value != "deliver":  # the delivery's writes end the task
            shown = json.loads(strategos(["show", "k1", "--json"], env).stdout)
            assert shown["report"] is None, (faults, shown)
        if fault == "DIE_INSIDE_SANDBOX":
            # The run killed with its sandbox leaves it on the host, until a resume sweeps it.
            assert not Leftovers.of(_owner(tag_file.read_text())).empty

    assert (out / "solution.py").read_text() == RIGHT_ADD
    report = report_of(out)
    assert report["status"] == "delivered" and report["approval"]["approved"] is True, report
    assert report["tests"]["spec_passed"] == 1, report
    assert executions(env, "k1", "deliver_files") == 1
    # The test run killed inside the sandbox never completed, so it ran again: once more, and
    # no completed run was repeated by any later resume.
    assert executions(env, "k1", "run_tests") == 2
    assert Leftovers.of(_owner(tag_file.read_text())).empty
    # One answer of each agent in the task's record: no saved answer was asked again, and the
    # tester's answer lost with the kill inside its sandbox run was replaced, not added.
    assert report["model_calls"] == 3, report

    again = strategos(RESUME, env)
    assert again.returncode == 0 and "already finished" in again.stdout, output(again)
    assert executions(env, "k1", "deliver_files") == 1
