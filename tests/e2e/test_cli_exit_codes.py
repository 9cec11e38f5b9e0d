"""The exit status tells a task's outcome apart (one `ExitCode` table, in the README too).

The operator's incident: 0 meant "delivered and passing", "delivered code that fails the goal's
examples" and "nothing delivered" alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from service.exit_codes import ExitCode, outcome_code
from tests.conftest import REPO, cases_reply, cli_env, write_script
from tests.e2e.cli_support import GOAL, WRONG_ADD, add_script, output, report_of, strategos

pytestmark = pytest.mark.slow


def _run(tmp_path: Path, script: Path, *options: str, **env: str) -> tuple[int, Path]:
    out = tmp_path / "out"
    full_env = cli_env(tmp_path, STRATEGOS_SCRIPTED_MODEL=str(script), **env)
    done = strategos(["run", GOAL, "--out", str(out), *options], full_env)
    assert "Traceback" not in done.stderr, output(done)
    return done.returncode, out


def test_delivered_and_passing_is_zero(tmp_path: Path) -> None:
    code, out = _run(tmp_path, add_script(tmp_path / "s.json"), "--approve", "auto")
    assert code == ExitCode.DELIVERED == 0
    assert report_of(out)["tests"]["spec_passed"] == 1


def test_delivered_code_that_fails_the_goals_examples_is_three(tmp_path: Path) -> None:
    script = add_script(tmp_path / "s.json", code=WRONG_ADD)
    code, out = _run(tmp_path, script, "--approve", "auto", STRATEGOS_MAX_ITERATIONS="1")
    assert code == ExitCode.DELIVERED_FAILING == 3
    report = report_of(out)
    assert report["status"] == "delivered" and report["tests"]["spec_passed"] == 0


def test_nothing_delivered_is_four(tmp_path: Path) -> None:
    # The coder never answers validly and the step limit stops the team: no files to deliver.
    script = write_script(
        tmp_path / "s.json",
        [
            {"role": "coder", "reply": "not a JSON answer"},
            {"role": "tester", "reply": cases_reply(("add(1, 1)", 2))},
        ],
    )
    code, out = _run(tmp_path, script, "--approve", "auto", "--max-steps", "1")
    assert code == ExitCode.NOT_DELIVERED == 4
    assert not (out / "solution.py").exists()


def test_a_refused_delivery_is_five(tmp_path: Path) -> None:
    code, out = _run(tmp_path, add_script(tmp_path / "s.json"), "--approve", "deny")
    assert code == ExitCode.REFUSED == 5
    assert not out.exists()


def test_waiting_for_approval_is_ten(tmp_path: Path) -> None:
    code, _ = _run(tmp_path, add_script(tmp_path / "s.json"))
    assert code == ExitCode.PAUSED == 10


def test_bad_usage_is_two_and_errors_are_one(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    assert strategos(["run", GOAL, "--approve", "maybe"], env).returncode == ExitCode.USAGE == 2
    assert strategos(["run", GOAL, "--no-such-option"], env).returncode == ExitCode.USAGE
    assert strategos(["show", "nope"], env).returncode == ExitCode.USAGE
    # A model that cannot answer: the task fails with an error, not an outcome.
    code, _ = _run(tmp_path, write_script(tmp_path / "s.json", []), "--approve", "auto")
    assert code == ExitCode.ERROR == 1


def test_the_readme_documents_every_exit_code() -> None:
    readme = (REPO / "README.md").read_text()
    for code in ExitCode:
        assert f"| `{int(code)}` |" in readme, f"{code.name} is not in the README's table"


def test_the_outcome_follows_the_report() -> None:
    passing = {"status": "delivered", "tests": {"spec_passed": 2, "spec_total": 2, "error": ""}}
    crashed = {"status": "delivered", "tests": {"spec_passed": 0, "spec_total": 0, "error": "E"}}
    rejected = {"status": "not_delivered", "approval": {"approved": False, "comment": "no"}}
    failed = {**rejected, "delivery_error": "refused by the gateway"}
    assert outcome_code(passing) == ExitCode.DELIVERED
    assert outcome_code(crashed) == ExitCode.DELIVERED_FAILING
    assert outcome_code(rejected) == ExitCode.REFUSED
    assert outcome_code(failed) == ExitCode.NOT_DELIVERED
    assert outcome_code({"status": "not_delivered", "approval": None}) == ExitCode.NOT_DELIVERED
