"""Exactly-once side effects across crashes, on PostgreSQL and SQLite.

The side effect is counted in a file the ledger knows nothing about, so these tests count what
happened instead of trusting a log line.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.integration.tools.conftest import Clock, connect
from tests.integration.tools.side_effects import CALL, THREAD, append_line_spec, count
from tools.gateway import CallContext, ToolGateway
from tools.ledger import Ledger
from tools.policy import Policy, PolicyConfig
from tools.registry import ToolRegistry
from tools.workspaces import MemoryWorkspace

REPO = Path(__file__).resolve().parents[3]


def gateway(ledger: Ledger, counter: Path) -> ToolGateway:
    return ToolGateway(
        ToolRegistry([append_line_spec(counter)]),
        ledger,
        Policy(PolicyConfig(approval={"side_effect": False})),
        timeout_s=30,
    )


def ctx() -> CallContext:
    return CallContext(thread_id=THREAD, tool_call_id=CALL, workspace=MemoryWorkspace())


async def test_a_repeated_call_after_a_lost_result_replays_instead_of_rerunning(
    ledger_url: str, tmp_path: Path
) -> None:
    counter = tmp_path / "deployments.log"
    first_ledger = await connect(ledger_url)
    first = await gateway(first_ledger, counter).call("append_line", {"line": "v1"}, ctx())
    await first_ledger.close()  # the process that ran it is gone; its caller saw nothing
    assert first.ok and count(counter) == 1

    second_ledger = await connect(ledger_url)
    try:
        again = await gateway(second_ledger, counter).call("append_line", {"line": "v1"}, ctx())
        assert again.ok and again.replayed and again.result == first.result == {"lines_now": 1}
        assert count(counter) == 1
        kinds = [e.kind for e in await second_ledger.events(THREAD)]
        assert kinds == ["ActivityScheduled", "ActivityCompleted"]
    finally:
        await second_ledger.close()


def run_worker(url: str, counter: Path, when: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.integration.tools.crash_worker", url, str(counter), when],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]


async def test_sigkill_after_the_side_effect_completed_then_resume_does_not_repeat_it(
    ledger_url: str, tmp_path: Path
) -> None:
    counter = tmp_path / "deployments.log"
    run_worker(ledger_url, counter, "after_call")
    assert count(counter) == 1

    ledger = await connect(ledger_url)
    try:
        resumed = await gateway(ledger, counter).call("append_line", {"line": "deployed"}, ctx())
        assert resumed.ok and resumed.replayed and resumed.result == {"lines_now": 1}
        assert count(counter) == 1
    finally:
        await ledger.close()


async def test_sigkill_during_the_side_effect_leaves_it_in_doubt_not_repeated(
    ledger_url: str, tmp_path: Path
) -> None:
    counter = tmp_path / "deployments.log"
    run_worker(ledger_url, counter, "in_handler")
    assert count(counter) == 1

    later = Clock(time.time() + 3600)  # long after the dead worker's lease ran out
    ledger = await connect(ledger_url, later)
    try:
        resumed = await gateway(ledger, counter).call("append_line", {"line": "deployed"}, ctx())
        assert not resumed.ok and resumed.error is not None
        assert resumed.error.code == "in_doubt" and resumed.flags
        assert count(counter) == 1
        assert "ActivityInDoubt" in [e.kind for e in await ledger.events(THREAD)]
    finally:
        await ledger.close()
