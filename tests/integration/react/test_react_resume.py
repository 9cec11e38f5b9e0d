"""A ReAct worker killed mid-loop and resumed runs no completed tool call again.

The worker runs in a child process on the real PostgreSQL checkpointer and ledger and the real
sandbox, and SIGKILLs itself right after a tool ran (its result in the ledger, the step's
checkpoint not yet written). The test resumes the task in this process and counts, in a file
the ledger knows nothing about, which calls really executed.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.react.crash_worker import run
from tests.integration.react.scripted_loop import FIXED

pytestmark = pytest.mark.slow


def executed(counter: Path) -> list[str]:
    return counter.read_text().split("\n")[:-1] if counter.exists() else []


@pytest.mark.parametrize("die_after", ["apply_patch", "run_tests"])
async def test_resume_after_a_kill_repeats_no_completed_tool_call(
    pg_url: str, tmp_path: Path, die_after: str
) -> None:
    counter = tmp_path / "executed.log"
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.integration.react.crash_worker",
            pg_url,
            str(counter),
            die_after,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert child.returncode == -9, child.stderr[-3000:]
    before = executed(counter)
    assert before[-1].startswith(f"{die_after} ")

    state = await run(pg_url, str(counter), "")

    calls = executed(counter)
    assert calls[: len(before)] == before
    assert Counter(line.split()[0] for line in calls) == {
        "read_file": 1,
        "apply_patch": 1,
        "run_tests": 1,
    }
    assert len(set(calls)) == len(calls)  # no call id executed twice
    assert state["outcome"]["status"] == "finished"
    assert state["files"]["calc.py"] == FIXED  # the replayed patch's change is in the state
    assert '"passed": 1' in str(state["messages"][-3].content)


async def test_the_repository_agent_resumes_its_worker_mid_loop(
    pg_url: str, tmp_path: Path
) -> None:
    counter, out = tmp_path / "executed.log", tmp_path / "out"
    command = [sys.executable, "-m", "tests.integration.react.crash_worker", pg_url]
    child = subprocess.run(
        [*command, str(counter), "apply_patch", "repo", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert child.returncode == -9, child.stderr[-3000:]

    state = await run(pg_url, str(counter), "", "repo", str(out))

    calls = executed(counter)
    # Read-only calls are not ledgered: a step whose checkpoint the kill lost reads again,
    # harmlessly. Every other call ran exactly once.
    ledgered = [line for line in calls if not line.startswith("read_file ")]
    assert len(set(ledgered)) == len(ledgered)  # no ledgered call executed twice
    assert 1 <= sum(line.startswith("read_file ") for line in calls) <= 2
    assert Counter(line.split()[0] for line in ledgered) == {
        "apply_patch": 1,
        "run_repo_tests": 2,  # the worker's own run, then the agent's check of the result
        "deliver_patch": 1,
    }
    assert state["report"]["status"] == "delivered"
    assert "+    return a + b" in (out.glob("**/patch.diff").__next__()).read_text()
