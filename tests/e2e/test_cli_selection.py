"""`strategos run --team selection`: the execution-first team from the CLI, killed mid-round.

The task record binds the task to its team, so `resume` continues it on the same graph. Killed
right after the judge's sandboxed run of the candidates was recorded (before the judge's writes
were saved), the resumed task replays that run from the ledger instead of running it again, and
asks the model nothing it already answered.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cli_env, write_script
from tests.e2e.cli_support import (
    FAULTY,
    GOAL,
    RIGHT_ADD,
    backend_env,
    executions,
    output,
    report_of,
    strategos,
)

pytestmark = pytest.mark.slow


def _coder_script(path: Path) -> Path:
    fenced = f"Here it is:\n```python\n{RIGHT_ADD}```\n"
    rules: list[dict[str, Any]] = [{"role": "coder", "reply": fenced}]
    return write_script(path, rules)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_round_killed_after_its_sandbox_run_resumes_without_running_it_again(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    env = backend_env(
        tmp_path, backend, request, STRATEGOS_SCRIPTED_MODEL=str(_coder_script(tmp_path / "s.json"))
    )
    out = tmp_path / "out"
    run = ["run", GOAL, "--out", str(out), "--approve", "auto", "--task-id", "s1"]
    killed = strategos(
        [*run, "--team", "selection"], {**env, "DIE_AFTER_TOOL": "run_candidates"}, command=FAULTY
    )
    assert killed.returncode == -signal.SIGKILL, output(killed)
    assert executions(env, "s1", "run_candidates") == 1
    assert json.loads(strategos(["show", "s1", "--json"], env).stdout)["report"] is None

    resumed = strategos(["resume", "s1"], env)
    assert resumed.returncode == 0, output(resumed)
    assert (out / "solution.py").read_text().strip() == RIGHT_ADD.strip()
    report = report_of(out)
    assert report["status"] == "delivered" and report["tests"]["spec_passed"] == 1, report
    assert executions(env, "s1", "run_candidates") == 1  # replayed from the ledger
    assert executions(env, "s1", "deliver_files") == 1
    assert report["model_calls"] == 5  # the greedy answer and 4 samples, none asked again

    # The task is bound to its team: the same id on the other team is refused.
    other = strategos([*run, "--team", "pipeline"], env)
    assert other.returncode == 6 and "runs on the selection team" in other.stderr, output(other)


def test_an_unknown_team_is_refused_before_any_work(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    done = strategos(["run", GOAL, "--team", "swarm", "--out", str(tmp_path / "o")], env)
    assert done.returncode == 2 and "team" in done.stderr, output(done)
    assert not (tmp_path / "o").exists()
