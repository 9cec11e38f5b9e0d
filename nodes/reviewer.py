"""Reviewer: critiques the code against the goal and adjudicates disputed tests (reflection).

A small model's review is often wrong, so its claims must be executable: each problem comes with
a call and the value the specification requires, which the tester then runs. A claim that the
code already satisfies is refuted, not obeyed.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field, JsonValue

from graphs.context import TeamContext
from graphs.deps import ModelOutputError, Node, TeamDeps
from graphs.state import CheckResult, ReviewVerdict, TeamState, Usage
from nodes.prompt_budget import build_prompt
from nodes.prompting import Section, goal_section
from tools.checks import ProposedCase, accept_case, decode, encode, entry_point_of

MAX_PROBLEMS = 5


class Problem(BaseModel):
    """One concrete problem, ideally with the call that shows it."""

    description: str = Field(default="", max_length=600)
    call: str = Field(default="", max_length=1000)
    expected: JsonValue = None


class Review(BaseModel):
    """The reviewer's structured verdict."""

    verdict: Literal["approve", "changes_requested"]
    problems: list[Problem] = Field(default_factory=list, max_length=10)
    wrong_tests: list[int] = Field(default_factory=list, max_length=20)


def _failing_model_checks(state: TeamState) -> list[CheckResult]:
    runs = state.get("test_runs", [])
    if not runs:
        return []
    return [c for c in runs[-1]["checks"] if c["source"] == "model" and not c["passed"]]


def _required(state: TeamState, disputed: list[CheckResult]) -> list[Section]:
    """What the reviewer must see whole if it can: the code, and the tests in dispute."""
    code = state.get("files", {}).get("solution.py", "") or "\n\n".join(
        f"# {path}\n{content}" for path, content in state.get("files", {}).items()
    )
    required = [Section("Code", code, keep="both")]
    if disputed:
        listed = "\n".join(f"{n}. {c['error']}" for n, c in enumerate(disputed, start=1))
        required.append(
            Section(
                "",
                "These tests written by our tester fail. For each, decide whether the test "
                "contradicts the specification (list its number in wrong_tests) or the code is "
                f"wrong:\n{listed}",
                keep="head",
            )
        )
    return required


def _claims(
    state: TeamState, problems: list[Problem]
) -> tuple[list[str], list[str], list[str], list[str]]:
    """Split problems into new executable checks, their names and texts, and plain advice."""
    files = state.get("files", {})
    entry = entry_point_of(state["goal"], files.get("solution.py", ""), state.get("entry_point"))
    known = {decode(item, "model").call for item in state.get("model_tests", [])}
    checks: list[str] = []
    names: list[str] = []
    texts: list[str] = []
    advice: list[str] = []
    for problem in problems[:MAX_PROBLEMS]:
        case = ProposedCase(call=problem.call, expected=problem.expected) if problem.call else None
        check = accept_case(case, entry) if case is not None and entry else None
        if check is not None and check.call not in known:
            known.add(check.call)
            checks.append(encode(check))
            names.append(check.name)
            texts.append(f"{problem.description.strip() or 'wrong result'} ({check.name})")
        elif check is None and problem.description.strip():
            advice.append(problem.description.strip())
    return checks, names, texts, advice


async def _review(
    deps: TeamDeps,
    state: TeamState,
    ctx: TeamContext,
    runtime: Runtime[TeamContext],
    disputed: list[CheckResult],
) -> tuple[Review, Usage]:
    """The model's review; without a valid one the checks stand on their own (approve)."""
    built = await build_prompt(
        deps,
        "reviewer",
        state,
        ctx,
        pinned=[goal_section(state, "Specification")],
        required=_required(state, disputed),
    )
    try:
        return await deps.ask_json(await deps.model(ctx), built.system, built.user, Review)
    except ModelOutputError as exc:
        # No verdict: the failure is recorded, not fatal.
        runtime.stream_writer({"role": "reviewer", "event": "failed", "error": str(exc)[:300]})
        return Review(verdict="approve"), exc.usage


def _record(
    state: TeamState, review: Review, disputed: list[CheckResult]
) -> tuple[ReviewVerdict, list[str], list[str]]:
    """(the verdict recorded, the issues the coder gets, new executable checks)."""
    wrong = [disputed[n - 1]["name"] for n in review.wrong_tests if 1 <= n <= len(disputed)]
    upheld = [c["error"] for c in disputed if c["name"] not in wrong]
    new_checks, claims, claim_texts, advice = (
        _claims(state, review.problems)
        if review.verdict == "changes_requested"
        else ([], [], [], [])
    )
    issues = upheld + claim_texts + advice
    verdict: Literal["approve", "changes_requested"] = (
        "changes_requested" if upheld or claims or advice else "approve"
    )
    record: ReviewVerdict = {
        "iteration": state["iteration"],
        "verdict": verdict,
        "issues": issues[: MAX_PROBLEMS * 2],
        "rejected_tests": wrong,
        "run_id": runs[-1]["run_id"] if (runs := state.get("test_runs", [])) else "",
        "claims": claims,
    }
    return record, issues, new_checks


def make_reviewer(deps: TeamDeps) -> Node[TeamState]:
    """The node that reviews the code and adjudicates the team's failing tests."""

    async def reviewer(state: TeamState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """Approve, reject disputed tests, or raise problems that the tester will run."""
        ctx = deps.run_context(runtime.context)
        disputed = _failing_model_checks(state)
        runtime.stream_writer({"role": "reviewer", "event": "reviewing", "disputed": len(disputed)})
        review, usage = await _review(deps, state, ctx, runtime, disputed)
        record, issues, new_checks = _record(state, review, disputed)
        verdict, wrong = record["verdict"], record["rejected_tests"]
        runtime.stream_writer(
            {
                "role": "reviewer",
                "event": verdict,
                "issues": issues[:3],
                "rejected_tests": len(wrong),
            }
        )
        text = (
            "reviewer: approved" if verdict == "approve" else "reviewer: " + "; ".join(issues)[:400]
        )
        update: dict[str, Any] = {
            "reviews": [record],
            "rejected_tests": wrong,
            "usage": usage,
            "steps": 1,
            "feedback": "\n".join(f"- {issue}" for issue in issues) if verdict != "approve" else "",
            "messages": [AIMessage(text, name="reviewer")],
        }
        if new_checks:
            update["model_tests"] = [*state.get("model_tests", []), *new_checks]
        return update

    return reviewer
