"""On the real local model, a task at a tiny budget ends with the stated reason, within it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import cli_env
from tests.e2e.test_real_model import run_cli

pytestmark = [pytest.mark.model, pytest.mark.slow]

GOAL = (
    "Write count_vowels(text: str) -> int that counts the vowels a, e, i, o and u in "
    "text, in upper or lower case.\nExample: count_vowels('Hello World') == 3"
)
BUDGET = 600
"""Room for the coder's first call (its prompt is ~280 tokens), not for the tester's after it."""


def test_a_tiny_budget_ends_the_task_with_its_reason(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["run", GOAL, "--approve", "auto", "--out", str(out), "--token-budget", str(BUDGET)]
    done = run_cli(args, cli_env(tmp_path), 900)
    log = done.stdout[-3000:] + done.stderr[-3000:]
    printed = " ".join(done.stdout.split())  # the report table, unwrapped
    assert "stopped because token budget spent: a " in printed, log
    assert f"of the task's {BUDGET}" in printed, log
    # the first call fitted and was answered; the report says who spent the tokens
    assert "tokens by role " in printed, log
    assert "coder" in printed.split("tokens by role ", 1)[1].split(" stopped because")[0], log
    if (out / "REPORT.json").is_file():  # delivered: the report inside tells the same
        report = json.loads((out / "REPORT.json").read_text())
        assert report["stop_reason"].startswith("token budget spent")
        assert report["prompt_tokens"] + report["completion_tokens"] <= BUDGET
