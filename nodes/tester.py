"""Tester: gathers checks (the goal's own examples first), runs them in the sandbox, records."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

from graphs.context import TeamContext
from graphs.deps import ModelOutputError, Node, TeamDeps
from graphs.state import (
    Candidate,
    CheckResult,
    TeamState,
    TestRun,
    Usage,
    failed_checks,
    run_score,
)
from nodes.prompt_budget import build_prompt
from nodes.prompting import Section, goal_section
from tools.builtin.run_tests import RunTestsResult
from tools.checks import (
    Check,
    ProposedCase,
    accept_case,
    decode,
    encode,
    entry_point_of,
    extract_spec_checks,
)
from tools.gateway import CallContext
from tools.workspaces import MemoryWorkspace

MAX_MODEL_CASES = 6
MAX_FEEDBACK_LINES = 8


class TestSuite(BaseModel):
    """The tester's structured output."""

    cases: list[ProposedCase] = Field(min_length=1, max_length=10)


def _valid_cases(suite: TestSuite, entry_point: str, spec: list[Check]) -> list[str]:
    known = {check.call for check in spec}
    kept: list[str] = []
    for case in suite.cases[:MAX_MODEL_CASES]:
        check = accept_case(case, entry_point)
        if check is not None and check.call not in known:
            known.add(check.call)
            kept.append(encode(check))
    return kept


async def _write_model_tests(
    deps: TeamDeps, state: TeamState, ctx: TeamContext, entry_point: str, spec: list[Check]
) -> tuple[list[str], Usage | None]:
    built = await build_prompt(
        deps,
        "tester",
        state,
        ctx,
        pinned=[goal_section(state, "Specification"), Section("", f"Function: {entry_point}")],
    )
    try:
        suite, usage = await deps.ask_json(
            await deps.model(ctx), built.system, built.user, TestSuite, retries=1
        )
    except ModelOutputError as exc:
        return [], exc.usage
    return _valid_cases(suite, entry_point, spec), usage


def _checks(state: TeamState, spec: list[str], model_tests: list[str]) -> list[Check]:
    rejected = set(state.get("rejected_tests", []))
    checks = [decode(item, "spec") for item in spec]
    checks += [c for c in (decode(item, "model") for item in model_tests) if c.name not in rejected]
    return checks


def code_hash(files: dict[str, str]) -> str:
    """Stable hash of the workspace."""
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]


def feedback_for(run: TestRun) -> str:
    """Failure messages verbatim, ground truth first, for the coder."""
    if run["error"]:
        return run["error"]
    failed = sorted(
        (c for c in run["checks"] if not c["passed"]), key=lambda c: c["source"] != "spec"
    )
    lines = [
        f"- {c['error']}" + (" (from the goal's examples)" if c["source"] == "spec" else "")
        for c in failed[:MAX_FEEDBACK_LINES]
    ]
    return "\n".join(lines)


async def _gather(
    deps: TeamDeps, state: TeamState, ctx: TeamContext, runtime: Runtime[TeamContext]
) -> tuple[list[str], list[str], dict[str, Any]]:
    """(spec checks, model tests, update): extracted and written once per task, then kept."""
    update: dict[str, Any] = {}
    files = state.get("files", {})
    entry_point = entry_point_of(
        state["goal"], files.get("solution.py", ""), state.get("entry_point")
    )
    spec = state.get("spec_checks")
    if spec is None:
        found = extract_spec_checks(state["goal"], entry_point) if entry_point else []
        spec = [encode(c) for c in found]
        update["spec_checks"] = spec
    model_tests = state.get("model_tests")
    if model_tests is None:
        model_tests = []
        if entry_point:
            runtime.stream_writer({"role": "tester", "event": "writing tests"})
            spec_objs = [decode(item, "spec") for item in spec]
            model_tests, usage = await _write_model_tests(deps, state, ctx, entry_point, spec_objs)
            if usage:
                update["usage"] = usage
        update["model_tests"] = model_tests
    return spec, model_tests, update


def _recorded(run: TestRun, files: dict[str, str], iteration: int) -> dict[str, Any]:
    """The state update for a test run: the run, the candidate it scores, the coder's feedback."""
    candidate: Candidate = {"files": files, "iteration": iteration, "score": run_score(run)}
    summary = (
        f"tester: spec {run['spec_passed']}/{run['spec_total']}, "
        f"own tests {run['model_passed']}/{run['model_total']}"
        + (f", error: {run['error'][:200]}" if run["error"] else "")
    )
    return {
        "test_runs": [run],
        "best": candidate,
        "feedback": feedback_for(run),
        "messages": [AIMessage(summary, name="tester")],
    }


def make_tester(deps: TeamDeps) -> Node[TeamState]:
    """The node that runs every check against the current code."""

    async def tester(state: TeamState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Run every check against the current code in the sandbox and record the result."""
        ctx = deps.run_context(runtime.context)
        files = state.get("files", {})
        spec, model_tests, gathered = await _gather(deps, state, ctx, runtime)
        update: dict[str, Any] = {"steps": 1, **gathered}
        checks = _checks(state, spec, model_tests)
        digest = code_hash(files)
        names = json.dumps([c.name for c in checks])
        run_id = hashlib.sha256((digest + names).encode()).hexdigest()[:16]
        previous = next((r for r in state.get("test_runs", []) if r["run_id"] == run_id), None)
        if previous is not None:
            run = previous
        else:
            runtime.stream_writer({"role": "tester", "event": "running", "checks": len(checks)})
            run, _replayed = await _execute(
                deps, ctx, files, checks, run_id, digest, state["iteration"]
            )
        runtime.stream_writer(
            {
                "role": "tester",
                "event": "result",
                "spec": [run["spec_passed"], run["spec_total"]],
                "model": [run["model_passed"], run["model_total"]],
                "failing": [check["name"] for check in failed_checks(run, 3)],
                "error": run["error"][:200],
            }
        )
        return update | _recorded(run, files, state["iteration"])

    return tester


async def _run_checks(
    deps: TeamDeps, ctx: TeamContext, files: dict[str, str], checks: list[Check], run_id: str
) -> tuple[list[CheckResult], str, bool]:
    """(outcomes, error, replayed) of one sandboxed run of `checks` through the gateway.

    Policy, honeypot and the ledger apply, keyed by the run id, so a test run that completed
    before a crash is replayed from its record, not re-run.
    """
    gateway = await deps.gateway(ctx)
    observation = await gateway.call(
        "run_tests",
        {"checks": [c.model_dump(include={"call", "expected", "source"}) for c in checks]},
        CallContext(
            thread_id=deps.thread_id(),
            tool_call_id=f"tester-{run_id}",
            workspace=MemoryWorkspace(files),
            tenant_id=ctx.tenant,
            limits=deps.sandbox_limits,
        ),
    )
    if not (observation.ok and observation.result is not None):
        error = observation.error.message if observation.error else "the test run failed"
        return [], error, observation.replayed
    result = RunTestsResult.model_validate(observation.result)
    outcomes: list[CheckResult] = [
        {
            "name": o.name,
            "source": "spec" if o.source == "spec" else "model",
            "passed": o.passed,
            "error": o.error,
        }
        for o in result.outcomes
    ]
    return outcomes, result.error, observation.replayed


async def _execute(
    deps: TeamDeps,
    ctx: TeamContext,
    files: dict[str, str],
    checks: list[Check],
    run_id: str,
    digest: str,
    iteration: int,
) -> tuple[TestRun, bool]:
    outcomes: list[CheckResult] = []
    error, replayed = "", False
    if checks:
        outcomes, error, replayed = await _run_checks(deps, ctx, files, checks, run_id)

    def count(source: str, passed: bool | None = None) -> int:
        return sum(
            1
            for o in outcomes
            if o["source"] == source and (passed is None or o["passed"] == passed)
        )

    spec_total = sum(1 for c in checks if c.source == "spec")
    model_total = sum(1 for c in checks if c.source == "model")
    run: TestRun = {
        "run_id": run_id,
        "iteration": iteration,
        "code_hash": digest,
        "spec_passed": count("spec", True),
        "spec_total": spec_total,
        "model_passed": count("model", True),
        "model_total": model_total,
        "checks": outcomes,
        "error": error,
    }
    return run, replayed
