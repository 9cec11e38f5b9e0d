"""Long tasks end with a report: the step guard, not LangGraph's recursion limit, stops them.

The operator's incident: `--max-steps` above ~99 hit a hard-coded recursion limit of 200, so a
long task died with a `GraphRecursionError` traceback and no report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from graphs.context import TeamContext
from service.exit_codes import ExitCode
from service.team_deps import compile_pipeline
from tests.conftest import cases_reply, cli_env, coder_reply, scripted, write_script
from tests.e2e.cli_support import FAULTY, GOAL, WRONG_ADD, add_script, output, strategos
from tools.builtin import default_registry
from tools.gateway import ToolGateway
from tools.ledger import open_ledger
from tools.sandbox import LocalSandbox

pytestmark = pytest.mark.slow

NEVER_CONVERGES = [
    {"role": "coder", "reply": coder_reply(WRONG_ADD)},
    {"role": "tester", "reply": cases_reply(("add(1, 1)", 2))},
    {"role": "supervisor", "reply": {"next": "coder", "reason": "keep trying"}},
]
"""A team that never passes and never gives up: only a limit ends it."""


def test_a_step_limit_above_a_hundred_ends_with_a_report(tmp_path: Path) -> None:
    script = write_script(tmp_path / "script.json", NEVER_CONVERGES)
    env = cli_env(tmp_path, STRATEGOS_SCRIPTED_MODEL=str(script), STRATEGOS_MAX_ITERATIONS="1000")
    out = tmp_path / "out"
    done = strategos(
        [
            *("run", GOAL, "--out", str(out), "--approve", "auto"),
            *("--max-steps", "120", "--token-budget", "100000000"),
        ],
        env,
        timeout=900,
    )
    # The best (failing) candidate is delivered, and the exit status says it fails.
    assert done.returncode == ExitCode.DELIVERED_FAILING, output(done)
    assert "Traceback" not in done.stderr and "GraphRecursionError" not in done.stdout
    report = json.loads((out / "REPORT.json").read_text())
    assert report["stop_reason"] == "step limit reached (120 steps)", report
    assert report["steps"] >= 120


def test_a_recursion_error_that_still_happens_becomes_a_report(tmp_path: Path) -> None:
    env = cli_env(tmp_path, STRATEGOS_SCRIPTED_MODEL=str(add_script(tmp_path / "script.json")))
    out = tmp_path / "out"
    run = ["run", GOAL, "--out", str(out), "--approve", "auto", "--task-id", "r1"]
    done = strategos(run, {**env, "RECURSION_LIMIT": "1"}, command=FAULTY)
    assert done.returncode == ExitCode.NOT_DELIVERED, output(done)
    assert "Traceback" not in done.stderr, output(done)
    assert "LangGraph's recursion limit (1) stopped the team" in done.stdout
    shown = json.loads(strategos(["show", "r1", "--json"], env).stdout)
    assert shown["status"] == "finished"
    assert shown["report"]["status"] == "not_delivered"
    assert "recursion limit" in shown["report"]["stop_reason"]
    assert not out.exists()


async def test_a_served_run_stops_itself_before_its_callers_recursion_limit(
    tmp_path: Path,
) -> None:
    """A served run gets whatever recursion limit its caller sends; the guard fires first."""
    ledger = await open_ledger(str(tmp_path / "ledger.sqlite"))
    ctx = TeamContext(
        model=scripted(NEVER_CONVERGES),
        out_dir=str(tmp_path / "out"),
        approve="auto",
        max_steps=150,
        max_iterations=1000,
        token_budget=100_000_000,
        use_memory=False,
        gateway=ToolGateway(default_registry(), ledger, sandbox=LocalSandbox()),
    )
    config: Any = {"configurable": {"thread_id": "served"}, "recursion_limit": 25}
    state = await compile_pipeline(InMemorySaver()).ainvoke({"goal": GOAL}, config, context=ctx)
    report = state["report"]
    assert report["stop_reason"] == (
        "the run's recursion limit is nearly spent (raise it, or lower max_steps)"
    )
    assert report["status"] == "delivered" and report["steps"] < 25
