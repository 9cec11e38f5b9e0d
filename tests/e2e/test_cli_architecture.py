"""`strategos run --architecture NAME`: the named graph runs; a name the operator forbids does not.

Each run is the real CLI on the scripted model. Which graph ran is read from what a user sees:
the line naming the architecture, the task's record (the graph its checkpoints belong to) and
the delivered report (the execution-first team answers with one greedy and four sampled calls;
the pipeline asks a coder, a tester and a reviewer).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import cli_env, write_script
from tests.e2e.cli_support import GOAL, RIGHT_ADD, add_script, output, report_of, strategos


def _selection_script(path: Path) -> Path:
    rules: list[dict[str, Any]] = [
        {"role": "coder", "reply": f"Here it is:\n```python\n{RIGHT_ADD}```\n"}
    ]
    return write_script(path, rules)


def _team_of(tmp_path: Path, task: str) -> str:
    record = json.loads((tmp_path / "data" / "tasks" / task / "task.json").read_text())
    return str(record["team"])


def _run(tmp_path: Path, architecture: str, script: Path, task: str) -> dict[str, Any]:
    env = cli_env(tmp_path, STRATEGOS_SCRIPTED_MODEL=str(script))
    out = tmp_path / task
    args = ["run", GOAL, "--architecture", architecture, "--approve", "auto", "--task-id", task]
    done = strategos([*args, "--out", str(out)], env)
    assert done.returncode == 0, output(done)
    assert f"architecture: {architecture}" in done.stdout, output(done)
    assert (out / "solution.py").read_text().strip() == RIGHT_ADD.strip()
    return report_of(out)


def test_selection_runs_the_execution_first_team(tmp_path: Path) -> None:
    report = _run(tmp_path, "selection", _selection_script(tmp_path / "s.json"), "sel")
    assert _team_of(tmp_path, "sel") == "selection"
    assert report["model_calls"] == 5  # the greedy answer and 4 samples: no tester, no reviewer
    assert report["reviews"] == 0, report


def test_team_runs_the_pipeline(tmp_path: Path) -> None:
    report = _run(tmp_path, "team", add_script(tmp_path / "p.json"), "pipe")
    assert _team_of(tmp_path, "pipe") == "pipeline"
    assert report["model_calls"] == 3  # a coder, a tester and a reviewer
    assert report["reviews"] == 1 and report["tests"]["team_total"] == 1, report


def test_a_forbidden_or_unknown_architecture_is_a_usage_error_before_any_work(
    tmp_path: Path,
) -> None:
    env = cli_env(tmp_path, STRATEGOS_ARCHITECTURES_ALLOWED='["team", "repo_agent"]')
    out = tmp_path / "o"
    forbidden = strategos(["run", GOAL, "--architecture", "selection", "--out", str(out)], env)
    assert forbidden.returncode == 2, output(forbidden)
    assert forbidden.stderr.strip().count("\n") == 0  # one line
    assert "'selection' is not allowed here" in forbidden.stderr
    assert "allowed: team, repo_agent" in forbidden.stderr
    assert not out.exists()
    tasks = tmp_path / "data" / "tasks"
    assert not tasks.exists() or not any(tasks.iterdir())
