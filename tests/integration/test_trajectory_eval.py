"""Trajectory evaluations on the scripted model: every committed case takes its reference path.

Each case runs on a fresh graph, ledger and the real sandbox (`eval.trajectory_run.run_case`);
its trajectory is read back from the thread's state history and the ledger's event log and
scored with agentevals and the project's own measures (`eval.trajectory.score`). A change of
the team's path — a node more, a tool call less, a delivery that should not happen — fails here.
The per-case test runs under LangSmith's pytest plugin (`@pytest.mark.langsmith`), offline by
default.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from langsmith import testing

from eval.trajectory import score
from eval.trajectory_run import Case, load_cases, run_case
from service.settings import Settings
from tests.conftest import REPO, cli_env

CASES = load_cases()
SETTINGS = Settings(otel_exporter="none")


def test_there_are_at_least_ten_cases_each_saying_what_it_shows() -> None:
    assert len(CASES) >= 10
    assert all(case.why and case.reference["steps"] for case in CASES)
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.langsmith(test_suite_name="strategos-trajectories")
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_each_case_takes_its_reference_path(case: Case) -> None:
    # LangSmith's pytest plugin: with LANGSMITH_TEST_TRACKING=false (the suite's default, see
    # tests/conftest.py) these calls are no-ops and nothing leaves the machine; with tracking on
    # and a key, each case is an example of the suite's experiment with these scores.
    testing.log_inputs({"goal": case.goal, "team": case.team})
    testing.log_reference_outputs(dict(case.reference))
    trajectory, events = await run_case(case, SETTINGS, None)
    scores = score(trajectory, case.reference, events)
    testing.log_outputs({"steps": trajectory.graph["steps"], "report": dict(trajectory.report)})
    for key in ("graph_strict", "success", "step_efficiency", "tool_validity", "safety"):
        testing.log_feedback(key=key, score=float(getattr(scores, key)))
    assert scores.graph_strict, trajectory.graph["steps"]
    assert scores.tools == dict.fromkeys(("strict", "unordered", "subset", "superset"), True)
    assert scores.success, trajectory.report
    assert scores.step_efficiency == 1.0, trajectory.usage
    assert scores.tool_validity
    assert scores.safety == (case.id != "honeypot-caught")


async def test_a_different_path_is_caught_by_each_measure() -> None:
    case = next(c for c in CASES if c.id == "repaired-from-failure")
    trajectory, events = await run_case(case, SETTINGS, None)
    without_repair = {
        **case.reference,
        "steps": [[s for s in case.reference["steps"][0] if s != "repair"]],
        "tools": ["run_candidates", "deliver_files"],
        "status": "not_delivered",
        "min_model_calls": 3,
    }
    scores = score(trajectory, without_repair, events)  # type: ignore[arg-type]
    assert not scores.graph_strict
    assert scores.tools == {"strict": False, "unordered": False, "subset": False, "superset": True}
    assert not scores.success
    assert scores.step_efficiency == 0.5  # 3 calls would do, 6 were made


def test_strategos_eval_prints_and_writes_the_table(tmp_path: Path) -> None:
    out = tmp_path / "trajectories.json"
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "eval", "--out", str(out)],
        cwd=REPO,
        env=cli_env(tmp_path, STRATEGOS_OTEL_EXPORTER="none"),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trajectory evaluation (scripted)" in done.stdout
    found = json.loads(out.read_text())
    assert [row["case"] for row in found["rows"]] == [case.id for case in CASES]
    assert found["totals"]["graph_strict"] == 1.0
    assert found["totals"]["safety"] < 1.0  # the honeypot case is reported, not hidden


def test_a_malformed_case_is_named(tmp_path: Path) -> None:
    path = tmp_path / "cases.json"
    path.write_text(json.dumps([{"id": "broken", "goal": "g"}]))
    with pytest.raises(ValueError, match="trajectory case broken"):
        load_cases(path)
