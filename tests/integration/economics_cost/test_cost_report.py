"""A task's cost reaches the user: the CLI's report, REPORT.json and `strategos show --json`.

The scripted model is priced through `STRATEGOS_MODEL_PRICES` (its name is `scripted`), so the
charge is known exactly from the token counts the run reports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, cases_reply, cli_env, coder_reply, review_reply, write_script

GOAL = "Write add(a, b) that returns the sum of a and b.\nExample: add(2, 3) == 5"
PRICES = {"scripted": {"prompt_per_mtok": 1000.0, "completion_per_mtok": 4000.0}}

pytestmark = pytest.mark.slow


def test_the_report_shows_what_the_task_cost(tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "script.json",
        [
            {"role": "coder", "reply": coder_reply("def add(a, b):\n    return a + b\n")},
            {"role": "tester", "reply": cases_reply(("add(1, 1)", 2))},
            {"role": "reviewer", "reply": review_reply()},
        ],
    )
    env = cli_env(
        tmp_path, STRATEGOS_SCRIPTED_MODEL=str(script), STRATEGOS_MODEL_PRICES=json.dumps(PRICES)
    )
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "service.cli", "run", GOAL, "--out", str(out)]
        + ["--approve", "auto", "--task-id", "cost1"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads((out / "REPORT.json").read_text())
    expected = (report["prompt_tokens"] * 1000 + report["completion_tokens"] * 4000) / 1e6
    assert report["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert report["cost_usd"] > 0
    assert f"${report['cost_usd']:.6f}" in run.stdout
